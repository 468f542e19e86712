"""Traffic for the handover lab: new UDP flows and one running UDP flow, each reply naming its uplink.

Why: a handover is judged by which uplink each flow took and when it stopped being lost; the echo
answers with the source address it saw (the uplink's masqueraded WAN address), so the client knows
the path of every flow. Modes: ``echo ADDR PORT`` and ``probe ADDR PORT NEW_INTERVAL RUN_INTERVAL
OUT``: a new flow (fresh socket) every NEW_INTERVAL and a datagram of one long-lived socket every
RUN_INTERVAL until stdin closes; one JSON line per reply or loss in OUT: ``[kind, seq, sent,
replied_or_null, via_or_null]`` (wall-clock seconds, so they compare with the lab's cut times).
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
        s.sendto(data + b" " + peer[0].encode(), peer)


def probe(addr: str, port: int, new_iv: float, run_iv: float, out_path: str) -> None:
    out = open(out_path, "a", buffering=1)
    run = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    run.setblocking(False)
    open_: dict[socket.socket, tuple[int, float]] = {}
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
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            s.sendto(str(seq).encode(), (addr, port))
            open_[s] = (seq, now)
            t_new += new_iv
        if now >= t_run:
            rseq += 1
            run.sendto(str(rseq).encode(), (addr, port))
            run_sent[rseq] = now
            t_run += run_iv
        for s, (n, t0) in list(open_.items()):
            if now - t0 > 3.0:
                emit("new", n, t0, None, None)
                s.close()
                del open_[s]
        for n in [n for n, t0 in run_sent.items() if now - t0 > 3.0]:
            emit("run", n, run_sent.pop(n), None, None)
        ready, _, _ = select.select(list(open_) + [run, sys.stdin], [], [], 0.005)
        for r in ready:
            if r is sys.stdin:
                if not sys.stdin.readline():
                    return
                continue
            try:
                data = r.recv(2048)
            except OSError:
                continue
            got = time.monotonic()
            n_s, _, via = data.decode().partition(" ")
            if r is run:
                n = int(n_s)
                if n in run_sent:
                    emit("run", n, run_sent.pop(n), got, via)
            else:
                n, t0 = open_.pop(r)
                emit("new", n, t0, got, via)
                r.close()


if __name__ == "__main__":
    if sys.argv[1] == "echo":
        echo(sys.argv[2], int(sys.argv[3]))
    else:
        probe(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6])
