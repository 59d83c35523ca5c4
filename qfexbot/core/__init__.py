"""qfexbot/core."""
