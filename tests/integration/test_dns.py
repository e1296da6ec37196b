"""Asynchronous DNS in the worker: with a `resolver` pointing at a
dnsmasq started by the test, the core looks up the client's name
(PTR, then forward-confirmed) without blocking, and the Received: header
and envelope carry it.  Without a resolver line nothing is looked up."""

import unittest

from pstest import PstTestCase


CONF = """
smtp {
    hostname mx.example.test;
    smtp_dns_timeout 3s;
    server { listen {port}; local_domains example.test; }
}
"""


class DnsTest(PstTestCase):

    def start(self, records):
        dns = self.dnsmasq(records)
        return dns, self.server(CONF, resolver=dns.address)

    def test_forward_confirmed_name(self):
        dns, srv = self.start([
            "--ptr-record=1.0.0.127.in-addr.arpa,client.example.test",
            "--host-record=client.example.test,127.0.0.1"])
        srv.send()
        qid = srv.queue_ids()[0]
        self.assertIn(b"(client.example.test [127.0.0.1])", srv.message(qid))
        self.assertIn("client-name client.example.test\n", srv.envelope(qid))
        self.assertIn("1.0.0.127.in-addr.arpa", dns.queries())

    def test_unconfirmed_name_is_unknown(self):
        # the PTR points at a name whose address is not the client's
        dns, srv = self.start([
            "--ptr-record=1.0.0.127.in-addr.arpa,liar.example.test",
            "--host-record=liar.example.test,127.0.0.9"])
        srv.send()
        qid = srv.queue_ids()[0]
        self.assertIn(b"(unknown [127.0.0.1])", srv.message(qid))
        self.assertNotIn("client-name", srv.envelope(qid))
        self.assertIn("liar.example.test", dns.queries())

    def test_unsafe_ptr_name_ignored(self):
        # a name with characters that must never reach a protocol line
        dns, srv = self.start([
            "--ptr-record=1.0.0.127.in-addr.arpa,bad(name).example.test",
            "--host-record=bad(name).example.test,127.0.0.1"])
        srv.send()
        qid = srv.queue_ids()[0]
        self.assertIn(b"(unknown [127.0.0.1])", srv.message(qid))

    def test_no_resolver_no_lookup(self):
        dns = self.dnsmasq(["--ptr-record=1.0.0.127.in-addr.arpa,x.test"])
        srv = self.server(CONF)
        srv.send()
        self.assertIn(b"(unknown [127.0.0.1])",
                      srv.message(srv.queue_ids()[0]))
        self.assertNotIn("in-addr.arpa", dns.queries())

    def test_dead_resolver_does_not_block(self):
        # nothing answers on this port: the lookup times out, the
        # session goes on (greeting within the DNS timeout + margin)
        from pstest import free_port_udp
        srv = self.server(CONF, resolver="127.0.0.1:%d" % free_port_udp())
        with srv.raw(timeout=15) as c:
            self.assertEqual(c.greeting[0], 220)


if __name__ == "__main__":
    unittest.main()
