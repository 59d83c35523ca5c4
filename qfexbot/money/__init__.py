"""Exactly-once money movement.

``policy`` (pure limit checks), ``killswitch`` (the pause file), ``evidence`` (pure: what balance
moves prove about a transfer), ``transfers`` (the one service that sends a transfer and
reconciles doubts), ``account_locks`` (one process per account) and ``journal/`` (every action,
written before it happens). Imports only ``core``, ``config``, ``events`` and ``errors``.
"""
