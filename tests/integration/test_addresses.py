"""What a module sees of an address (issue #11's friction list):
pst_call_rcpt() keeps a quoted local part as the client wrote it, so a
check on that string can be fooled by quoting; pst_call_rcpt_local()
and pst_tx_sender_local() give the local part unquoted (RFC 5321
4.1.2), pst_call_rcpt_domain() and pst_tx_sender_domain() the domain,
lowercased.  The test module addr_facts refuses the local part
"noreply" as a policy plugin would and says what it saw."""

import unittest

from pstest import PstTestCase
from psttls import build

CONF = """
smtp {
    hostname mx.example.test;
    server {
        listen {port};
        local_domains example.test;
    }
}
"""


class AddressPartsTest(PstTestCase):

    def setUp(self):
        super().setUp()
        module = build("objs/tests/modules/addr_facts.so")
        self.srv = self.server(CONF, extra_top="load_module %s;\n" % module)

    def rcpt(self, addr):
        with self.srv.raw() as c:
            self.assertReply(c.cmd("EHLO client.test"), 250)
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
            return c.cmd("RCPT TO:<%s>" % addr)

    def test_quoted_recipient_is_caught(self):
        for addr in ('noreply@example.test', '"noreply"@Example.TEST',
                     '"no\\reply"@example.test', '"\\n\\o\\r\\e\\ply"@'
                     'EXAMPLE.test'):
            raw = addr.split("@")[0] + "@example.test"
            self.assertReply(self.rcpt(addr), 550,
                             "rcpt local=<noreply> domain=<example.test>"
                             " raw=<%s>" % raw)
        # a different mailbox, quoted or not, is not
        for addr in ('"no reply"@example.test', 'noreply2@example.test',
                     '"noreply."@example.test'):
            self.assertReply(self.rcpt(addr), 250)

    def test_postmaster_without_domain(self):
        self.assertReply(self.rcpt("Postmaster"), 450,
                         "rcpt local=<Postmaster> domain=<>"
                         " raw=<Postmaster>")

    def test_quoted_sender_is_caught(self):
        with self.srv.raw() as c:
            self.assertReply(c.cmd("EHLO client.test"), 250)
            self.assertReply(c.cmd('MAIL FROM:<"no\\reply"@Client.TEST>'),
                             550, 'sender local=<noreply>'
                             ' domain=<client.test>'
                             ' raw=<"no\\reply"@client.test>')

    def test_sender_parts_at_end_of_data(self):
        body = b"Subject: parts\r\n\r\nhi\r\n"
        with self.srv.raw() as c:
            self.assertReply(c.cmd("EHLO client.test"), 250)
            for sender, want in (('"a\\ b"@Client.Test', "local=<a b>"
                                  " domain=<client.test>"),
                                 ("", "local=<> domain=<>")):
                self.assertReply(self.srv.transaction(
                    c, body, sender=sender), 250)
                qid = self.srv.queue_ids()
                cat = "".join(self.srv.run_tool("queue", "cat", q).stdout
                              for q in qid)
                self.assertIn("X-Addr-Facts: sender " + want, cat)


if __name__ == "__main__":
    unittest.main()
