"""qfexbot/ops."""
