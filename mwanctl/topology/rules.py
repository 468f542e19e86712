"""Every rule id a diagnostic can carry, each defined once.

The id is printed at the end of the message (``[MW005]``) and documented in the README's
"Validation rules" table; tests/test_rules.py fails when the table, this module and the code
that reports them disagree. MW0nn: checks across objects (topology/checks.py) and of single
values that need more than a type (pools, port lists); MW1nn: reading the YAML and each value
(topology/source.py, reader.py, declare.py); MW2nn: the blueprints (compile/templates.py).
"""

from __future__ import annotations

NAMES = "MW001"          # a name too long once prefixed (mwan3's 13/15-character limits)
DUPLICATES = "MW002"     # two objects of one name, two routers of one host, two tunnels of one endpoint
CAPACITY = "MW003"       # more mwan3 interfaces than its mark mask holds
POOL = "MW004"           # the tunnel pools hold too few slots, an index outside or reused, overlaps
METRICS = "MW005"        # two WAN-like interfaces with one route metric
TRACKING = "MW006"       # tracking that cannot work (errors) or flaps (warnings)
POLICIES = "MW007"       # policy members that are not uplinks/WANs, a missing default policy
RULES = "MW008"          # rules naming a missing policy, ports without tcp/udp, ...
ACCESS = "MW009"         # access entries, jump hosts, the tracker's transport
SECTIONS = "MW010"       # two objects generate the same UCI section name
RESERVED = "MW011"       # a name mwan3 or mwanctl already gives a meaning
POOL_RANGE = "MW012"     # a tunnel pool in a range that cannot carry tunnels
PORTS = "MW013"          # a port list iptables' multiport match would refuse or misread
WAN_FIELDS = "MW020"     # an uplink's `wan:` block whose fields do not fit together (compile/wan.py)
WAN_MTU = "MW021"        # a tunnel MTU the uplink's WAN cannot carry
WAN_HANDLER = "MW022"    # (plan) the uplink router's netifd lacks the WAN's protocol handler
WAN_SECRET = "MW023"     # (render/plan/deploy) a WAN secret that cannot be read

YAML = "MW100"           # the YAML itself cannot be read
UNKNOWN_KEY = "MW101"
MISSING = "MW102"
WRONG_TYPE = "MW103"
OUT_OF_RANGE = "MW104"
BAD_VALUE = "MW105"      # does not match the field's grammar (name, host, address, port list)
NOT_ALLOWED = "MW106"    # not one of the field's choices
BAD_TEXT = "MW107"       # control characters, lone surrogates, absurd length
NUMBER_TEXT = "MW108"    # YAML read a number (0x10, 007) where text was meant

TEMPLATE = "MW200"       # a UCI blueprint (--templates) that cannot be used

ALL: dict[str, str] = {v: k for k, v in dict(globals()).items() if isinstance(v, str) and v.startswith("MW")}
