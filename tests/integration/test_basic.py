"""Basic receive path: a message goes in with smtplib and is in the spool,
byte for byte, with our Received: header on top."""

import unittest

from pstest import BASIC, PstTestCase


class BasicTest(PstTestCase):

    def test_send_and_store(self):
        srv = self.server(BASIC)
        body = b"Subject: hello\r\n\r\nline one\r\n.leading dot\r\n"
        refused = srv.send(body=body)
        self.assertEqual(refused, {})
        ids = srv.queue_ids()
        self.assertEqual(len(ids), 1)
        self.assertEqual(srv.body(ids[0]), body)
        env = srv.envelope(ids[0])
        self.assertIn("sender sender@client.test\n", env)
        self.assertIn("rcpt user@example.test ", env)
        self.assertTrue(env.endswith("end\n"))
        self.assertEqual(srv.tmp_files(), [])

    def test_relay_denied(self):
        srv = self.server(BASIC)
        with srv.raw() as c:
            self.assertReply(c.cmd("EHLO client.test"), 250)
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
            self.assertReply(c.cmd("RCPT TO:<victim@elsewhere.test>"), 550,
                             "5.7.1")


if __name__ == "__main__":
    unittest.main()
