#!/usr/bin/python3
"""slowloris.py -- trickling clients against one SMTP server, and how a
good client fares meanwhile (for bench/slowloris.sh).

    slowloris.py HOST PORT -n N [-i SECONDS] [-t SECONDS]

Opens N connections that each send a command one byte every -i seconds
(default 1) and never finish it, then, while they trickle, runs complete
transactions one after the other for -t seconds (default 15): connect,
EHLO, MAIL, RCPT, DATA (a 2 KiB message), QUIT, each bounded by 10 s.
Prints one line of key=value:

  trickle     N asked for
  connected   tricklers whose connection was accepted
  greeted     tricklers that got a 220 (the others wait in a backlog)
  cut         tricklers the server closed during the run
  good        good transactions completed (250 after the data)
  failed      good transactions that failed or took more than 10 s
  p50_ms, p99_ms, max_ms   latency of the completed good transactions

Loopback only; every wait is bounded; the tricklers stop at the end.
"""

import argparse
import asyncio
import resource
import time

BODY = (b"Subject: slowloris bench\r\n\r\n"
        + (b"x" * 76 + b"\r\n") * 26 + b".\r\n")


class Stats:
    def __init__(self):
        self.connected = 0
        self.greeted = 0
        self.cut = 0
        self.lat = []
        self.failed = 0


async def trickler(host, port, interval, stop, st):
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    except (OSError, asyncio.TimeoutError):
        return
    st.connected += 1
    line = b"EHLO " + b"x" * 100000
    i = 0
    greeted = False
    try:
        while not stop.is_set() and i < len(line):
            if not greeted:
                try:
                    g = await asyncio.wait_for(r.read(512), 0.001)
                    if not g:
                        st.cut += 1
                        return
                    if g.startswith(b"220"):
                        greeted = True
                        st.greeted += 1
                except asyncio.TimeoutError:
                    pass
            elif r.at_eof():
                st.cut += 1
                return
            w.write(line[i:i + 1])
            i += 1
            await w.drain()
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except asyncio.TimeoutError:
                pass
            if greeted:
                # anything the server says now (421) ends it
                try:
                    d = await asyncio.wait_for(r.read(512), 0.001)
                    if not d or d.startswith(b"421"):
                        st.cut += 1
                        return
                except asyncio.TimeoutError:
                    pass
    except (OSError, ConnectionError):
        st.cut += 1
    finally:
        w.close()


async def expect(r, code):
    while True:
        line = await r.readline()
        if not line:
            raise ConnectionError("closed")
        if line[3:4] == b" ":
            if not line.startswith(code):
                raise ConnectionError(line.decode(errors="replace"))
            return


async def good_tx(host, port):
    r, w = await asyncio.open_connection(host, port)
    try:
        await expect(r, b"220")
        for cmd, code in ((b"EHLO good.client.test", b"250"),
                          (b"MAIL FROM:<good@client.test>", b"250"),
                          (b"RCPT TO:<u@peers-sink.localdomain>", b"250"),
                          (b"DATA", b"354")):
            w.write(cmd + b"\r\n")
            await expect(r, code)
        w.write(BODY)
        await expect(r, b"250")
        w.write(b"QUIT\r\n")
        await expect(r, b"221")
    finally:
        w.close()


async def main(a):
    st = Stats()
    stop = asyncio.Event()
    tasks = []
    for k in range(a.n):
        tasks.append(asyncio.create_task(
            trickler(a.host, a.port, a.interval, stop, st)))
        if k % 50 == 49:
            await asyncio.sleep(0.05)      # a ramp, not a SYN flood
    await asyncio.sleep(min(2.0, a.interval * 2))

    end = time.monotonic() + a.t
    while time.monotonic() < end:
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(good_tx(a.host, a.port), 10)
            st.lat.append((time.monotonic() - t0) * 1000)
        except (OSError, ConnectionError, asyncio.TimeoutError):
            st.failed += 1
            await asyncio.sleep(0.1)

    stop.set()
    await asyncio.wait(tasks, timeout=10) if tasks else None
    lat = sorted(st.lat)

    def pct(p):
        return "%.1f" % lat[min(len(lat) - 1, int(len(lat) * p))] \
            if lat else "-"
    print("trickle=%d connected=%d greeted=%d cut=%d good=%d failed=%d"
          " p50_ms=%s p99_ms=%s max_ms=%s"
          % (a.n, st.connected, st.greeted, st.cut, len(lat), st.failed,
             pct(0.5), pct(0.99), "%.1f" % lat[-1] if lat else "-"))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("-n", type=int, default=100)
    p.add_argument("-i", dest="interval", type=float, default=1.0)
    p.add_argument("-t", type=float, default=15.0)
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main(args))
