"""What a module keeps with a queued message (pst_qevent_set_ctx(),
ABI 1.2) in a running server: the test module qctx_facts keeps a copy
of the queue ID from ENQUEUED and logs what it finds at each outcome
and when its cleanup runs.  The state is there at the outcomes; it is
freed when the queue process exits (a reload here) and comes back with
the ENQUEUED the next queue process tells for the message it finds;
it is freed again when the message leaves the queue (removed once
every recipient is final); an event without a message cannot keep
any."""

import re

from pstest import PstTestCase, free_port, wait_for
from psttls import build
from test_send import Sink

from aiosmtpd.controller import Controller


class QueueStateTest(PstTestCase):

    def test_kept_freed_at_exit_and_removal(self):
        sink = Sink()
        port = free_port()
        ctl = Controller(sink, hostname="127.0.0.1", port=port,
                         decode_data=False)
        ctl.start()
        self.addCleanup(ctl.stop)
        module = build("objs/tests/modules/qctx_facts.so")
        srv = self.server("""
            smtp { server { listen {port}; relay_domains example.net; } }
        """, extra_top="""
            load_module {modules}/relay_smarthost.so;
            relay_host [127.0.0.1]:%d;
            relay_host_tls none;
            relay_min_backoff 1s;
            load_module %s;
        """ % (port, module))
        self.assertEqual(srv.send(rcpts=("ok@example.net",
                                         "later@example.net")), {})
        srv.wait_log(r"qctx_facts: deferred \w+ kept \w+")
        qid = re.search(r"qctx_facts: delivered (\w+) kept (\w+)",
                        srv.log())
        self.assertIsNotNone(qid, srv.log())
        qid, kept = qid.groups()
        self.assertEqual(kept, qid)
        self.assertIn("qctx_facts: deferred %s kept %s" % (qid, qid),
                      srv.log())
        self.assertIn("qctx_facts: resolved set=-1", srv.log())
        self.assertNotIn("qctx_facts: freed", srv.log())

        # the queue process exits: freed; the next one finds the message
        # and its ENQUEUED keeps it again
        srv.reload()
        srv.wait_log(r"qctx_facts: freed %s" % qid)
        sink.later_ok = True
        srv.wait_log(r"qctx_facts: delivered %s kept %s" % (qid, qid),
                     timeout=20)

        # every recipient final: removed, then freed (once more)
        srv.wait_log(r"qctx_facts: freed %s" % qid, count=2)
        log = srv.log()
        self.assertLess(log.index("%s: removed" % qid),
                        log.rindex("qctx_facts: freed %s" % qid), log)
        self.assertEqual(log.count("kept none"), 0, log)
        wait_for(lambda: srv.queue_count() == 0, 10, what="empty queue")
