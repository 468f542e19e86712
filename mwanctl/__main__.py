"""Allow ``python -m mwanctl``."""

from mwanctl.cli import main

raise SystemExit(main())
