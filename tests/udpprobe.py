"""UDP traffic for the netns labs: an echo, and new flows that each come from a fresh socket.

Why: mwan3 places *new* flows (a fresh source port is a fresh conntrack entry, placed by its
policy); an established flow stays where it started. A drain or a handover is judged by what
happens to both. Run inside a lab host (``Lab.argv_for``); stops when stdin closes.

Modes:

- ``echo ADDR PORT [--via]``: send every datagram back; with ``--via`` followed by a space and the
  source address it came from (an uplink's masqueraded WAN address names the path it took).
- ``stream ADDR PORT INTERVAL``: one new flow every INTERVAL; after stdin closes, waits up to 5 s
  for late replies and prints ``{"sent": n, "lost": [seq, ...], "late_ms": slowest_rtt_ms}``
  (rotate_lab's FlowStream).
- ``handover ADDR PORT NEW_INTERVAL RUN_INTERVAL OUT``: a new flow every NEW_INTERVAL and a datagram
  of one long-lived socket every RUN_INTERVAL; one JSON line per reply or loss (3 s without one)
  appended to OUT: ``[kind, seq, sent, replied_or_null, via_or_null]`` with kind ``new`` or
  ``run``, in wall-clock seconds so they compare with the lab's cut times (tracker_lab's Traffic).
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time
from typing import TextIO


def echo(addr: str, port: int, via: bool) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(data + b" " + peer[0].encode() if via else data, peer)


class NewFlows:
    """Flows of one datagram each, every one from its own socket; a reply closes its flow."""

    def __init__(self, addr: str, port: int) -> None:
        self.target = (addr, port)
        self.open: dict[socket.socket, tuple[int, float]] = {}   # socket -> (seq, sent)

    def send(self, seq: int, now: float) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.sendto(str(seq).encode(), self.target)
        self.open[s] = (seq, now)

    def expire(self, now: float, timeout: float) -> list[tuple[int, float]]:
        """Give up on the flows without a reply for ``timeout`` s: their (seq, sent)."""
        gone = []
        for s, (n, t0) in list(self.open.items()):
            if now - t0 > timeout:
                s.close()
                del self.open[s]
                gone.append((n, t0))
        return gone

    def answered(self, s: socket.socket) -> tuple[int, float]:
        n, t0 = self.open.pop(s)
        s.close()
        return n, t0


def _reply(r: socket.socket) -> bytes | None:
    try:
        return r.recv(2048)
    except OSError:
        return None


def stream(addr: str, port: int, interval: float) -> None:
    flows = NewFlows(addr, port)
    got: set[int] = set()
    worst = 0.0
    seq = 0
    stop_at: float | None = None
    next_send = time.monotonic()
    while True:
        now = time.monotonic()
        if stop_at is None and now >= next_send:
            seq += 1
            flows.send(seq, now)
            next_send += interval
        if stop_at is not None and (now >= stop_at or not flows.open):
            break
        flows.expire(now, 5.0)      # a flow that got no echo in 5 s is lost
        watch = [sys.stdin] if stop_at is None else []
        ready, _, _ = select.select(list(flows.open) + watch, [], [], 0.005)
        for r in ready:
            if r is sys.stdin:
                if not sys.stdin.readline():
                    stop_at = time.monotonic() + 5.0
                continue
            if _reply(r) is None:
                continue
            n, t0 = flows.answered(r)
            worst = max(worst, time.monotonic() - t0)
            got.add(n)
    print(json.dumps({"sent": seq, "lost": sorted(set(range(1, seq + 1)) - got),
                      "late_ms": round(worst * 1000, 1)}))


def handover(addr: str, port: int, new_iv: float, run_iv: float, out_path: str) -> None:
    with open(out_path, "a", buffering=1) as out:
        _handover(addr, port, new_iv, run_iv, out)


def _handover(addr: str, port: int, new_iv: float, run_iv: float, out: TextIO) -> None:
    flows = NewFlows(addr, port)
    run = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    run.setblocking(False)
    run_sent: dict[int, float] = {}
    seq = rseq = 0
    t_new = t_run = time.monotonic()
    off = time.time() - time.monotonic()

    def emit(kind: str, n: int, sent: float, got: float | None, via: str | None) -> None:
        out.write(json.dumps([kind, n, round(sent + off, 4), None if got is None else round(got + off, 4), via]) + "\n")

    while True:
        now = time.monotonic()
        if now >= t_new:
            seq += 1
            flows.send(seq, now)
            t_new += new_iv
        if now >= t_run:
            rseq += 1
            run.sendto(str(rseq).encode(), (addr, port))
            run_sent[rseq] = now
            t_run += run_iv
        for n, t0 in flows.expire(now, 3.0):
            emit("new", n, t0, None, None)
        for n in [n for n, t0 in run_sent.items() if now - t0 > 3.0]:
            emit("run", n, run_sent.pop(n), None, None)
        ready, _, _ = select.select(list(flows.open) + [run, sys.stdin], [], [], 0.005)
        for r in ready:
            if r is sys.stdin:
                if not sys.stdin.readline():
                    return
                continue
            data = _reply(r)
            if data is None:
                continue
            got = time.monotonic()
            n_s, _, via = data.decode().partition(" ")
            if r is run:
                n = int(n_s)
                if n in run_sent:
                    emit("run", n, run_sent.pop(n), got, via)
            else:
                n, t0 = flows.answered(r)
                emit("new", n, t0, got, via)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "echo":
        echo(args[0], int(args[1]), "--via" in args[2:])
    elif mode == "stream":
        stream(args[0], int(args[1]), float(args[2]))
    else:
        handover(args[0], int(args[1]), float(args[2]), float(args[3]), args[4])
