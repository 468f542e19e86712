"""Transports: the only code that talks to a router (ssh, ubus over HTTP, local on the router)."""
