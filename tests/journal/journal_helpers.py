"""Helpers of the journal tests: a fake clock, a fake venue with a ledger, limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import trio

from qfexbot.money.transfers import TransferAmbiguous, TransferNotSent, TransferRejected

TREASURY = "00000000-0000-4000-8000-000000000000"
DESK_A = "11111111-1111-4111-8111-111111111111"
DESK_B = "22222222-2222-4222-8222-222222222222"
ACCOUNTS = {"treasury": TREASURY, "desk-a": DESK_A, "desk-b": DESK_B}


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeVenue:
    """Balances and a ledger; ``outcomes`` scripts what the next sends do.

    Outcomes: "ok", "reject", "not_sent", "lost_response" (applied, then ambiguous),
    "fail_before_apply" (ambiguous, not applied).
    """

    balances: dict[str, Decimal]
    outcomes: list[str] = field(default_factory=list)
    ledger: list[tuple[str, str, Decimal]] = field(default_factory=list)
    sends: int = 0
    read_errors: int = 0

    def apply(self, src: str, dst: str, amount: Decimal) -> None:
        self.balances[src] -= amount
        self.balances[dst] += amount
        self.ledger.append((src, dst, amount))

    async def send(self, src: str, dst: str, amount: Decimal) -> None:
        self.sends += 1
        await trio.lowlevel.checkpoint()
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if outcome == "reject":
            raise TransferRejected("422 Unprocessable Entity: amount exceeds available balance")
        if outcome == "not_sent":
            raise TransferNotSent("connection refused")
        if outcome == "fail_before_apply":
            raise TransferAmbiguous("500 Internal Server Error")
        self.apply(src, dst, amount)
        if outcome == "lost_response":
            raise TransferAmbiguous("read timeout after sending")

    async def read_available(self, account: str) -> Decimal:
        await trio.lowlevel.checkpoint()
        if self.read_errors:
            self.read_errors -= 1
            raise OSError("connection reset while reading balance")
        return self.balances[account]


def make_limits(**overrides: Any) -> SimpleNamespace:
    """Limits with generous defaults (the names the CONFIG worker's Limits has)."""
    values: dict[str, Any] = {
        "max_transfer": Decimal(1000),
        "max_daily": Decimal(10000),
        "allowed_pairs": (("treasury", "desk-a"), ("treasury", "desk-b")),
        "min_interval": 0.0,
        "min_remaining": Decimal(0),
    }
    values.update(overrides)
    return SimpleNamespace(**values)


def write_bots_toml(tmp_path: Path, journal: str | Path, runtime_extra: str = "") -> Path:
    """A bots.toml on ``journal`` (a file or a DSN): one simulated venue, desk-a, one bot."""
    config = tmp_path / "bots.toml"
    config.write_text(f"""
[runtime]
journal = "{journal}"
{runtime_extra}

[venues.demo]
kind = "qfex"
simulator = true
user_id = "{TREASURY}"
public_key = "qfex_pub_t"
secret = "qfex_secret_t"
accounts = {{ treasury = "primary", desk-a = "{DESK_A}" }}

[bots.b]
venue = "demo"
accounts = ["desk-a"]
[bots.b.plugins.p]
""")
    return config
