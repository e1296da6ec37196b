"""psttls -- TLS helpers for Postern's integration tests.

Certificates are made at run time with the openssl command line, under
the test's own directory: a CA, server and client certificates (ECDSA
or RSA), expired or not yet valid ones.  Nothing is committed.

    certs = Certs(os.path.join(srv_dir, "pki"))
    ca = certs.ca()
    crt, key = certs.issue("mx", "mx.example.test", ca=ca)
    ctx = client_context(ca)                  # verifies mx.example.test
    with TlsRaw(port) as c:                   # line-level client
        c.cmd("EHLO x"); c.starttls(ctx, "mx.example.test")
"""

import hashlib
import os
import socket
import ssl
import subprocess

from pstest import RawClient

OPENSSL = "/usr/bin/openssl"

CA_CONF = """
[ ca ]
default_ca = ca_default
[ ca_default ]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/issued
serial = {dir}/serial
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
[ policy_any ]
commonName = supplied
"""


def run(*args, **kw):
    p = subprocess.run(list(args), capture_output=True, text=True,
                       timeout=60, **kw)
    if p.returncode != 0:
        raise AssertionError("%s failed: %s" % (" ".join(args), p.stderr))
    return p.stdout


class CA:
    def __init__(self, dir, cert, key):
        self.dir = dir
        self.cert = cert
        self.key = key


class Certs:
    """A small PKI in one directory."""

    def __init__(self, dir):
        self.dir = dir
        os.makedirs(dir, exist_ok=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def key(self, name, kind="ec"):
        path = self.path(name + ".key")
        if kind == "rsa":
            run(OPENSSL, "genpkey", "-algorithm", "RSA", "-pkeyopt",
                "rsa_keygen_bits:2048", "-out", path)
        else:
            run(OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-out", path)
        os.chmod(path, 0o600)
        return path

    def ca(self, name="ca", cn="Postern Test CA"):
        d = self.path(name + ".d")
        os.makedirs(os.path.join(d, "issued"), exist_ok=True)
        open(os.path.join(d, "index.txt"), "w").close()
        with open(os.path.join(d, "serial"), "w") as f:
            f.write("%x\n" % (0x1000 + len(os.listdir(self.dir))))
        with open(os.path.join(d, "ca.cnf"), "w") as f:
            f.write(CA_CONF.format(dir=d))
        key = self.key(name)
        cert = self.path(name + ".crt")
        run(OPENSSL, "req", "-x509", "-new", "-key", key, "-subj",
            "/CN=" + cn, "-days", "3650", "-addext",
            "basicConstraints=critical,CA:TRUE", "-addext",
            "keyUsage=critical,keyCertSign,cRLSign", "-out", cert)
        return CA(d, cert, key)

    def issue(self, name, cn, ca, sans=None, kind="ec", client=False,
              start="-1d", end="+365d"):
        """A certificate signed by ca; start/end are offsets in days from
        now ("-400d", "+365d"): an end in the past makes it expired."""
        key = self.key(name, kind)
        csr = self.path(name + ".csr")
        crt = self.path(name + ".crt")
        run(OPENSSL, "req", "-new", "-key", key, "-subj", "/CN=" + cn,
            "-out", csr)
        sans = sans if sans is not None else ["DNS:" + cn]
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n")
            f.write("extendedKeyUsage=%s\n"
                    % ("clientAuth" if client else "serverAuth"))
            if sans:
                f.write("subjectAltName=%s\n" % ",".join(sans))
        run(OPENSSL, "ca", "-batch", "-config",
            os.path.join(ca.dir, "ca.cnf"), "-cert", ca.cert, "-keyfile",
            ca.key, "-in", csr, "-out", crt, "-notext", "-extfile", ext,
            "-startdate", stamp(start), "-enddate", stamp(end))
        return crt, key

    def self_signed(self, name, cn, kind="ec"):
        key = self.key(name, kind)
        crt = self.path(name + ".crt")
        run(OPENSSL, "req", "-x509", "-new", "-key", key, "-subj",
            "/CN=" + cn, "-days", "30", "-addext",
            "subjectAltName=DNS:" + cn, "-out", crt)
        return crt, key


def stamp(offset):
    """"-1d" -> an openssl ca date (UTC, YYYYMMDDHHMMSSZ)."""
    import datetime
    sign = -1 if offset.startswith("-") else 1
    days = int(offset.strip("+-d"))
    t = datetime.datetime.now(datetime.timezone.utc) \
        + datetime.timedelta(days=sign * days)
    return t.strftime("%Y%m%d%H%M%SZ")


def der(cert_file):
    with open(cert_file) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def client_context(ca=None, cert=None, key=None, verify=True,
                   minimum=None, maximum=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify and ca is not None:
        ctx.load_verify_locations(ca.cert if isinstance(ca, CA) else ca)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


class TlsRaw(RawClient):
    """RawClient that can switch to TLS (STARTTLS) or start in it."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, greet=True,
                 tls=None, server_hostname=None):
        if tls is None:
            super().__init__(port, host, timeout, greet)
            return
        sock = socket.create_connection((host, port), timeout=timeout)
        self.sock = tls.wrap_socket(sock, server_hostname=server_hostname)
        self.buf = b""
        self.greeting = self.reply() if greet else None

    def starttls(self, ctx, server_hostname=None, command=True):
        if command:
            code, lines = self.cmd("STARTTLS")
            if code != 220:
                raise AssertionError("STARTTLS answered %d %s"
                                     % (code, lines))
        if self.buf:
            raise AssertionError("bytes after the 220: %r" % self.buf)
        self.sock = ctx.wrap_socket(self.sock,
                                    server_hostname=server_hostname)
        return self.sock

    def peer_der(self):
        return self.sock.getpeercert(binary_form=True)

    def ehlo(self, name="client.test"):
        code, lines = self.cmd("EHLO " + name)
        if code != 250:
            raise AssertionError("EHLO answered %d %s" % (code, lines))
        return [l.split(" ")[0].upper() for l in lines[1:]], lines


TLS_SERVER = """
smtp {{
    hostname mx.example.test;
    tls_certificate     {crt};
    tls_certificate_key {key};
    {extra}
    server {{
        listen {{port}};
        {srv_extra}
        local_domains example.test localhost;
    }}
}}
"""


def tls_conf(crt, key, extra="", srv_extra=""):
    return TLS_SERVER.format(crt=crt, key=key, extra=extra,
                             srv_extra=srv_extra)


import shutil  # noqa: E402
import unittest  # noqa: E402

from pstest import PstTestCase, ROOT, RUN  # noqa: E402


def build(target):
    """run.py does not build: make a test helper (objs/tests/...) when
    it is missing; skip the test when that fails."""
    path = os.path.join(ROOT, target)
    if not os.path.exists(path):
        subprocess.run(["make", "-s", target], cwd=ROOT,
                       capture_output=True, timeout=300)
    if not os.path.exists(path):
        raise unittest.SkipTest(target + " could not be built")
    return path


class TlsTestCase(PstTestCase):
    """A PstTestCase with a fresh PKI per test: self.ca, and the server
    certificate self.crt/self.key for mx.example.test."""

    def setUp(self):
        super().setUp()
        name = self.id().split(".", 1)[-1].replace(".", "_")
        d = os.path.join(RUN, name + "-pki")
        shutil.rmtree(d, ignore_errors=True)
        self.pki = Certs(d)
        self.ca = self.pki.ca()
        # smtplib checks the name it connected to: 127.0.0.1
        self.crt, self.key = self.pki.issue(
            "mx", "mx.example.test", self.ca,
            sans=["DNS:mx.example.test", "IP:127.0.0.1"])
        self.ctx = client_context(self.ca)

    def tls_server(self, extra="", srv_extra="", **kw):
        return self.server(tls_conf(self.crt, self.key, extra, srv_extra),
                           **kw)


def spki_sha256(crt):
    """The SHA-256 of a certificate's SubjectPublicKeyInfo, in hex: the
    data of a TLSA "3 1 1" record."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    with open(crt, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()
