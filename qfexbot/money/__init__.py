"""qfexbot/money."""
