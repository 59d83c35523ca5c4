"""qfexbot: event-driven bots for QFEX and Finery Markets subaccounts."""

__version__ = "0.1.0"
