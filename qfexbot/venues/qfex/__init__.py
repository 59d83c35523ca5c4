"""QFEX venue adapter: auth, REST, wire parsing and connection steps (see ``stream.QfexVenue``)."""

from qfexbot.venues.qfex.driver import QfexVenue as QfexVenue

__all__ = ["QfexVenue"]
