"""PROXY protocol listeners and XCLIENT: who the client is when another
host speaks for it.

PROXY v1 and v2 headers sent by the test itself from trusted and
untrusted sources, malformed, truncated, slow and in pieces; the same
behind a real HAProxy (Debian's haproxy, started by the test on
loopback with send-proxy and send-proxy-v2); XCLIENT from trusted and
untrusted clients.  What is checked each time is what the rest of the
server saw: the envelope's client-addr and client-name, the Received
header, the log's client=[...], the connection counters and a policy
module's decision."""

import os
import re
import socket
import ssl
import struct
import subprocess
import time

from pstest import PstTestCase, free_ports, have, stop_process, wait_for
from psttls import TlsTestCase

MSG = b"Subject: proxied\r\n\r\nhello\r\n"

CONF = """
smtp {
    hostname mx.example.test;
    proxy_trusted 127.0.0.1;
    proxy_protocol_timeout 2s;
    %s
    server {
        listen {port};
        listen {port2} proxy_protocol;
        local_domains example.test;
        %s
    }
}
"""

V2SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, dst=None, sport=40000, dport=25):
    fam = "TCP6" if ":" in src else "TCP4"
    dst = dst or ("::1" if ":" in src else "127.0.0.1")
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)
            ).encode()


def v2(src=None, dst=None, sport=40000, dport=25, local=False, tlv=b""):
    if local:
        return V2SIG + b"\x20\x00\x00\x00"
    fam = socket.AF_INET6 if ":" in src else socket.AF_INET
    body = (socket.inet_pton(fam, src) + socket.inet_pton(fam, dst)
            + struct.pack("!HH", sport, dport) + tlv)
    return (V2SIG + bytes([0x21, 0x21 if fam == socket.AF_INET6 else 0x11])
            + struct.pack("!H", len(body)) + body)


class Conn:
    """A raw connection to the proxy_protocol listener: the header first,
    then line-level SMTP (the greeting is read by greet())."""

    def __init__(self, port, header=b"", source=None, timeout=10.0):
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.buf = b""
        if header:
            self.sock.sendall(header)

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def reply(self):
        lines = []
        while True:
            while b"\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed; buffered %r" % self.buf)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            lines.append(line.decode())
            if line[3:4] != b"-":
                return int(line[:3]), [l[4:].rstrip("\r") for l in lines]

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def closed_silently(self, timeout=10.0):
        """The server closes without sending a byte."""
        self.sock.settimeout(timeout)
        data = b""
        try:
            while True:
                chunk = self.sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        return data

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def send_message(c, helo="client.test", rcpt="user@example.test"):
    assert c.cmd("EHLO " + helo)[0] == 250
    assert c.cmd("MAIL FROM:<sender@client.test>")[0] == 250
    r = c.cmd("RCPT TO:<%s>" % rcpt)
    assert r[0] == 250, r
    assert c.cmd("DATA")[0] == 354
    c.send(MSG + b".\r\n")
    r = c.reply()
    assert r[0] == 250, r
    return r[1][0].split()[-1]


class ProxyCase(PstTestCase):

    def srv(self, smtp_extra="", srv_extra="", **kw):
        return self.server(CONF % (smtp_extra, srv_extra), **kw)

    def stored(self, srv, qid):
        """(client-addr, client-name or None, Received header line)."""
        env = dict(l.split(" ", 1) for l in srv.envelope(qid).splitlines()
                   if " " in l)
        received = srv.message(qid).decode().split("\r\n\t")[0]
        return env.get("client-addr"), env.get("client-name"), received


class ProxyProtocolTest(ProxyCase):

    def test_v1_tcp4_trusted(self):
        srv = self.srv("smtp_debug on;")
        # the header and the first command in one segment: nothing of
        # the SMTP after the header may be lost
        with Conn(srv.ports[1], v1("192.0.2.7") + b"NOOP\r\n") as c:
            self.assertEqual(c.reply()[0], 220)
            self.assertEqual(c.reply()[0], 250)
            qid = send_message(c)
        addr, name, rcvd = self.stored(srv, qid)
        self.assertEqual(addr, "192.0.2.7")
        self.assertIsNone(name)
        self.assertIn("(unknown [192.0.2.7])", rcvd)
        srv.wait_log(r"client=\[192\.0\.2\.7\] < NOOP")
        srv.wait_log(r"PROXY v1 from 127\.0\.0\.1: client 192\.0\.2\.7:40000")

    def test_v1_tcp6_and_v2_both_families(self):
        srv = self.srv()
        cases = [(v1("2001:db8::7"), "2001:db8::7", "[IPv6:2001:db8::7]"),
                 (v2("192.0.2.8", "192.0.2.1"), "192.0.2.8", "[192.0.2.8]"),
                 (v2("2001:db8::8", "2001:db8::1",
                     tlv=b"\x01\x00\x04smtp\x04\x00\x02\x00\x00"),
                  "2001:db8::8", "[IPv6:2001:db8::8]")]
        for header, want, shown in cases:
            with Conn(srv.ports[1], header) as c:
                self.assertEqual(c.reply()[0], 220)
                qid = send_message(c)
            addr, _, rcvd = self.stored(srv, qid)
            self.assertEqual(addr, want)
            self.assertIn(shown, rcvd)

    def test_local_and_unknown_keep_the_real_peer(self):
        srv = self.srv()
        for header in (b"PROXY UNKNOWN\r\n",
                       b"PROXY UNKNOWN 192.0.2.9 192.0.2.1 1 2\r\n",
                       v2(local=True)):
            with Conn(srv.ports[1], header) as c:
                self.assertEqual(c.reply()[0], 220)
                qid = send_message(c)
            self.assertEqual(self.stored(srv, qid)[0], "127.0.0.1")

    def test_untrusted_peer_is_refused(self):
        srv = self.srv()
        # 127.0.0.2 is not in proxy_trusted (127.0.0.1): even a good
        # header is not believed; the connection closes unanswered
        with Conn(srv.ports[1], v1("192.0.2.7"), source="127.0.0.2") as c:
            self.assertEqual(c.closed_silently(), b"")
        srv.wait_log(r"refused connection from 127\.0\.0\.2 on 127\.0\.0\.1:"
                     r"\d+ \(proxy_protocol\): not in proxy_trusted")
        # and the ordinary listener of the same block is not affected
        with Conn(srv.port, source="127.0.0.2") as c:
            self.assertEqual(c.reply()[0], 220)
        self.assertEqual(srv.queue_count(), 0)

    def test_nothing_trusted_by_default(self):
        srv = self.server("""
smtp { hostname mx.example.test;
       server { listen {port}; listen {port2} proxy_protocol;
                local_domains example.test; } }""")
        with Conn(srv.ports[1], v1("192.0.2.7")) as c:
            self.assertEqual(c.closed_silently(), b"")
        srv.wait_log(r"refused connection from 127\.0\.0\.1 .*not in"
                     r" proxy_trusted")

    def test_malformed_headers_are_closed(self):
        srv = self.srv()
        bad = [
            (b"EHLO client.test\r\n", "no PROXY header"),
            (b"PROXY TCP4 192.0.2.7 127.0.0.1 1 2\n",
             "version 1 line without CRLF"),
            (b"PROXY TCP4 192.0.2.7  127.0.0.1 1 2\r\n",
             "bad version 1 field count or spacing"),
            (b"PROXY TCP4 2001:db8::1 127.0.0.1 1 2\r\n",
             "bad version 1 address"),
            (b"PROXY TCP4 192.0.2.7 127.0.0.1 1 65536\r\n",
             "bad version 1 port"),
            (b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n",
             "version 1 line longer than 107 bytes"),
            (V2SIG[:11] + b"X" + b"\x21\x11\x00\x0c" + b"\0" * 12,
             "bad version 2 signature"),
            (V2SIG + b"\x22\x11\x00\x0c" + b"\0" * 12,
             "bad version 2 command"),
            (V2SIG + b"\x21\x11\x00\x0b" + b"\0" * 11,
             "version 2 address block truncated"),
            (V2SIG + b"\x21\x11\xff\xff", "version 2 header too long"),
            (v2("192.0.2.7", "127.0.0.1", tlv=b"\x01\x00\x09smtp"),
             "version 2 TLV longer than the header"),
            (b"\x16\x03\x01\x00\xa5\x01", "no PROXY header"),
        ]
        for header, why in bad:
            with Conn(srv.ports[1], header) as c:
                self.assertEqual(c.closed_silently(), b"", why)
            srv.wait_log(r"invalid PROXY header from 127\.0\.0\.1 on .*: "
                         + why.replace("(", r"\("))
        self.assertEqual(srv.queue_count(), 0)

    def test_truncated_header_times_out(self):
        srv = self.srv()
        # half a header, then nothing; and a plain SMTP client that
        # waits for a greeting that never comes
        with Conn(srv.ports[1], v1("192.0.2.7")[:20]) as c, \
                Conn(srv.ports[1]) as d:
            self.assertEqual(c.closed_silently(), b"")
            self.assertEqual(d.closed_silently(), b"")
        srv.wait_log(r"no PROXY header from 127\.0\.0\.1 .*: timed out",
                     count=2)
        # a peer that closes before the header is logged too
        Conn(srv.ports[1], b"PROX").close()
        srv.wait_log(r"no PROXY header .*: closed by the peer")

    def test_graceful_stop_waits_for_the_header(self):
        # a worker told to stop (reload) still serves a connection whose
        # header has not come yet: the client behind the proxy is real
        srv = self.srv()
        old = srv.workers()
        c = Conn(srv.ports[1])
        port = c.sock.getsockname()[1]

        def holder():
            out = subprocess.run(
                ["ss", "-tnpH", "state", "established", "( sport = :%d and"
                 " dport = :%d )" % (srv.ports[1], port)],
                capture_output=True, text=True).stdout
            m = re.search(r"pid=(\d+)", out)
            return int(m.group(1)) if m else None
        pid = wait_for(holder, 5, what="the worker holding the connection")
        others = [p for p in old if p != pid]
        srv.reload()
        # the other old worker has nothing to wait for and goes
        wait_for(lambda: not [p for p in others if os.path.exists(
            "/proc/%d" % p)], 15, what="the idle old worker to exit")
        self.assertTrue(os.path.exists("/proc/%d" % pid),
                        "the old worker left a waiting connection")
        with c:
            c.send(v1("192.0.2.12"))
            self.assertEqual(c.reply()[0], 220)
            qid = send_message(c)
            self.assertEqual(c.cmd("QUIT")[0], 221)
        self.assertEqual(self.stored(srv, qid)[0], "192.0.2.12")
        wait_for(lambda: not os.path.exists("/proc/%d" % pid), 15,
                 what="the old worker to exit after its last client")

    def test_header_in_pieces(self):
        srv = self.srv()
        for header in (v1("192.0.2.10"), v2("192.0.2.11", "127.0.0.1")):
            with Conn(srv.ports[1]) as c:
                for i in range(len(header)):
                    c.send(header[i:i + 1])
                    time.sleep(0.01)
                self.assertEqual(c.reply()[0], 220)
                qid = send_message(c)
            self.assertIn(self.stored(srv, qid)[0],
                          ("192.0.2.10", "192.0.2.11"))

    def test_counters_use_the_proxied_client(self):
        srv = self.srv("max_connections_per_ip 1;")
        with Conn(srv.ports[1], v1("192.0.2.20")) as a:
            self.assertEqual(a.reply()[0], 220)
            # the same client again: one too many
            with Conn(srv.ports[1], v2("192.0.2.20", "127.0.0.1")) as b:
                code, text = b.reply()
                self.assertEqual(code, 421)
                self.assertIn("Too many connections from your address",
                              text[0])
            # another client through the same proxy: fine, although
            # every connection comes from 127.0.0.1
            with Conn(srv.ports[1], v1("192.0.2.21")) as b:
                self.assertEqual(b.reply()[0], 220)
        srv.wait_log(r"refused connection from 192\.0\.2\.20: "
                     r"max_connections_per_ip")

    def test_policy_sees_the_proxied_client(self):
        srv = self.srv(srv_extra="relay_networks 192.0.2.0/24;")
        # relay allowed for the proxied client's network only
        with Conn(srv.ports[1], v1("192.0.2.30")) as c:
            self.assertEqual(c.reply()[0], 220)
            send_message(c, rcpt="someone@elsewhere.test")
        with Conn(srv.ports[1], v1("198.51.100.30")) as c:
            self.assertEqual(c.reply()[0], 220)
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test>")
            self.assertEqual(c.cmd("RCPT TO:<x@elsewhere.test>")[0], 550)

    def test_connect_hooks_see_the_proxied_client(self):
        srv = self.srv(srv_extra="access_rule client 192.0.2.66 reject 554"
                       ' 5.7.1 "go away";',
                       modules=("store_spool", "policy_relay",
                                "policy_access"))
        with Conn(srv.ports[1], v2("192.0.2.66", "127.0.0.1")) as c:
            code, text = c.reply()
            self.assertEqual(code, 554)
            self.assertIn("go away", text[0])
        with Conn(srv.ports[1], v2("192.0.2.67", "127.0.0.1")) as c:
            self.assertEqual(c.reply()[0], 220)

    def test_reverse_lookup_of_the_proxied_client(self):
        dns = self.dnsmasq(["--host-record=seven.example.test,192.0.2.7"])
        srv = self.srv(resolver=dns.address)
        with Conn(srv.ports[1], v1("192.0.2.7")) as c:
            self.assertEqual(c.reply()[0], 220)
            qid = send_message(c)
        _, name, rcvd = self.stored(srv, qid)
        self.assertEqual(name, "seven.example.test")
        self.assertIn("(seven.example.test [192.0.2.7])", rcvd)
        self.assertIn("7.2.0.192.in-addr.arpa", dns.queries())


class ProxyTlsTest(TlsTestCase):
    """Implicit TLS behind a proxy: the header comes first, in clear,
    then the handshake."""

    def test_header_before_implicit_tls(self):
        srv = self.tls_server(extra="proxy_trusted 127.0.0.1;",
                              srv_extra="listen {port2} tls proxy_protocol;")
        sock = socket.create_connection(("127.0.0.1", srv.ports[1]),
                                        timeout=10)
        sock.sendall(v2("192.0.2.40", "127.0.0.1"))
        tls = self.ctx.wrap_socket(sock, server_hostname="mx.example.test")
        c = Conn.__new__(Conn)
        c.sock, c.buf = tls, b""
        try:
            self.assertEqual(c.reply()[0], 220)
            qid = send_message(c)
        finally:
            tls.close()
        env = srv.envelope(qid)
        self.assertIn("client-addr 192.0.2.40\n", env)
        self.assertIn("with ESMTPS", srv.message(qid).decode())


HAPROXY_CONF = """
global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend v1
    bind 127.0.0.1:%(p1)d
    default_backend postern_v1
frontend v2
    bind 127.0.0.1:%(p2)d
    default_backend postern_v2
frontend v2_ipv6
    bind [::1]:%(p3)d
    default_backend postern_v2
backend postern_v1
    server postern 127.0.0.1:%(px)d send-proxy
backend postern_v2
    server postern 127.0.0.1:%(px)d send-proxy-v2%(check)s
"""


class HaproxyTest(ProxyCase):
    """Behind a real HAProxy: the client connects to HAProxy from
    127.0.0.9 (or ::1); Postern, which sees only HAProxy's connections
    from 127.0.0.1, must record the original client."""

    def setUp(self):
        super().setUp()
        if not have("/usr/sbin/haproxy"):
            self.skipTest("haproxy is not installed (.ci/deps.sh)")

    def haproxy(self, srv, check=""):
        p1, p2, p3 = free_ports(3)
        conf = os.path.join(srv.dir, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write(HAPROXY_CONF % dict(p1=p1, p2=p2, p3=p3,
                                        px=srv.ports[1], check=check))
        log = open(os.path.join(srv.dir, "haproxy.log"), "wb")
        proc = subprocess.Popen(["/usr/sbin/haproxy", "-db", "-f", conf],
                                stdout=log, stderr=log)
        log.close()
        self.addCleanup(stop_process, proc)

        def listening():
            if proc.poll() is not None:
                raise AssertionError("haproxy exited: " + open(
                    os.path.join(srv.dir, "haproxy.log")).read())
            try:
                socket.create_connection(("127.0.0.1", p2), 1).close()
                return True
            except OSError:
                return False
        wait_for(listening, 10, what="haproxy")
        return p1, p2, p3

    def test_send_proxy_v1_and_v2(self):
        srv = self.srv("smtp_debug on;")
        p1, p2, p3 = self.haproxy(srv)
        for port, version in ((p1, 1), (p2, 2)):
            with Conn(port, source="127.0.0.9") as c:
                self.assertEqual(c.reply()[0], 220)
                qid = send_message(c, helo="client%d.test" % version)
            addr, _, rcvd = self.stored(srv, qid)
            self.assertEqual(addr, "127.0.0.9")
            self.assertIn("from client%d.test (unknown [127.0.0.9])"
                          % version, rcvd)
            srv.wait_log(r"PROXY v%d from 127\.0\.0\.1: client 127\.0\.0\.9:"
                         % version)
        srv.wait_log(r"client=\[127\.0\.0\.9\] < EHLO client2\.test")

    def test_send_proxy_v2_ipv6_client(self):
        srv = self.srv()
        _, _, p3 = self.haproxy(srv)
        sock = socket.create_connection(("::1", p3), timeout=10)
        c = Conn.__new__(Conn)
        c.sock, c.buf = sock, b""
        with c:
            self.assertEqual(c.reply()[0], 220)
            qid = send_message(c)
        addr, _, rcvd = self.stored(srv, qid)
        self.assertEqual(addr, "::1")
        self.assertIn("[IPv6:::1]", rcvd)

    def test_health_checks_send_local(self):
        # HAProxy's own checks carry a v2 LOCAL header: Postern greets
        # the proxy itself and logs nothing wrong
        srv = self.srv("smtp_debug on;")
        self.haproxy(srv, check=" check inter 100ms check-send-proxy")
        srv.wait_log(r"PROXY v2 from 127\.0\.0\.1: client 127\.0\.0\.1:\d+"
                     r" \(LOCAL/UNKNOWN: the proxy itself\)", count=2)
        self.assertNotIn("invalid PROXY header", srv.log())

    def test_haproxy_not_trusted(self):
        srv = self.server(CONF.replace("proxy_trusted 127.0.0.1;",
                                       "proxy_trusted 127.0.0.2;")
                          % ("", ""))
        p1, _, _ = self.haproxy(srv)
        with Conn(p1, source="127.0.0.9") as c:
            self.assertEqual(c.closed_silently(), b"")
        srv.wait_log(r"refused connection from 127\.0\.0\.1 .*not in"
                     r" proxy_trusted")
        self.assertEqual(srv.queue_count(), 0)


class XclientTest(ProxyCase):

    def xsrv(self, extra="", **kw):
        return self.srv("xclient_trusted 127.0.0.1;\n" + extra, **kw)

    def test_trusted_client_changes_identity(self):
        srv = self.xsrv()
        with srv.raw() as c:
            code, lines = c.cmd("EHLO proxy.test")
            self.assertIn("XCLIENT ADDR PORT NAME HELO LOGIN PROTO", lines)
            code, lines = c.cmd("XCLIENT ADDR=192.0.2.50 PORT=4321"
                                " NAME=fifty.example.test")
            self.assertEqual(code, 220)
            self.assertIn("mx.example.test", lines[0])
            # a new session: HELO again
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 503)
            self.assertEqual(c.cmd("EHLO real.client.test")[0], 250)
            r = srv.transaction(c, MSG, rcpts=("user@example.test",))
            self.assertReply(r, 250)
        qid = srv.queue_ids()[0]
        addr, name, rcvd = self.stored(srv, qid)
        self.assertEqual((addr, name), ("192.0.2.50", "fifty.example.test"))
        self.assertIn("from real.client.test (fifty.example.test"
                      " [192.0.2.50])", rcvd)
        srv.wait_log(r"client=\[192\.0\.2\.50\] XCLIENT from 127\.0\.0\.1:"
                     r" name=fifty\.example\.test")

    def test_untrusted_client_is_refused(self):
        srv = self.xsrv()
        with srv.raw(source="127.0.0.2") as c:
            code, lines = c.cmd("EHLO client.test")
            self.assertFalse([l for l in lines if l.startswith("XCLIENT")])
            self.assertReply(c.cmd("XCLIENT ADDR=192.0.2.50"), 550, "5.7.0")
            r = srv.transaction(c, MSG)
            self.assertReply(r, 250)
        self.assertEqual(self.stored(srv, srv.queue_ids()[0])[0],
                         "127.0.0.2")
        srv.wait_log(r"client=\[127\.0\.0\.2\] XCLIENT refused")

    def test_not_trusted_without_xclient_trusted(self):
        srv = self.srv()
        with srv.raw() as c:
            self.assertReply(c.cmd("XCLIENT ADDR=192.0.2.50"), 550, "5.7.0")

    def test_syntax_and_state(self):
        srv = self.xsrv()
        with srv.raw() as c:
            c.cmd("EHLO proxy.test")
            for bad, text in (("XCLIENT", "Syntax"),
                              ("XCLIENT ADDR", "Syntax"),
                              ("XCLIENT FOO=bar", "attribute name"),
                              ("XCLIENT ADDR=300.1.1.1", "ADDR"),
                              ("XCLIENT ADDR=[UNAVAILABLE]", "ADDR"),
                              ("XCLIENT PORT=70000", "PORT"),
                              ("XCLIENT NAME=bad..name", "NAME"),
                              ("XCLIENT PROTO=LMTP", "PROTO"),
                              ("XCLIENT HELO=a+0Ab", "HELO"),
                              ("XCLIENT LOGIN=+zz", "LOGIN")):
                self.assertReply(c.cmd(bad), 501, text)
            # nothing of a refused command was applied
            r = c.cmd("MAIL FROM:<a@client.test>")
            self.assertReply(r, 250)
            self.assertReply(c.cmd("XCLIENT ADDR=192.0.2.50"), 503,
                             "transaction")
            c.cmd("RSET")
            # IPv6 in Postfix's form, names in any case, [UNAVAILABLE]
            self.assertReply(c.cmd("XCLIENT addr=IPV6:2001:db8::5"
                                   " Name=[UNAVAILABLE]"), 220)
            r = srv.transaction(c, MSG, helo="v6.client.test")
            self.assertReply(r, 250)
        addr, name, rcvd = self.stored(srv, srv.queue_ids()[0])
        self.assertEqual((addr, name), ("2001:db8::5", None))
        self.assertIn("(unknown [IPv6:2001:db8::5])", rcvd)

    def test_helo_proto_login(self):
        srv = self.xsrv()
        with srv.raw() as c:
            c.cmd("EHLO proxy.test")
            # nginx's mail proxy after its own AUTH: the user, the
            # client's HELO; xtext in values (+2E is ".")
            self.assertReply(c.cmd("XCLIENT ADDR=192.0.2.60 LOGIN=alice"
                                   " HELO=laptop+2Eclient.test PROTO=ESMTP"),
                             220)
            # HELO given: no EHLO needed; LOGIN given: may relay
            r = srv.transaction(c, MSG, rcpts=("bob@elsewhere.test",))
            self.assertReply(r, 250)
        env = srv.envelope(srv.queue_ids()[0])
        self.assertIn("\nhelo laptop.client.test\n", env)
        self.assertIn("\nauth alice\n", env)
        self.assertIn("client-addr 192.0.2.60\n", env)
        rcvd = srv.message(srv.queue_ids()[0]).decode()
        self.assertIn("from laptop.client.test (unknown [192.0.2.60])", rcvd)

    def test_connect_hooks_run_again(self):
        srv = self.xsrv(srv_extra="access_rule client 192.0.2.66 reject 554"
                        ' 5.7.1 "go away";',
                        modules=("store_spool", "policy_relay",
                                 "policy_access"))
        with srv.raw() as c:
            c.cmd("EHLO proxy.test")
            self.assertReply(c.cmd("XCLIENT ADDR=192.0.2.66"), 554,
                             "go away")
            self.assertReply(c.cmd("EHLO x.test"), 503)
            self.assertReply(c.cmd("QUIT"), 221)

    def test_counters_follow_the_new_address(self):
        srv = self.srv("xclient_trusted 127.0.0.0/8;\n"
                       "max_connections_per_ip 1;")
        with srv.raw(source="127.0.0.1") as a:
            self.assertReply(a.cmd("XCLIENT ADDR=192.0.2.70"), 220)
            with srv.raw(source="127.0.0.2") as b:
                self.assertReply(b.cmd("XCLIENT ADDR=192.0.2.70"), 421,
                                 "Too many connections")
                self.assertTrue(b.closed())
            # 127.0.0.1's count went to 192.0.2.70: a new connection
            # from 127.0.0.1 is welcome
            with srv.raw(source="127.0.0.1") as d:
                self.assertEqual(d.greeting[0], 220)
        srv.wait_log(r"XCLIENT ADDR=192\.0\.2\.70 refused:"
                     r" max_connections_per_ip")

    def test_reverse_lookup_after_xclient(self):
        dns = self.dnsmasq(["--host-record=eighty.example.test,192.0.2.80"])
        srv = self.xsrv(resolver=dns.address)
        with srv.raw() as c:
            self.assertReply(c.cmd("XCLIENT ADDR=192.0.2.80"), 220)
            r = srv.transaction(c, MSG, helo="h.test")
            self.assertReply(r, 250)
        _, name, _ = self.stored(srv, srv.queue_ids()[0])
        self.assertEqual(name, "eighty.example.test")

    def test_swaks_xclient(self):
        if not have("swaks"):
            self.skipTest("swaks is not installed")
        srv = self.xsrv()
        p = subprocess.run(
            ["swaks", "--server", "127.0.0.1", "--port", str(srv.port),
             "--from", "a@client.test", "--to", "user@example.test",
             "--helo", "swaks.test", "--xclient-addr", "192.0.2.90",
             "--xclient-name", "ninety.example.test",
             "--body", "via swaks"],
            capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        addr, name, _ = self.stored(srv, srv.queue_ids()[0])
        self.assertEqual((addr, name), ("192.0.2.90", "ninety.example.test"))
