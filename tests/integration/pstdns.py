"""pstdns -- a small authoritative DNS server with DNSSEC for the tests.

dnsmasq cannot sign a zone, so this one does: at start it makes a fresh
ECDSA P-256 key (algorithm 13, RFC 6605) for each signed zone and signs
every RRset (RFC 4034), including the zone's DNSKEY RRset.  It listens on
127.0.0.1, UDP and TCP on the same port, in two threads of the test
process, and answers only from its own records:

    dns = SignedDns()
    dns.zone("example.test")                    # signed
    dns.zone("other.test", signed=False)
    dns.add("www.example.test", "A", "127.0.0.5")
    dns.add("bad.example.test", "A", "127.0.0.6", corrupt=True)
    dns.add("example.test", "MX", "10 www.example.test")   # also AAAA
    dns.start()
    dns.trust_anchor("example.test")   # "example.test. 3600 IN DNSKEY ..."
    ...
    dns.stop()

A record added with corrupt=True gets an RRSIG whose signature has one
bit flipped: a validator must call it bogus.  RRSIGs are sent when the
query has the DO bit (EDNS0).  Names outside every zone get NXDOMAIN, a
known name without the type asked NODATA (SOA in the authority section).
There is no NSEC: a validating resolver cannot prove that a name of a
signed zone does not exist, so tests must not rely on that (unbound's
key-tag signal, a query for _ta-XXXX.<zone> type NULL (RFC 8145), gets
such an unproven NXDOMAIN; unbound ignores its answer).  Every query is
recorded in self.queries as (name, type, do).
"""

import base64
import hashlib
import socket
import struct
import threading
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import \
    decode_dss_signature
from dnslib import DNSRecord, EDNS0, QTYPE, RCODE, RD, RR

from pstest import free_port_udp

ALG_ECDSAP256SHA256 = 13
TTL = 300
TYPES = {"A": 1, "NS": 2, "SOA": 6, "MX": 15, "AAAA": 28, "DS": 43,
         "RRSIG": 46, "DNSKEY": 48, "TLSA": 52}


def name_wire(name):
    """A domain name in canonical wire format (RFC 4034 6.2): lower case,
    uncompressed."""
    out = b""
    for label in name.rstrip(".").lower().split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def labels(name):
    return len([l for l in name.rstrip(".").split(".") if l])


def key_tag(rdata):
    """RFC 4034 Appendix B."""
    acc = 0
    for i, b in enumerate(rdata):
        acc += b if i & 1 else b << 8
    acc += (acc >> 16) & 0xffff
    return acc & 0xffff


def rdata_of(rtype, value):
    if rtype == "A":
        return socket.inet_aton(value)
    if rtype == "NS":
        return name_wire(value)
    if rtype == "AAAA":
        return socket.inet_pton(socket.AF_INET6, value)
    if rtype == "MX":                   # "10 mx.example.test"
        pref, host = value.split()
        return struct.pack("!H", int(pref)) + name_wire(host)
    if rtype == "TLSA":                 # "3 1 1 <hex>"
        usage, selector, mtype, data = value.split()
        return bytes([int(usage), int(selector), int(mtype)]) + \
            bytes.fromhex(data)
    raise ValueError("unsupported type " + rtype)


class ZoneKey:
    """An ECDSA P-256 key signing one zone."""

    def __init__(self, zone):
        self.zone = zone
        self.key = ec.generate_private_key(ec.SECP256R1())
        pub = self.key.public_key().public_numbers()
        self.public = pub.x.to_bytes(32, "big") + pub.y.to_bytes(32, "big")
        # flags 257: zone key + secure entry point; protocol 3
        self.dnskey = struct.pack("!HBB", 257, 3, ALG_ECDSAP256SHA256) \
            + self.public
        self.tag = key_tag(self.dnskey)

    def anchor(self, form="DNSKEY"):
        """A line for unbound's trust-anchor-file (zone file format):
        the DNSKEY, or a DS record (digest type 2, SHA-256)."""
        if form == "DS":
            return "%s. 3600 IN DS %d %d 2 %s\n" % (
                self.zone, self.tag, ALG_ECDSAP256SHA256, self.ds_digest())
        return "%s. 3600 IN DNSKEY 257 3 %d %s\n" % (
            self.zone, ALG_ECDSAP256SHA256,
            base64.b64encode(self.public).decode())

    def ds_digest(self):
        """SHA-256 DS digest (RFC 4509): owner name | DNSKEY RDATA."""
        return hashlib.sha256(name_wire(self.zone) + self.dnskey).hexdigest()

    def rrsig(self, owner, rtype, rdatas, corrupt=False):
        """RRSIG RDATA over one RRset (RFC 4034 3.1.8.1)."""
        now = int(time.time())
        head = struct.pack("!HBBIIIH", TYPES[rtype], ALG_ECDSAP256SHA256,
                           labels(owner), TTL, now + 86400, now - 3600,
                           self.tag) + name_wire(self.zone)
        data = head
        for rd in sorted(rdatas):
            data += name_wire(owner) + struct.pack(
                "!HHIH", TYPES[rtype], 1, TTL, len(rd)) + rd
        der = self.key.sign(data, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        sig = bytearray(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        if corrupt:
            sig[10] ^= 0x01
        return head + bytes(sig)


class SignedDns:
    """The server.  Configure with zone() and add(), then start()."""

    def __init__(self):
        self.zones = {}         # zone -> ZoneKey or None (unsigned)
        self.rrsets = {}        # (owner, type) -> [rdata]
        self.corrupt = set()    # (owner, type) signed wrongly
        self.sigs = {}          # (owner, type) -> RRSIG rdata
        self.queries = []
        self.errors = []        # exceptions while answering
        self.port = None
        self._stop = threading.Event()
        self._threads = []
        self._socks = []

    # -- the data ------------------------------------------------------

    def zone(self, zone, signed=True):
        zone = zone.rstrip(".").lower()
        self.zones[zone] = ZoneKey(zone) if signed else None
        soa = (name_wire("ns." + zone) + name_wire("hostmaster." + zone)
               + struct.pack("!IIIII", 1, 3600, 600, 86400, 60))
        self.rrsets[(zone, "SOA")] = [soa]
        self.add(zone, "NS", "ns." + zone)
        self.add("ns." + zone, "A", "127.0.0.1")
        if signed:
            self.rrsets[(zone, "DNSKEY")] = [self.zones[zone].dnskey]

    def add(self, name, rtype, value, corrupt=False):
        key = (name.rstrip(".").lower(), rtype)
        self.rrsets.setdefault(key, []).append(rdata_of(rtype, value))
        if corrupt:
            self.corrupt.add(key)

    def zone_of(self, name):
        best = None
        for z in self.zones:
            if (name == z or name.endswith("." + z)) and \
                    (best is None or len(z) > len(best)):
                best = z
        return best

    def trust_anchor(self, zone, form="DNSKEY"):
        """The zone's key as a trust anchor line (see ZoneKey.anchor)."""
        return self.zones[zone].anchor(form)

    def sign(self):
        for (owner, rtype), rdatas in self.rrsets.items():
            k = self.zones[self.zone_of(owner)]
            if k is not None:
                self.sigs[(owner, rtype)] = k.rrsig(
                    owner, rtype, rdatas, (owner, rtype) in self.corrupt)

    # -- answers -------------------------------------------------------

    def rrs(self, owner, rtype, do):
        out = [RR(owner + ".", TYPES[rtype], ttl=TTL, rdata=RD(rd))
               for rd in self.rrsets[(owner, rtype)]]
        if do and (owner, rtype) in self.sigs:
            out.append(RR(owner + ".", TYPES["RRSIG"], ttl=TTL,
                          rdata=RD(self.sigs[(owner, rtype)])))
        return out

    def answer(self, wire, limit):
        q = DNSRecord.parse(wire)
        qname = str(q.q.qname).rstrip(".").lower()
        qtype = QTYPE.get(q.q.qtype)
        opt = [r for r in q.ar if r.rtype == QTYPE.OPT]
        do = bool(opt and opt[0].ttl & 0x8000)
        self.queries.append((qname, qtype, do))

        r = q.reply()                    # QR, AA and RD copied, the question
        r.header.ra = 0
        zone = self.zone_of(qname)
        if zone is None:
            r.header.rcode = RCODE.NXDOMAIN
        elif (qname, qtype) in self.rrsets:
            for rr in self.rrs(qname, qtype, do):
                r.add_answer(rr)
        else:
            if not any(o == qname for (o, t) in self.rrsets):
                r.header.rcode = RCODE.NXDOMAIN
            for rr in self.rrs(zone, "SOA", do):
                r.add_auth(rr)
        if opt:
            r.add_ar(EDNS0(flags="do" if do else "", udp_len=1232))
        data = r.pack()
        if limit and len(data) > limit:
            r.rr, r.auth = [], []
            r.header.tc = 1
            data = r.pack()
        return data

    # -- the sockets ---------------------------------------------------

    def start(self):
        self.sign()
        for _ in range(5):
            self.port = free_port_udp()
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                u.bind(("127.0.0.1", self.port))
                t.bind(("127.0.0.1", self.port))
                break
            except OSError:
                u.close()
                t.close()
        else:
            raise AssertionError("no port for the DNS server")
        t.listen(16)
        u.settimeout(0.2)
        t.settimeout(0.2)
        self._socks = [u, t]
        for fn, s in ((self._udp, u), (self._tcp, t)):
            th = threading.Thread(target=fn, args=(s,), daemon=True)
            th.start()
            self._threads.append(th)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def _udp(self, s):
        while not self._stop.is_set():
            try:
                wire, peer = s.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                q = DNSRecord.parse(wire)
                opt = [r for r in q.ar if r.rtype == QTYPE.OPT]
                limit = max(512, opt[0].rclass) if opt else 512
                s.sendto(self.answer(wire, limit), peer)
            except Exception as e:      # a bad packet: no answer
                self.errors.append(repr(e))

    def _tcp(self, s):
        while not self._stop.is_set():
            try:
                c, _ = s.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with c:
                c.settimeout(2)
                try:
                    while True:
                        n = self._recv(c, 2)
                        if n is None:
                            break
                        wire = self._recv(c, struct.unpack("!H", n)[0])
                        if wire is None:
                            break
                        a = self.answer(wire, 0)
                        c.sendall(struct.pack("!H", len(a)) + a)
                except Exception as e:
                    self.errors.append(repr(e))

    @staticmethod
    def _recv(c, n):
        buf = b""
        while len(buf) < n:
            chunk = c.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def stop(self):
        self._stop.set()
        for th in self._threads:
            th.join(5)
        for s in self._socks:
            s.close()
