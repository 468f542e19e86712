"""mwanctl: one topology file in, safe multi-uplink mwan3 + WireGuard config on every OpenWrt router out."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
