"""The meaning of an uplink's optional ``wan:`` block: how its router reaches the internet.

Plain frozen data, like the rest of the model. A secret (PPPoE/cellular password, SIM PIN) is
never a value here, only where to find it (``SecretRef``): the topology file is meant to be shared
and printed, the values are read by :mod:`mwanctl.wansecrets` just before compiling.
"""

from __future__ import annotations

import ipaddress
import dataclasses
from dataclasses import dataclass
from typing import Optional

from mwanctl.errors import Location

PROTOS = ("dhcp", "static", "pppoe", "qmi", "modemmanager")
DEFAULT_INTERFACE = "wan"        # OpenWrt's stock internet interface
IP_TYPES = ("ipv4", "ipv6", "ipv4v6")
AUTHS = ("none", "pap", "chap", "both")


@dataclass(frozen=True)
class SecretRef:
    """Where one secret comes from: an environment variable or a file (exactly one is set)."""

    env: Optional[str] = None
    file: Optional[str] = None
    field: str = ""                                   # YAML path, for messages
    loc: Optional[Location] = dataclasses.field(default=None, compare=False)

    @property
    def source(self) -> str:
        """Said in messages instead of the value: ``env DSL_PASS`` / ``file /run/pw``."""
        return f"environment variable {self.env}" if self.env is not None else f"file {self.file}"


@dataclass(frozen=True)
class Wan:
    """One uplink's WAN interface section, which mwanctl owns when this block is given."""

    proto: str                                        # one of PROTOS
    device: str                                       # netdev (dhcp/static/pppoe), /dev/cdc-wdm* (qmi),
                                                      # the modem's sysfs path (modemmanager)
    interface: str = DEFAULT_INTERFACE                # the netifd interface section it writes
    mtu: Optional[int] = None                         # None: the protocol's default (see compile.wan)
    metric: Optional[int] = None
    # static
    address: Optional[ipaddress.IPv4Interface] = None
    gateway: Optional[ipaddress.IPv4Address] = None
    dns: tuple[str, ...] = ()
    peerdns: Optional[bool] = None                    # dhcp/pppoe/qmi/modemmanager: use the ISP's DNS
    # pppoe, qmi, modemmanager
    username: Optional[str] = None
    password: Optional[SecretRef] = None
    # pppoe
    ac: Optional[str] = None                          # access concentrator name
    service: Optional[str] = None
    # qmi, modemmanager
    apn: Optional[str] = None
    pin: Optional[SecretRef] = None
    auth: Optional[str] = None                        # one of AUTHS
    ip_type: Optional[str] = None                     # one of IP_TYPES
    loc: Optional[Location] = dataclasses.field(default=None, compare=False)

    @property
    def secrets(self) -> dict[str, SecretRef]:
        """The UCI option each secret is written to -> where its value comes from."""
        out: dict[str, SecretRef] = {}
        if self.password is not None:
            out["password"] = self.password
        if self.pin is not None:
            out["pincode"] = self.pin
        return out
