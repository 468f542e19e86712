"""PURE: the one `wg set` that drops a peer's session and puts the peer back unchanged.

Why: after the other end rebuilt its device (no session), the dialing end keeps sending on its
old session until WireGuard gives up (~15 s). Removing and re-adding the peer in a single `wg set`
forgets the session and nothing else; the re-added peer (with persistent_keepalive) initiates a
handshake at once. Used by the local and ubus transports; remote/rehandshake.sh is the same for SSH.
"""

from __future__ import annotations

from mwanctl.wgdump import parse_wg_dump, preshared_key


def readd_argv(router: str, iface: str, key: str, dump: str) -> tuple[list[str], str]:
    """``wg`` arguments and the preshared key to feed on stdin ('' for none), from the peer as
    ``wg show all dump`` shows it (``dump``, read on ``router``; a malformed one raises CommandError)."""
    device = parse_wg_dump(dump, router).get(iface)
    peer = device.peers.get(key) if device is not None else None
    if peer is None:
        raise ValueError(f"no peer {key[:8]}... on {iface}")
    argv = ["set", iface, "peer", key, "remove", "peer", key]
    if peer.endpoint is not None:
        argv += ["endpoint", peer.endpoint]
    if peer.allowed_ips:
        argv += ["allowed-ips", ",".join(peer.allowed_ips)]
    if peer.keepalive is not None:
        argv += ["persistent-keepalive", str(peer.keepalive)]
    psk = preshared_key(dump, router, iface, key) if peer.has_preshared_key else None
    if psk is not None:
        argv += ["preshared-key", "/dev/stdin"]
        return argv, psk + "\n"
    return argv, ""
