"""The outbound side of pst_ssl (what relay code and postern-send use):
verify modes none / opportunistic / verify-peer, CA file and CA
directory, host name check, client certificates, STARTTLS, against
openssl s_server (valid, expired and wrongly named certificates) and
against Postern itself.  Driven through objs/tests/tls_probe."""

import os
import socket
import subprocess
import time
import unittest

from pstest import OBJS, free_port, stop_process, wait_for
from psttls import TlsTestCase, build, tls_conf

PROBE = os.path.join(OBJS, "tests", "tls_probe")


class SServer:
    """openssl s_server on loopback with a given certificate."""

    def __init__(self, crt, key, dir):
        self.port = free_port()
        self.log = open(os.path.join(dir, "s_server-%d.log" % self.port),
                        "wb")
        self.proc = subprocess.Popen(
            ["openssl", "s_server", "-accept", "127.0.0.1:%d" % self.port,
             "-cert", crt, "-key", key, "-quiet", "-naccept", "100"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError("s_server exited")
            try:
                socket.create_connection(("127.0.0.1", self.port),
                                         timeout=1).close()
                return True
            except OSError:
                return False
        wait_for(listening, 10, what="openssl s_server")

    def stop(self):
        stop_process(self.proc)
        self.log.close()


def probe(port, *args):
    p = subprocess.run([PROBE] + list(args) + ["127.0.0.1", str(port)],
                       capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout.strip()


class TlsClientTest(TlsTestCase):

    @classmethod
    def setUpClass(cls):
        build("objs/tests/tls_probe")

    def s_server(self, crt, key):
        s = SServer(crt, key, self.pki.dir)
        self._peers.append(s)
        return s.port

    def test_verify_modes_against_expired_certificate(self):
        ecrt, ekey = self.pki.issue("expired", "mx.example.test", self.ca,
                                    start="-400d", end="-10d")
        port = self.s_server(ecrt, ekey)
        ca = self.ca.cert

        rc, out = probe(port, "-v", "verify", "-a", ca, "-n",
                        "mx.example.test")
        self.assertEqual(rc, 1, out)
        self.assertIn("certificate has expired", out)

        rc, out = probe(port, "-v", "opportunistic", "-a", ca, "-n",
                        "mx.example.test")
        self.assertEqual(rc, 0, out)
        self.assertIn("verified=0", out)
        self.assertIn("error=certificate has expired", out)

        rc, out = probe(port, "-v", "none")
        self.assertEqual(rc, 0, out)
        self.assertIn("verified=0", out)

    def test_verify_peer_valid_and_wrong_name(self):
        port = self.s_server(self.crt, self.key)
        ca = self.ca.cert
        rc, out = probe(port, "-v", "verify", "-a", ca, "-n",
                        "mx.example.test")
        self.assertEqual((rc, out.split()[:2]), (0, ["ok", "verified=1"]),
                         out)
        self.assertIn("version=TLSv1.3", out)
        # the host name is part of the check
        rc, out = probe(port, "-v", "verify", "-a", ca, "-n", "other.test")
        self.assertEqual(rc, 1, out)
        self.assertIn("hostname mismatch", out)
        rc, out = probe(port, "-v", "opportunistic", "-a", ca, "-n",
                        "other.test")
        self.assertEqual(rc, 0, out)
        self.assertIn("verified=0", out)
        # an unknown CA
        other = self.pki.ca("other", "Other CA")
        rc, out = probe(port, "-v", "verify", "-a", other.cert, "-n",
                        "mx.example.test")
        self.assertEqual(rc, 1, out)
        self.assertIn("unable to get local issuer certificate", out)

    def test_ca_directory(self):
        port = self.s_server(self.crt, self.key)
        d = os.path.join(self.pki.dir, "cadir")
        os.makedirs(d)
        subprocess.run(["cp", self.ca.cert, d], check=True)
        subprocess.run(["openssl", "rehash", d], check=True,
                       capture_output=True)
        rc, out = probe(port, "-v", "verify", "-d", d, "-n",
                        "mx.example.test")
        self.assertEqual(rc, 0, out)
        self.assertIn("verified=1", out)

    def test_missing_ca_file(self):
        rc, out = probe(1, "-v", "verify", "-a", "/nonexistent/ca.pem")
        self.assertEqual(rc, 1)
        self.assertIn("cannot load CA", out)

    def test_starttls_and_client_certificate_against_postern(self):
        ccrt, ckey = self.pki.issue("client", "relay.client.test", self.ca,
                                    client=True)
        srv = self.server(tls_conf(self.crt, self.key,
                                   "tls_client_certificate %s;\n"
                                   "    tls_verify_client optional;"
                                   % self.ca.cert))
        rc, out = probe(srv.port, "-s", "-v", "verify", "-a", self.ca.cert,
                        "-n", "mx.example.test", "-c", ccrt, "-k", ckey)
        self.assertEqual(rc, 0, out)
        self.assertIn("verified=1", out)
        wait_for(lambda: 'client="CN=relay.client.test" verified'
                 in srv.log(), 5, what="client certificate seen")

    def test_handshake_timeout(self):
        # a server that accepts and says nothing
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        port = lsock.getsockname()[1]
        t0 = time.monotonic()
        rc, out = probe(port, "-v", "none", "-t", "500")
        lsock.close()
        self.assertEqual(rc, 1, out)
        self.assertIn("handshake timed out", out)
        self.assertLess(time.monotonic() - t0, 10)


if __name__ == "__main__":
    unittest.main()
