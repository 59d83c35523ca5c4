"""`python -m qfexbot.cli`: the same entry point as the `qfexbot` script."""

from qfexbot.cli import main

raise SystemExit(main())
