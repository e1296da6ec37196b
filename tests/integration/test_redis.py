"""Redis as the state several Postern nodes share (issue #14): two
servers on loopback ports (the nodes) and one real redis-server that the
test starts on a loopback port (tests/integration/pstredis.py).  A rate
limit reached on node A holds on node B; greylisting passed on A passes
on B; AUTH failures add up over both; with Redis stopped the sessions
are served at once with the fallback, and when it comes back the shared
state resumes; Redis slow, flushed, refusing the password, never there.

These are two instances on 127.0.0.1 (distinct ports, spools and shared
memory): what the shared state sees is the same either way, the same
client address on two nodes, and loopback needs no privileges.  The
deployment the issue asks for -- three nodes in network namespaces, each
with its own address, a client spreading connections over them, a drain
from one node into another -- is tests/integration/test_nodes.py."""

import os
import time
import unittest

from pstest import PstTestCase, RUN, free_port, plain, passwd_line
from pstredis import RedisPeer

MODULES = ("store_spool", "policy_limits", "policy_greylist",
           "policy_relay")

NODE = """
smtp {
    hostname %s.example.test;
    server {
        listen {port};
        local_domains example.test;
        %s
    }
}
"""


class RedisCase(PstTestCase):

    def redis(self, args=()):
        r = RedisPeer(self.id().split(".", 1)[-1].replace(".", "_"), args)
        self._peers.append(r)
        return r

    def node(self, name, redis, server_conf, top="", wait=True,
             modules=MODULES, workers=1):
        srv = self.server(NODE % (name, server_conf), modules=modules,
                          workers=workers,
                          name=self.id().split(".")[-1] + "_" + name,
                          extra_top="redis_server %s;\nredis_timeout 200ms;"
                                    "\n%s" % (redis.address, top))
        if wait:
            self.connected(srv)
        return srv

    def connected(self, srv, count=1):
        # the worker and the queue process each have a connection
        srv.wait_log(r"worker: \w+: redis [^ ]+: connected", count=count)

    def mail(self, srv, sender="s@client.test"):
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            return c.cmd("MAIL FROM:<%s>" % sender)[0]


class SharedLimitsTest(RedisCase):

    LIMITS = "greylist off; limit_msg_rate 2/h; limit_backend redis;"

    def test_rate_reached_on_a_holds_on_b(self):
        r = self.redis()
        a = self.node("a", r, self.LIMITS)
        b = self.node("b", r, self.LIMITS)

        self.assertEqual(self.mail(a), 250)
        self.assertEqual(self.mail(a), 250)
        # node B has never seen this client: only Redis knows it is over
        self.assertEqual(self.mail(b), 451)
        self.assertEqual(self.mail(a), 451)
        b.wait_log(r"limit_msg_rate 2/h \(burst 2\) exceeded by 127\.0\.0\.1$")

        self.assertEqual(r.keys(), ["postern:limit:msg:127.0.0.1"])
        ttl = r.call("PTTL", "postern:limit:msg:127.0.0.1")
        self.assertTrue(0 < ttl <= 3600 * 1000 + 1, ttl)

    def test_connection_rate_with_greeting_delay(self):
        # the connect hook waits for Redis, then for the greeting delay;
        # the test's client is 127.0.0.2 (the start's probes, from
        # 127.0.0.1, are exempt)
        conf = ("greylist off; limit_conn_rate 1/h; greet_delay 300ms;"
                " limit_backend redis; limit_exempt 127.0.0.1;")
        r = self.redis()
        a = self.node("a", r, conf)
        b = self.node("b", r, conf)
        t0 = time.monotonic()
        with a.raw(source="127.0.0.2") as c:
            self.assertEqual(c.greeting[0], 220)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        with b.raw(source="127.0.0.2") as c:
            self.assertEqual(c.greeting[0], 421)
        self.assertEqual(r.keys(), ["postern:limit:conn:127.0.0.2"])

    def test_shm_backend_stays_local(self):
        # the default: each node counts alone (the test above fails so)
        r = self.redis()
        a = self.node("a", r, "greylist off; limit_msg_rate 2/h;")
        b = self.node("b", r, "greylist off; limit_msg_rate 2/h;")
        self.assertEqual([self.mail(a) for _ in range(3)], [250, 250, 451])
        self.assertEqual(self.mail(b), 250)
        self.assertEqual(r.keys(), [])

    def test_script_flushed_is_sent_again(self):
        # EVALSHA answers NOSCRIPT after a flush: the core sends EVAL
        r = self.redis()
        a = self.node("a", r, self.LIMITS)
        self.assertEqual(self.mail(a), 250)
        self.assertEqual(r.call("SCRIPT", "FLUSH"), "OK")
        self.assertEqual(self.mail(a), 250)
        self.assertEqual(self.mail(a), 451)
        self.assertNotIn("Redis", a.log().split("connected", 1)[-1])

    def test_redis_stopped_then_restarted(self):
        r = self.redis()
        a = self.node("a", r, self.LIMITS)
        b = self.node("b", r, self.LIMITS)
        self.assertEqual(self.mail(a), 250)

        r.stop()
        # served at once, by each node's own bucket: A has taken one
        # token of 2 (its local bucket counts too), B none
        t0 = time.monotonic()
        self.assertEqual(self.mail(a), 250)
        self.assertEqual(self.mail(a), 451)
        self.assertEqual([self.mail(b) for _ in range(3)], [250, 250, 451])
        self.assertLess(time.monotonic() - t0, 5.0)
        a.wait_log(r"redis [^ ]+: connection lost")

        # an empty Redis again: reconnected, the rate is shared anew
        r.start()
        self.connected(a, 2)
        self.connected(b, 2)
        self.assertEqual(self.mail(b), 250)
        self.assertEqual(self.mail(b), 250)
        self.assertEqual(self.mail(a), 451)
        self.assertEqual(r.keys(), ["postern:limit:msg:127.0.0.1"])

    def test_redis_slow(self):
        # a Redis that accepts and never answers (stopped): each command
        # waits redis_timeout (200ms), then the local bucket decides;
        # the connection is dropped after ten timeouts without a reply
        # and made again when Redis answers
        r = self.redis()
        a = self.node("a", r, self.LIMITS)
        self.assertEqual(self.mail(a), 250)
        r.pause()
        t0 = time.monotonic()
        self.assertEqual(self.mail(a), 250)
        self.assertEqual(self.mail(a), 451)
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, 0.4)
        self.assertLess(took, 3.0)
        a.wait_log(r"policy_limits: limit_msg_rate: Redis timed out")
        a.wait_log(r"redis [^ ]+: no reply for \d+ ms: reconnecting", 10)
        r.resume()
        self.connected(a, 2)
        self.assertEqual(self.mail(a), 451)     # Redis: 2 of 2 taken

    def test_client_gone_while_redis_is_asked(self):
        # the pending calls' cancel callbacks cancel the commands; the
        # late replies (or their timeouts) find nothing to resume
        users = os.path.join(RUN, "redis-users2-%d" % os.getpid())
        with open(users, "w") as f:
            f.write(passwd_line("bob", "builder") + "\n")
        self.addCleanup(os.unlink, users)
        r = self.redis()
        a = self.node("a", r, self.LIMITS + " greylist_backend redis;"
                      " auth_users_file %s; auth_allow_plaintext on;"
                      " auth_client_backend redis;" % users,
                      modules=MODULES + ("auth_file",))
        r.pause()
        for cmd in ("MAIL FROM:<s@client.test>",
                    "AUTH PLAIN " + plain("bob", "builder")):
            c = a.raw()
            c.cmd("EHLO client.test")
            c.send(cmd + "\r\n")
            time.sleep(0.05)
            c.close()
        time.sleep(0.5)
        r.resume()
        self.assertEqual(self.mail(a), 250)
        with a.raw() as c:
            c.cmd("EHLO client.test")
            self.assertEqual(c.cmd("AUTH PLAIN " + plain("bob", "builder"))[0],
                             235)

    def test_redis_never_there(self):
        port = free_port()
        a = self.server(NODE % ("a", self.LIMITS), modules=MODULES,
                        workers=1, extra_top="redis_server 127.0.0.1:%d;"
                        % port)
        t0 = time.monotonic()
        self.assertEqual([self.mail(a) for _ in range(3)], [250, 250, 451])
        self.assertLess(time.monotonic() - t0, 5.0)
        a.wait_log(r"redis 127\.0\.0\.1:%d: cannot connect" % port)

    def test_backend_redis_needs_redis_server(self):
        a = self.server(NODE % ("a", self.LIMITS), modules=MODULES,
                        start=False)
        r = a.run_tool("-t")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("a Redis backend needs \"redis_server\"", r.stderr)


class SharedGreylistTest(RedisCase):

    GREY = ("greylist on; greylist_delay 1s; greylist_backend redis;"
            " %s")

    def rcpt(self, srv, rcpt="user@example.test", sender="s@client.test"):
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            self.assertEqual(c.cmd("MAIL FROM:<%s>" % sender)[0], 250)
            return c.cmd("RCPT TO:<%s>" % rcpt)[0]

    def test_passed_on_a_passes_on_b(self):
        r = self.redis()
        a = self.node("a", r, self.GREY % "")
        b = self.node("b", r, self.GREY % "")
        self.assertEqual(self.rcpt(a), 451)
        # the retry goes to B: too early there as well
        self.assertEqual(self.rcpt(b), 451)
        b.wait_log(r"policy_greylist: tempfail postern:grey:127\.0\.0\.0/24:"
                   r"s@client\.test:user@example\.test: early retry")
        time.sleep(1.1)
        self.assertEqual(self.rcpt(a), 250)
        # B never passed it itself
        self.assertEqual(self.rcpt(b), 250)
        key = "postern:grey:127.0.0.0/24:s@client.test:user@example.test"
        self.assertEqual(r.keys("postern:grey:*"), [key])
        self.assertTrue(r.call("GET", key).startswith("p:"))
        # greylist_expire (35d) from the last use
        self.assertGreater(r.call("PTTL", key), 34 * 86400 * 1000)
        # another recipient is a triplet of its own
        self.assertEqual(self.rcpt(b, "other@example.test"), 451)

    def test_shm_backend_stays_local(self):
        r = self.redis()
        a = self.node("a", r, "greylist on; greylist_delay 1s;")
        b = self.node("b", r, "greylist on; greylist_delay 1s;")
        self.assertEqual(self.rcpt(a), 451)
        time.sleep(1.1)
        self.assertEqual(self.rcpt(a), 250)
        self.assertEqual(self.rcpt(b), 451)

    def test_redis_down_fallback_pass_then_back(self):
        r = self.redis()
        a = self.node("a", r, self.GREY % "")
        b = self.node("b", r, self.GREY % "greylist_redis_fallback tempfail;")
        r.stop()
        t0 = time.monotonic()
        self.assertEqual(self.rcpt(a), 250)            # pass
        self.assertEqual(self.rcpt(b), 451)            # tempfail
        self.assertLess(time.monotonic() - t0, 5.0)
        a.wait_log(r"policy_greylist: Redis (unavailable|went down): pass")
        b.wait_log(r"policy_greylist: Redis (unavailable|went down): "
                   r"tempfail")
        r.start()
        self.connected(a, 2)
        self.connected(b, 2)
        self.assertEqual(self.rcpt(b), 451)            # greylisted anew
        self.assertEqual(self.rcpt(a), 451)
        self.assertEqual(len(r.keys("postern:grey:*")), 1)


class SharedAuthFailuresTest(RedisCase):

    AUTH = ("greylist off; auth_users_file %s; auth_allow_plaintext on;"
            " auth_failure_delay 0; auth_max_failures 100;"
            " auth_client_failures 3; auth_client_block_time 1m; %s")

    def setUp(self):
        super().setUp()
        self.users = os.path.join(RUN, "redis-users-%d" % os.getpid())
        with open(self.users, "w") as f:
            f.write(passwd_line("bob", "builder") + "\n")
        self.addCleanup(os.unlink, self.users)

    def nodes(self, backend="auth_client_backend redis;"):
        r = self.redis()
        conf = self.AUTH % (self.users, backend)
        mods = MODULES + ("auth_file",)
        return (r, self.node("a", r, conf, modules=mods),
                self.node("b", r, conf, modules=mods))

    def auth(self, srv, password):
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            return c.cmd("AUTH PLAIN " + plain("bob", password))[0]

    def test_failures_add_up_over_both_nodes(self):
        r, a, b = self.nodes()
        self.assertEqual(self.auth(a, "wrong1"), 535)
        self.assertEqual(self.auth(a, "wrong2"), 535)
        # the third failure is B's first: the address is blocked on both
        self.assertEqual(self.auth(b, "wrong3"), 535)
        b.wait_log(r"3 authentication failures from 127\.0\.0\.1 on all"
                   r" nodes: AUTH blocked for 60 s")
        self.assertEqual(self.auth(b, "builder"), 454)
        # A never counted three itself: it learns the block from Redis
        self.assertEqual(self.auth(a, "builder"), 454)
        self.assertEqual(r.keys("postern:auth:*"),
                         ["postern:auth:block:127.0.0.1",
                          "postern:auth:fail:127.0.0.1"])
        self.assertGreater(r.call("PTTL", "postern:auth:block:127.0.0.1"),
                           50000)

    def test_shm_backend_counts_per_node(self):
        r, a, b = self.nodes("")
        self.assertEqual(self.auth(a, "wrong1"), 535)
        self.assertEqual(self.auth(a, "wrong2"), 535)
        self.assertEqual(self.auth(b, "wrong3"), 535)
        self.assertEqual(self.auth(b, "builder"), 235)
        self.assertEqual(self.auth(a, "builder"), 235)

    def test_redis_down_auth_served(self):
        r, a, b = self.nodes()
        r.stop()
        t0 = time.monotonic()
        self.assertEqual(self.auth(a, "builder"), 235)
        self.assertEqual(self.auth(a, "wrong"), 535)
        self.assertEqual(self.auth(b, "builder"), 235)
        self.assertLess(time.monotonic() - t0, 5.0)
        # this node's own count still blocks
        self.assertEqual(self.auth(a, "wrong"), 535)
        self.assertEqual(self.auth(a, "wrong"), 535)
        self.assertEqual(self.auth(a, "builder"), 454)
        r.start()
        self.connected(b, 2)
        self.assertEqual(self.auth(b, "wrong"), 535)
        self.assertEqual(r.call("GET", "postern:auth:fail:127.0.0.1"), "1")


class RedisConnectionTest(RedisCase):

    def test_acl_user_and_password(self):
        # the ACL docs/SCALING.md gives: only the prefix, only the
        # commands the core and the scripts use
        acl = ("on >s3cret ~postern:* +get +set +incr +pexpire +pttl"
               " +time +eval +evalsha +script|load +ping +select"
               " +auth").split()
        r = self.redis(["--user", "default", "off", "--user", "postern"]
                       + acl)
        pw = os.path.join(RUN, "redis-pw-%d" % os.getpid())
        with open(pw, "w") as f:
            f.write("s3cret\n")
        self.addCleanup(os.unlink, pw)
        a = self.node("a", r, "greylist off; limit_msg_rate 1/h;"
                      " limit_backend redis;",
                      top="redis_user postern;\nredis_password_file %s;"
                      % pw)
        self.assertEqual(self.mail(a), 250)
        self.assertEqual(self.mail(a), 451)
        a.wait_log(r"limit_msg_rate 1/h \(burst 1\) exceeded by "
                   r"127\.0\.0\.1$")
        # a command a script calls and the ACL refuses would show here
        self.assertNotIn("Redis", a.log())
        self.assertNotIn("script", a.log())

    def test_wrong_password_is_logged_and_falls_back(self):
        r = self.redis(["--requirepass", "right"])
        pw = os.path.join(RUN, "redis-pw-%d" % os.getpid())
        with open(pw, "w") as f:
            f.write("wrong\n")
        self.addCleanup(os.unlink, pw)
        a = self.node("a", r, "greylist off; limit_msg_rate 1/h;"
                      " limit_backend redis;",
                      top="redis_password_file %s;" % pw, wait=False)
        a.wait_log(r"redis [^ ]+: AUTH refused: WRONGPASS")
        self.assertEqual(self.mail(a), 250)
        self.assertEqual(self.mail(a), 451)       # the local bucket
        self.assertEqual(r.keys(), [])


if __name__ == "__main__":
    unittest.main()
