#!/usr/bin/python3
"""session_auth_seeds.py -- write the seed corpus of fuzz_session_auth
(tests/fuzz/corpus/session_auth/) and print the SCRAM-SHA-256 secrets
that tests/fuzz/fuzz_session.c puts into its users file.

The harness makes OpenSSL's RAND_bytes() return zero bytes, so the
server nonce of every SCRAM exchange is 32 "A"s and a correct
client-final message can be computed here, for a known password.

Each seed: option byte (server: 2 = PLAIN LOGIN SCRAM CRAM-MD5, 3 = auth
required, case-insensitive names), write-size byte, then client bytes.
Run from anywhere: python3 tests/fuzz/session_auth_seeds.py
"""

import base64
import hashlib
import hmac
import os

ITER = 64
SALT = b"fuzzsaltfuzzsalt"
SNONCE = base64.b64encode(bytes(24)).decode()      # RAND_bytes: zeros
CNONCE = "fyko+d2lbbFgONRv9qkxdawL"

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "session_auth")


def b64(b):
    return base64.b64encode(b).decode()


def keys(password):
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), SALT, ITER)
    ckey = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    skey = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return ckey, hashlib.sha256(ckey).digest(), skey


def secret(password):
    _, stored, skey = keys(password)
    return "SCRAM-SHA-256$%d:%s$%s:%s" % (ITER, b64(SALT), b64(stored),
                                          b64(skey))


def scram(saslname, password, gs2="n,,", proof_ok=True):
    """The client's three lines of a SCRAM-SHA-256 exchange."""
    ckey, stored, _ = keys(password)
    bare = "n=%s,r=%s" % (saslname, CNONCE)
    first = gs2 + bare
    sfirst = "r=%s%s,s=%s,i=%d" % (CNONCE, SNONCE, b64(SALT), ITER)
    without = "c=%s,r=%s%s" % (b64(gs2.encode()), CNONCE, SNONCE)
    msg = ",".join((bare, sfirst, without)).encode()
    sig = hmac.new(stored, msg, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(ckey, sig))
    if not proof_ok:
        proof = bytes(32)
    final = without + ",p=" + b64(proof)
    return first, final


def crlf(*lines):
    return "".join(line + "\r\n" for line in lines)


def plain(zid, cid, pw):
    return b64(("%s\0%s\0%s" % (zid, cid, pw)).encode())


def seeds():
    ehlo = "EHLO client.test"
    first, final = scram("alice", "secret")
    yield "scram_alice", 2, crlf(ehlo, "AUTH SCRAM-SHA-256 " + b64(
        first.encode()), b64(final.encode()), "", "QUIT")
    yield "scram_empty_initial", 2, crlf(ehlo, "AUTH SCRAM-SHA-256",
                                         b64(first.encode()),
                                         b64(final.encode()), "", "QUIT")
    first, final = scram("bob", "hunter2")
    yield "scram_bob_required", 3, crlf(ehlo, "AUTH SCRAM-SHA-256 " + b64(
        first.encode()), b64(final.encode()), "",
        "MAIL FROM:<bob@example.test>", "QUIT")
    first, final = scram("we=2Cird=3Duser", "pa:ss", gs2="n,a=x,")
    yield "scram_escaped_name", 2, crlf(ehlo, "AUTH SCRAM-SHA-256 " + b64(
        first.encode()), b64(final.encode()), "*", "QUIT")
    first, final = scram("alice", "wrong", proof_ok=False)
    yield "scram_bad_proof", 2, crlf(ehlo, "AUTH SCRAM-SHA-256 " + b64(
        first.encode()), b64(final.encode()), "QUIT")
    first, final = scram("carol", "x")
    yield "scram_no_secret", 3, crlf(ehlo, "AUTH SCRAM-SHA-256 " + b64(
        first.encode()), b64(final.encode()), "QUIT")
    yield "plain", 2, crlf(ehlo, "AUTH PLAIN " + plain("", "alice",
                                                        "secret"),
                           "MAIL FROM:<a@example.test>", "QUIT")
    yield "plain_two_step", 3, crlf(ehlo, "AUTH PLAIN",
                                    plain("Bob", "BOB", "hunter2"), "QUIT")
    yield "plain_failures", 3, crlf(ehlo, "AUTH PLAIN " + plain("", "x",
                                                                 "y"),
                                    "AUTH PLAIN " + plain("alice", "carol",
                                                          "z"),
                                    "AUTH PLAIN =", "QUIT")
    yield "login", 2, crlf(ehlo, "AUTH LOGIN", b64(b"carol"),
                           b64(b"letmein"), "AUTH LOGIN", "QUIT")
    yield "login_initial", 3, crlf(ehlo, "AUTH LOGIN " + b64(b"alice"),
                                   b64(b"secret"), "QUIT")
    yield "cancel", 2, crlf(ehlo, "AUTH LOGIN", "*", "AUTH PLAIN", "*",
                            "AUTH CRAM-MD5", "*", "AUTH CRAM-MD5 =",
                            "AUTH SCRAM-SHA-256", "*", "QUIT")
    yield "xoauth", 3, crlf(ehlo, "AUTH XOAUTH2 " + b64(b"user=a\1auth=B"),
                            "AUTH plain " + plain("", "alice", "secret"),
                            "AUTH LOGIN", "QUIT")


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, server, text in seeds():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(bytes((server, 5)) + text.encode())
    for user, pw in (("alice", "secret"), ("bob", "hunter2"),
                     ("we,ird=user", "pa:ss")):
        print("%s (%s): %s" % (user, pw, secret(pw)))


if __name__ == "__main__":
    main()
