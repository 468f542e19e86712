"""PURE: the one `wg set` that drops a peer's session and puts the peer back unchanged.

Why: after the other end rebuilt its device (no session), the dialing end keeps sending on its
old session until WireGuard gives up (~15 s). Removing and re-adding the peer in a single `wg set`
forgets the session and nothing else; the re-added peer (with persistent_keepalive) initiates a
handshake at once. Used by the local and ubus transports; remote/rehandshake.sh is the same for SSH.
"""

from __future__ import annotations


def readd_argv(iface: str, key: str, dump: str) -> tuple[list[str], str]:
    """``wg`` arguments and the preshared key to feed on stdin ('' for none), from the peer's
    line of ``wg show <iface> dump`` (the first line, the interface's own, is skipped)."""
    peer = next((ln.split("\t") for ln in dump.splitlines() if ln.split("\t")[0] == key), None)
    if peer is None or len(peer) < 8:
        raise ValueError(f"no peer {key[:8]}... on {iface}")
    psk, endpoint, ips, keepalive = peer[1], peer[2], peer[3], peer[7]
    argv = ["set", iface, "peer", key, "remove", "peer", key]
    if endpoint != "(none)":
        argv += ["endpoint", endpoint]
    if ips != "(none)":
        argv += ["allowed-ips", ips]
    if keepalive != "off":
        argv += ["persistent-keepalive", keepalive]
    if psk != "(none)":
        argv += ["preshared-key", "/dev/stdin"]
        return argv, psk + "\n"
    return argv, ""
