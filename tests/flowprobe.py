"""A stream of new flows: one UDP datagram every interval, each from a fresh socket (so a fresh
source port and a fresh conntrack entry, which mwan3 places by its policy), echoed by the target.

Why: mwan3 places *new* flows; an established flow (a single `ping`) stays on its tunnel. This
probe shows what a drain does for new flows. Modes: ``echo ADDR PORT`` (the target) and
``probe ADDR PORT INTERVAL`` (sends until stdin closes, waits 1 s for late replies, prints JSON
``{"sent": n, "lost": [seq, ...], "late_ms": max_rtt_ms}``).
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time


def echo(addr: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(data, peer)


def probe(addr: str, port: int, interval: float) -> None:
    open_: dict[socket.socket, tuple[int, float]] = {}
    got: set[int] = set()
    worst = 0.0
    seq = 0
    stop_at: float | None = None
    next_send = time.monotonic()
    while True:
        now = time.monotonic()
        if stop_at is None and now >= next_send:
            seq += 1
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            s.sendto(str(seq).encode(), (addr, port))
            open_[s] = (seq, now)
            next_send += interval
        if stop_at is not None and (now >= stop_at or not open_):
            break
        for s, (n, t0) in list(open_.items()):
            if now - t0 > 5.0:      # a flow that got no echo in 5 s is lost
                s.close()
                del open_[s]
        watch = [sys.stdin] if stop_at is None else []
        ready, _, _ = select.select(list(open_) + watch, [], [], 0.005)
        for r in ready:
            if r is sys.stdin:
                if not sys.stdin.readline():
                    stop_at = time.monotonic() + 5.0
                continue
            try:
                r.recv(2048)
            except OSError:
                continue
            n, t0 = open_.pop(r)
            worst = max(worst, time.monotonic() - t0)
            got.add(n)
            r.close()
    print(json.dumps({"sent": seq, "lost": sorted(set(range(1, seq + 1)) - got),
                      "late_ms": round(worst * 1000, 1)}))


if __name__ == "__main__":
    if sys.argv[1] == "echo":
        echo(sys.argv[2], int(sys.argv[3]))
    else:
        probe(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
