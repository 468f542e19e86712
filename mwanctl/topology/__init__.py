"""The topology: what the user writes (one YAML file) and what it means (a frozen model)."""

from mwanctl.topology.load import load_topology, parse_topology
from mwanctl.topology.model import Topology

__all__ = ["Topology", "load_topology", "parse_topology"]
