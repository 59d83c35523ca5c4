"""The frozen objects a validated bots.toml becomes: ``AppConfig`` and the tables it holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

from qfexbot.config.secretref import Credentials, SecretRef
from qfexbot.config.validate import ConfigError
from qfexbot.core.logs import register_secret
from qfexbot.core.secrets import Secret

__all__ = [
    "DEFAULT_PRIVATE_CHANNELS",
    "DEFAULT_TRANSFER_SETTLE",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "RECORD_MAX_BYTES",
    "AppConfig",
    "BotConfig",
    "Limits",
    "MarketData",
    "PluginConfig",
    "PostgresJournalConfig",
    "RecordSettings",
    "RuntimeConfig",
    "SessionSettings",
    "VenueConfig",
]

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
RECORD_MAX_BYTES = 64 * 1024 * 1024
"""Default size at which a recording file is rotated (``[runtime] record.max_bytes``)."""
DEFAULT_PRIVATE_CHANNELS = ("order_responses", "fills", "positions", "balances")
"""The private channels of a bot that does not list ``channels``."""


@dataclass(frozen=True)
class PostgresJournalConfig:
    """``journal = "postgresql://user@host:port/db"``: the DSN (never with a password: that is
    ``password``, a secret reference read at start-up, else libpq's PGPASSWORD / ~/.pgpass)."""

    dsn: str
    password: SecretRef | None = None


@dataclass(frozen=True)
class RecordSettings:
    """Raw-frame recording (``[runtime] record``): where, and the size that rotates a file."""

    dir: Path
    max_bytes: int = RECORD_MAX_BYTES


@dataclass(frozen=True)
class RuntimeConfig:
    """Process-wide settings (``[runtime]``); paths are absolute.

    ``record`` is None unless recording is configured; ``ops_listen`` is the loopback
    ``(host, port)`` of the ops HTTP endpoint (``/healthz``, ``/status``, ``/metrics``; port 0:
    picked at start) or None (``ops_listen = false``).
    """

    journal: Path
    log_level: str
    log_format: str
    plugin_dirs: tuple[Path, ...]
    kill_switch_file: Path
    dry_run: bool
    record: RecordSettings | None = None
    ops_listen: tuple[str, int] | None = None
    state_dir: Path | None = None
    """Where the journal's second rollback mark lives; None: ``$QFEXBOT_STATE_DIR``, else the
    XDG state directory (see ``qfexbot.money.journal.mark_paths``)."""
    postgres: PostgresJournalConfig | None = None
    """The PostgreSQL journal when ``journal`` is a ``postgresql://`` DSN (``journal`` is then
    the local path beside which this host's state file lives, ``var/journal.postgresql``)."""
    kill_switch_cancels_orders: bool = False
    """Whether engaging the kill switch also cancels every account's open orders (it always
    refuses money movement and new orders)."""
    ops_token: SecretRef | None = None
    """The bearer token of the ops endpoint's control API (``[runtime] ops_token``); None: a
    token is made for each run and printed once, in the dashboard URL."""
    ops_tls: tuple[Path, Path] | None = None
    """(certificate, private key) files when the ops endpoint serves HTTPS."""
    ops_remote_without_tls: bool = False
    """The operator's explicit override to listen beyond loopback without token and TLS."""


DEFAULT_TRANSFER_SETTLE = 600.0
"""Default quiet time (s) before a transfer in doubt may be concluded "not applied"."""


@dataclass(frozen=True)
class SessionSettings:
    """Connection tunables of a venue (``[venues.X.session]``), in seconds unless noted."""

    connect_timeout: float = 10.0
    auth_timeout: float = 10.0
    stale_after: float = 15.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    healthy_after: float = 30.0
    max_auth_failures: int = 3
    request_timeout: float = 10.0
    transfer_settle: float | None = None
    """Quiet time before a doubtful transfer may be declared "not applied"; None = default."""

    @property
    def settle_seconds(self) -> float:
        """``transfer_settle``, or a conservative default of minutes: a request the venue holds
        past our timeout can still be applied later, and "not applied" must not be concluded
        before (a 30 s default was shown to double a request held 40 s)."""
        if self.transfer_settle is not None:
            return self.transfer_settle
        return max(3 * self.request_timeout, DEFAULT_TRANSFER_SETTLE)


@dataclass(frozen=True)
class VenueConfig:
    """One venue connection (``[venues.X]``): URLs, credential references and named accounts.

    ``accounts`` maps alias -> account id (``"primary"`` already resolved to ``user_id``), both in
    the form the kind's venue rules give them (``qfexbot.config.validate.VenueRules``), e.g. a
    lower-case UUID, or a client id as decimal text; on a single-socket venue ``mds_url`` equals
    ``trade_url``. ``sim`` holds the ``[venues.X.sim]`` settings given (empty unless
    ``simulator``): ``pulse_interval`` (float s), ``seed`` (int), ``deposits`` (alias -> Decimal),
    ``symbols`` (table passed through as written).
    """

    name: str
    kind: str
    simulator: bool
    trade_url: str
    mds_url: str
    rest_url: str
    user_id: str
    public_key: SecretRef | None
    secret: SecretRef | None
    jwt: SecretRef | None
    accounts: Mapping[str, str]
    session: SessionSettings
    sim: Mapping[str, Any]
    flags: Mapping[str, bool] = field(default_factory=lambda: MappingProxyType({}))
    """The kind's own boolean keys (its rules' ``flags``, e.g. Finery's
    ``cancel_on_disconnect``): every one of them, as set or its default."""

    def account_id(self, alias: str) -> str:
        """The account id of an alias (KeyError if the venue does not declare it)."""
        return self.accounts[alias]

    @property
    def owner(self) -> str:
        """Whose money this table moves, as the journal keys it: the ``user_id`` of a real venue;
        for ``simulator = true`` a key of its own, ``simulator:<table>:<user_id>`` (no real user
        id has that form), so simulated transfers never block, count against the limits of, or
        get reconciled by a real table, nor the other way round."""
        return f"simulator:{self.name}:{self.user_id}" if self.simulator else self.user_id

    def resolve_credentials(self, environ: Mapping[str, str] | None = None) -> Credentials:
        """Read the credential references now (environment, files, inline).

        Args:
            environ: mapping used instead of ``os.environ`` (tests).
        Raises:
            ConfigError: listing every credential that could not be read, by key path.
        """
        errors: list[str] = []
        resolved: dict[str, Secret | None] = {}
        for name in ("public_key", "secret", "jwt"):
            ref: SecretRef | None = getattr(self, name)
            resolved[name] = None
            if ref is not None:
                try:
                    resolved[name] = ref.resolve(environ)
                except ConfigError as exc:
                    errors.extend(exc.errors)
        if errors:
            raise ConfigError(errors)
        for name in ("secret", "jwt"):
            if (value := resolved[name]) is not None:
                register_secret(value.reveal())
        public = resolved["public_key"]
        return Credentials(public.reveal() if public else None, resolved["secret"], resolved["jwt"])


@dataclass(frozen=True)
class MarketData:
    """Public market data a bot wants (``bots.X.market_data``); empty when not configured.

    ``candle_intervals`` are the resolutions of the ``candle`` channel (e.g. ``1MIN``), each
    subscribed for every symbol; ``("1MIN",)`` when ``candle`` is wanted without them.
    """

    channels: tuple[str, ...] = ()
    symbols: tuple[str, ...] = ()
    candle_intervals: tuple[str, ...] = ()

    def pairs(self) -> dict[str, tuple[str, ...]]:
        """Channel -> what to subscribe on it: the symbols, or for ``candle`` each
        ``"SYMBOL/INTERVAL"``."""
        out: dict[str, tuple[str, ...]] = {}
        for channel in self.channels:
            if channel == "candle":
                intervals = self.candle_intervals or ("1MIN",)
                out[channel] = tuple(f"{s}/{i}" for s in self.symbols for i in intervals)
            else:
                out[channel] = self.symbols
        return out


@dataclass(frozen=True)
class Limits:
    """Money-movement policy of one bot (``[bots.X.limits]``).

    ``allowed_pairs`` holds ordered (source alias, destination alias) tuples; a pair listed in
    bots.toml allows both directions. By default every pair of the bot's own accounts is allowed.
    """

    max_transfer: Decimal = Decimal(1000)
    max_daily: Decimal = Decimal(10000)
    allowed_pairs: frozenset[tuple[str, str]] = frozenset()
    min_interval: float = 30.0
    min_remaining: Decimal = Decimal(0)


@dataclass(frozen=True)
class PluginConfig:
    """One plugin instance of a bot (``[bots.X.plugins.NAME]``).

    ``options`` holds every non-reserved key exactly as written; the plugin loader validates
    them against the plugin's ``config_schema`` with ``validate_plugin_config(schema, options,
    path, accounts)``. ``path`` is the table's key path for those error messages.
    """

    name: str
    use: str
    enabled: bool
    failure_limit: int
    inbox_size: int
    options: Mapping[str, Any]
    path: str


@dataclass(frozen=True)
class BotConfig:
    """One bot (``[bots.X]``): its venue, account aliases, subscriptions, limits and plugins.

    The bot runs dry when ``dry_run`` or ``runtime.dry_run`` is true (see ``effective_dry_run``
    on ``AppConfig``).
    """

    name: str
    venue: str
    accounts: tuple[str, ...]
    channels: tuple[str, ...]
    market_data: MarketData
    dry_run: bool
    limits: Limits
    plugins: tuple[PluginConfig, ...]


@dataclass(frozen=True)
class AppConfig:
    """The whole validated bots.toml."""

    path: Path | None
    base_dir: Path
    runtime: RuntimeConfig
    venues: Mapping[str, VenueConfig]
    bots: Mapping[str, BotConfig]

    def effective_dry_run(self, bot: str) -> bool:
        """True when the bot or the whole runtime is in dry-run mode."""
        return self.runtime.dry_run or self.bots[bot].dry_run
