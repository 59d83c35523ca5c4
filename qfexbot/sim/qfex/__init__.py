"""qfexbot/sim/qfex."""
