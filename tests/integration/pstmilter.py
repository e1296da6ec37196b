"""pstmilter -- a milter written for the tests: it speaks the filter side
of the milter protocol (version 6) on a loopback port, records what the
MTA sends, and answers as the test says -- including badly (hangs,
closes mid-body, garbage).

    m = Milter(actions={"eom": [("h", b"X-Test\\0yes\\0")]})
    ... "milter inet:127.0.0.1:%d;" % m.port ...
    m.stop()

`actions` maps a stage ("connect", "helo", "mail", "rcpt", "data",
"header", "eoh", "body", "eom", "unknowncmd") to what the milter does
there:
  - a list of (letter, data) frames sent before the final answer of
    "eom" (modifications), or
  - a callable(milter, data) returning the reply: ("c", b"") for
    continue, ("y", b"550 5.7.1 no\\0"), "hang", "close", or raw bytes
    (garbage) to send as they are.
The default answer is continue.  `protocol` is the flags the filter asks
for in OPTNEG (no-reply steps, skips); `macros` maps a stage number to a
macro list requested with the options; `version` is the protocol
version it answers; `unix` a socket path to listen on instead of TCP.
"""

import socket
import struct
import threading

CMD_STAGE = {b"C": "connect", b"H": "helo", b"M": "mail", b"R": "rcpt",
             b"T": "data", b"L": "header", b"N": "eoh", b"B": "body",
             b"E": "eom", b"U": "unknowncmd"}
NR_FLAGS = {"connect": 0x1000, "helo": 0x2000, "mail": 0x4000,
            "rcpt": 0x8000, "data": 0x10000, "header": 0x80,
            "eoh": 0x40000, "body": 0x80000, "unknowncmd": 0x20000}


def frame(letter, data=b""):
    if isinstance(letter, str):
        letter = letter.encode()
    return struct.pack("!I", len(data) + 1) + letter + data


class Milter:

    def __init__(self, actions=None, protocol=0, version=6,
                 action_flags=0x1ff, macros=None, unix=None):
        self.actions = actions or {}
        self.protocol = protocol
        self.version = version
        self.action_flags = action_flags
        self.macros = macros or {}
        self.events = []          # (stage, data) in the order received
        self.macro_values = {}    # stage letter -> {name: value}
        self.connections = 0
        self.lock = threading.Lock()
        if unix:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.bind(unix)
            self.port = None
            self.address = "unix:" + unix
        else:
            self.sock = socket.socket()
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
            self.address = "inet:127.0.0.1:%d" % self.port
        self.sock.listen(16)
        self.stopping = False
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in list(self.conns):
            try:
                c.close()
            except OSError:
                pass

    def stages(self):
        with self.lock:
            return [e[0] for e in self.events]

    def data_of(self, stage):
        with self.lock:
            return [e[1] for e in self.events if e[0] == stage]

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _read(self, c, buf):
        while len(buf) < 4 or len(buf) < 4 + struct.unpack("!I",
                                                          buf[:4])[0]:
            d = c.recv(65536)
            if not d:
                return None, buf
            buf += d
        n = struct.unpack("!I", buf[:4])[0]
        return buf[4:4 + n], buf[4 + n:]

    def _serve(self, c):
        buf = b""
        try:
            while True:
                f, buf = self._read(c, buf)
                if f is None:
                    return
                if not self._handle(c, f[:1], f[1:]):
                    return
        except OSError:
            return
        finally:
            c.close()

    def _optneg(self, c):
        data = struct.pack("!III", self.version, self.action_flags,
                           self.protocol)
        for stage, names in sorted(self.macros.items()):
            data += struct.pack("!I", stage) + names.encode() + b"\0"
        c.sendall(frame("O", data))

    def _handle(self, c, cmd, data):
        if cmd == b"O":
            self._optneg(c)
            return True
        if cmd == b"D":
            parts = data[1:].split(b"\0")
            vals = dict(zip(parts[0::2], parts[1::2]))
            with self.lock:
                self.macro_values.setdefault(data[:1].decode(),
                                             {}).update(vals)
            return True
        if cmd in (b"A", b"Q", b"K"):
            with self.lock:
                self.events.append(({b"A": "abort", b"Q": "quit",
                                     b"K": "quit_nc"}[cmd], data))
            return cmd != b"Q"
        stage = CMD_STAGE.get(cmd)
        if stage is None:
            with self.lock:
                self.events.append(("unknown", cmd + data))
            return True
        with self.lock:
            self.events.append((stage, data))
        if self.protocol & NR_FLAGS.get(stage, 0):
            return True
        act = self.actions.get(stage)
        if stage == "eom" and isinstance(act, list):
            for letter, d in act:
                c.sendall(frame(letter, d))
            act = None
        answer = act(self, data) if callable(act) else ("c", b"")
        if answer == "hang":
            return self._hang(c)
        if answer == "close":
            return False
        if isinstance(answer, bytes):
            c.sendall(answer)
            return True
        c.sendall(frame(*answer))
        return True

    def _hang(self, c):
        # read and ignore everything until the MTA gives up
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass
        return False
