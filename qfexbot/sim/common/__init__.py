"""qfexbot/sim/common."""
