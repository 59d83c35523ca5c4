"""QFEX venue: auth, REST, wire parsing, connection steps, orders, transfers (see ``adapter``)."""

from qfexbot.venues.qfex.adapter import QfexVenue as QfexVenue

__all__ = ["QfexVenue"]
