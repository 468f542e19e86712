"""A LAN client's stub resolver, for the DNS lab: one A query per name, retried like a stub.

Run inside the client's namespace: ``python dnsprobe.py <server> <count> <interval_s> <out.jsonl>``.
Every query asks for a name never asked before (``q<n>-<nonce>.probe.test``), so the mother's
dnsmasq cannot answer it from its cache and must forward it upstream. Each try waits
``TRY_TIMEOUT`` s and a query gets ``TRIES`` tries (glibc's stub: 5 s and 2 tries; shorter here so
a lost forward shows as a retry, not as a lost query). One JSON line per query: the name, the
tries it took (0: never answered), the rcode and the time from the first send to the answer.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import time

TRY_TIMEOUT = 1.0
TRIES = 3


def query_packet(qid: int, name: str) -> bytes:
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)     # RD set, one question
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return header + qname + struct.pack("!HH", 1, 1)              # A, IN


def ask(server: str, name: str, qid: int) -> dict[str, object]:
    t0 = time.monotonic()
    pkt = query_packet(qid, name)
    for attempt in range(1, TRIES + 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(TRY_TIMEOUT)
        try:
            s.sendto(pkt, (server, 53))
            end = time.monotonic() + TRY_TIMEOUT
            while time.monotonic() < end:
                s.settimeout(max(0.01, end - time.monotonic()))
                data, _ = s.recvfrom(4096)
                if len(data) >= 12 and struct.unpack("!H", data[:2])[0] == qid:
                    rcode = data[3] & 0x0F
                    ancount = struct.unpack("!H", data[6:8])[0]
                    return {"name": name, "tries": attempt, "rcode": rcode, "answers": ancount,
                            "t": time.time(), "ms": round((time.monotonic() - t0) * 1000)}
        except TimeoutError:
            pass
        finally:
            s.close()
    return {"name": name, "tries": 0, "rcode": None, "answers": 0, "t": time.time(),
            "ms": round((time.monotonic() - t0) * 1000)}


def main() -> int:
    server, count, interval, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    nonce = os.urandom(3).hex()
    with open(out, "a") as f:
        for n in range(count):
            start = time.monotonic()
            f.write(json.dumps(ask(server, f"q{n}-{nonce}.probe.test", (n * 7919 + 1) & 0xFFFF)) + "\n")
            f.flush()
            time.sleep(max(0.0, interval - (time.monotonic() - start)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
