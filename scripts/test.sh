#!/bin/sh
# Set up (Debian packages + virtualenv) and run the whole test suite. Needs root: the tests
# create network namespaces, WireGuard tunnels and dropbear test routers on 127.0.0.1.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup-debian.sh
# the code-quality gate (configured in pyproject.toml; README "Tooling"): either failing fails the run
.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/python -m pytest -q "$@"
