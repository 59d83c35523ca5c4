"""Finery Markets (EFX) venue adapter: auth, exact amounts, parsers, REST and WebSocket clients."""
