"""Plugin loading: find each bot's plugins, validate their config and hooks, build its PluginHost.

This module knows no config model: a bot, its venue and its plugin instances are any objects
with the ``BotSpec``/``VenueSpec``/``PluginSpec`` attributes (the config objects have them), and
options are checked by the ``ValidateOptions`` function the caller passes (the config layer's
``validate_plugin_config``; ``qfexbot.runtime.plugins`` binds it). So the core stays below config.

A plugin instance in bots.toml names what to load with ``use`` (default: the table name):

1. ``"module:attr"`` (contains a colon): ``module`` from ``plugin_dirs`` or else imported
   normally, then its attribute ``attr`` (dotted allowed);
2. otherwise ``<use>.py`` or ``<use>/__init__.py`` in the runtime's ``plugin_dirs``, in order,
   loaded by file path as module ``qfexbot_local_plugins.<use>`` (nothing added to sys.path);
3. otherwise the entry point named ``<use>`` in group ``qfexbot.plugins``; each entry point is
   loaded on its own, so a broken one only affects the plugins that use it.

A loaded module stands for its ``qfexbot_plugin`` attribute if it defines one; else for itself
if it has module-level hooks; else for the one class defined in it that has hooks. A class is
instantiated once per plugin instance: with the validated config (a read-only mapping) if its
``__init__`` takes a positional argument, else with no arguments. Problems are collected as
one-line messages naming the ``bots.<bot>.plugins.<name>`` path, never as tracebacks.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
import traceback
import types
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pluggy

from qfexbot import hookspecs
from qfexbot.core.bus import Bus, Inbox
from qfexbot.core.context import ActionsBackend, BotContext
from qfexbot.errors import ConfigError, QfexbotError
from qfexbot.events import AlertEvent, Event

__all__ = [
    "ENTRY_POINT_GROUP",
    "LOCAL_PACKAGE",
    "BotSpec",
    "PluginHost",
    "PluginInfo",
    "PluginLoadError",
    "PluginSlot",
    "PluginSpec",
    "ValidateOptions",
    "VenueSpec",
    "discover_plugins",
    "load_plugin_host",
    "new_plugin_manager",
    "resolve_plugin",
]

ENTRY_POINT_GROUP = "qfexbot.plugins"
LOCAL_PACKAGE = "qfexbot_local_plugins"
_IMPL_ATTR = f"{hookspecs.PROJECT}_impl"
_IMPORTLIB_DIR = str(Path(importlib.__file__).parent)  # frames there say nothing to a user


class PluginSpec(Protocol):
    """One plugin instance of a bot, as the loader reads it (``config.PluginConfig`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def use(self) -> str: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def failure_limit(self) -> int: ...
    @property
    def inbox_size(self) -> int: ...
    @property
    def options(self) -> Mapping[str, Any]: ...
    @property
    def path(self) -> str:
        """The instance's key path (``bots.<bot>.plugins.<name>``), prefixed to its errors."""
        ...


class BotSpec(Protocol):
    """A bot, as the loader reads it (``config.BotConfig`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def accounts(self) -> Sequence[str]:
        """The aliases of the bot's own accounts, in order."""
        ...

    @property
    def plugins(self) -> Sequence[PluginSpec]: ...


class VenueSpec(Protocol):
    """A bot's venue, as the loader reads it (``config.VenueConfig`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def accounts(self) -> Mapping[str, str]:
        """alias -> account id of every account of the venue."""
        ...


class ValidateOptions(Protocol):
    """Checks one instance's options against its plugin's ``config_schema`` (``{}`` when it
    declares none); returns (values, one error line per problem). ``accounts`` are the venue's
    aliases, for account fields. ``config.validate_plugin_config`` is one."""

    def __call__(
        self, schema: Any, options: Mapping[str, Any], path: str, accounts: Collection[str]
    ) -> tuple[Mapping[str, Any], list[str]]: ...


class PluginLoadError(ConfigError):
    """One or more plugins of a bot could not be loaded; ``errors`` has one line each."""

    def __str__(self) -> str:
        return "\n".join(self.errors)


class _LoadFailure(QfexbotError):
    """Internal: a message for the user about one plugin."""


@dataclass(eq=False, slots=True)
class PluginSlot:
    """One plugin instance of a bot at run time: what was loaded, its context and inbox, and
    its counters (``events_handled``, ``failures``, ``consecutive_failures``, ``disabled``,
    ``reenabled``) and its last failure (``last_error``, secrets scrubbed, at ``last_error_at``)."""

    name: str
    use: str
    source: str
    plugin: object
    ctx: BotContext
    inbox: Inbox
    failure_limit: int
    events_handled: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    disabled: bool = False
    disabled_reason: str = ""
    reenabled: int = 0
    last_error: str = ""
    last_error_at: float | None = None

    def stats(self) -> dict[str, Any]:
        """Counters of the plugin and its inbox as a plain dict."""
        return {
            "events_handled": self.events_handled,
            "failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
            "disabled": self.disabled,
            "disabled_reason": self.disabled_reason,
            "reenabled": self.reenabled,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            **self.inbox.stats(),
        }


class PluginHost:
    """The plugins of one bot: a pluggy ``PluginManager`` plus one ``PluginSlot`` per enabled
    plugin instance, in bots.toml order. Build it with ``load_plugin_host``; run it with
    ``qfexbot.core.dispatch.Dispatcher``."""

    def __init__(
        self,
        bot: str,
        venue: str,
        pm: pluggy.PluginManager,
        slots: Sequence[PluginSlot],
        state: dict[str, Any],
    ) -> None:
        self.bot = bot
        self.venue = venue
        self.pm = pm
        self.slots = tuple(slots)
        self.state = state
        self._buses: list[Bus] = []

    def __repr__(self) -> str:
        return f"PluginHost(bot={self.bot!r}, plugins={[s.name for s in self.slots]!r})"

    @property
    def buses(self) -> tuple[Bus, ...]:
        """Every bus ``subscribe`` was called with, in order (a re-enabled plugin's new inbox
        subscribes to them all)."""
        return tuple(self._buses)

    def subscribe(self, bus: Bus) -> None:
        """Subscribe every (not disabled) plugin inbox of this bot to ``bus``."""
        if bus not in self._buses:
            self._buses.append(bus)
        for slot in self.slots:
            if not slot.inbox.closed:
                bus.subscribe(slot.inbox)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Plugin instance name -> counters."""
        return {slot.name: slot.stats() for slot in self.slots}


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One plugin available to bots.toml, as ``qfexbot plugins`` lists it."""

    name: str
    source: str
    hooks: tuple[str, ...] = ()
    doc: str = ""
    error: str | None = None
    shadowed_by: str | None = None
    config_keys: tuple[str, ...] = field(default=())


def new_plugin_manager() -> pluggy.PluginManager:
    """A PluginManager for project ``qfexbot`` with every hookspec registered."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def load_plugin_host(
    bot: BotSpec,
    venue: VenueSpec,
    *,
    plugin_dirs: Sequence[Path],
    actions: ActionsBackend,
    validate: ValidateOptions,
    state: dict[str, Any] | None = None,
    alerts: Callable[[AlertEvent], None] | None = None,
) -> PluginHost:
    """Load, validate, instantiate and register every enabled plugin of ``bot``.

    Args:
      bot: the bot; disabled plugin instances (``enabled = false``) are skipped.
      venue: the bot's venue (its account aliases feed ``ctx.accounts``).
      plugin_dirs: directories of local plugin modules (``RuntimeConfig.plugin_dirs``).
      actions: the backend that ``ctx.transfer`` etc. forward to.
      validate: checks each instance's options against its plugin's ``config_schema``.
      state: the dict shared by this bot's plugins as ``ctx.state`` (default: a new one).
      alerts: where ``ctx.alert`` sends (the runtime's ``AlertHub.emit``; None: nowhere).

    Raises:
      PluginLoadError: with one message per problem, across all the bot's plugins.
    """
    pm = new_plugin_manager()
    state = {} if state is None else state
    errors: list[str] = []
    slots: list[PluginSlot] = []
    used_objects: dict[int, str] = {}
    aliases = tuple(venue.accounts)
    own = {a: venue.accounts[a] for a in bot.accounts if a in venue.accounts}
    for spec in bot.plugins:
        if not spec.enabled:
            continue
        try:
            target, source = resolve_plugin(spec.use, plugin_dirs)
            schema = getattr(target, "config_schema", None)
            values, config_errors = validate(
                {} if schema is None else schema, spec.options, spec.path, accounts=aliases
            )
            if config_errors:
                errors.extend(config_errors)
                continue
            plugin, subscribes = _register(spec, target, values, pm, used_objects)
        except _LoadFailure as exc:
            errors.append(f"{spec.path}: {exc}")
            continue
        ctx = BotContext(
            bot=bot.name,
            plugin=spec.name,
            venue=venue.name,
            config=values,
            accounts=own,
            venue_accounts=venue.accounts,
            state=state,
            actions=actions,
            alerts=alerts,
        )
        inbox = Inbox(f"{bot.name}/{spec.name}", spec.inbox_size, subscribes)
        slots.append(
            PluginSlot(spec.name, spec.use, source, plugin, ctx, inbox, spec.failure_limit)
        )
    if not errors:
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:  # our own checks should have caught it
            errors.append(f"bots.{bot.name}.plugins: {_one_line(str(exc))}")
    if errors:
        raise PluginLoadError(errors)
    return PluginHost(bot.name, venue.name, pm, slots, state)


def _register(
    spec: PluginSpec,
    target: object,
    values: Mapping[str, Any],
    pm: pluggy.PluginManager,
    used_objects: dict[int, str],
) -> tuple[object, tuple[type[Event], ...] | None]:
    """Check ``target``'s hooks, make the instance (a class is instantiated per instance) and
    register it under the instance name; returns it and its ``subscribes``. Raises
    ``_LoadFailure``."""
    _check_hooks(target)
    plugin = _instantiate(target, values) if isinstance(target, type) else target
    if id(plugin) in used_objects:
        raise _LoadFailure(
            f"{spec.use!r} is a module or object, already used by plugin instance "
            f"{used_objects[id(plugin)]!r} of this bot; make it a class to run several instances"
        )
    used_objects[id(plugin)] = spec.name
    subscribes = _subscribes_of(plugin)
    try:
        pm.register(plugin, name=spec.name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        raise _LoadFailure(_one_line(str(exc))) from None
    return plugin, subscribes


# -- resolving "use" ----------------------------------------------------------------------


def resolve_plugin(use: str, plugin_dirs: Sequence[Path]) -> tuple[object, str]:
    """Find and import what ``use`` names; returns (plugin target, where it came from).

    Raises ``_LoadFailure`` with a user-facing message."""
    if ":" in use:
        return _plugin_target(_import_attr(use, plugin_dirs)), use
    for directory in plugin_dirs:
        path = _local_path(Path(directory), use)
        if path is not None:
            return _plugin_target(_load_local(use, path)), str(path)
    eps = _entry_points(use)
    if len(eps) == 1:
        return _plugin_target(_load_entry_point(eps[0])), _ep_source(eps[0])
    if len(eps) > 1:
        found = ", ".join(_ep_source(ep) for ep in eps)
        raise _LoadFailure(
            f"plugin {use!r} is ambiguous: several entry points have that name ({found})"
        )
    dirs = ", ".join(str(d) for d in plugin_dirs) or "none configured"
    raise _LoadFailure(
        f"plugin {use!r} not found: no {use}.py in plugin_dirs ({dirs}) and no entry point "
        f'{use!r} in group {ENTRY_POINT_GROUP!r} (use "module:attr" for an importable object)'
    )


def _plugin_target(obj: object) -> object:
    """What a loaded module stands for: its ``qfexbot_plugin``; else the module if it has
    module-level hooks; else the one class defined in it that has hooks."""
    if not isinstance(obj, types.ModuleType):
        return obj
    if hasattr(obj, "qfexbot_plugin"):
        return obj.qfexbot_plugin
    if _hook_impls(obj):
        return obj
    classes = [
        value
        for value in vars(obj).values()
        if isinstance(value, type) and value.__module__ == obj.__name__ and _hook_impls(value)
    ]
    if len(classes) > 1:
        names = ", ".join(sorted(c.__name__ for c in classes))
        raise _LoadFailure(
            f"module {obj.__name__!r} defines several plugin classes ({names}): set "
            f'qfexbot_plugin = <class> in it, or use "module:Class"'
        )
    return classes[0] if classes else obj


def _import_attr(spec: str, plugin_dirs: Sequence[Path]) -> object:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise _LoadFailure(f'{spec!r} is not of the form "module:attr"')
    obj: object | None = None
    for directory in plugin_dirs:  # "module" may be a local plugin module too
        path = _local_path(Path(directory), module_name)
        if path is not None:
            obj = _load_local(module_name, path)
            break
    if obj is None:
        try:
            obj = importlib.import_module(module_name)
        except Exception as exc:
            raise _LoadFailure(f"cannot import module {module_name!r}: {_describe(exc)}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise _LoadFailure(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def _local_path(directory: Path, name: str) -> Path | None:
    if not name.isidentifier():
        return None
    for candidate in (directory / f"{name}.py", directory / name / "__init__.py"):
        if candidate.is_file():
            return candidate.resolve()
    return None


def _load_local(name: str, path: Path) -> types.ModuleType:
    module_name = f"{LOCAL_PACKAGE}.{name}"
    existing = sys.modules.get(module_name)
    if existing is not None and getattr(existing, "__file__", None) == str(path):
        return existing
    if LOCAL_PACKAGE not in sys.modules:
        package = types.ModuleType(LOCAL_PACKAGE, "Local plugin modules loaded from plugin_dirs.")
        package.__path__ = []
        sys.modules[LOCAL_PACKAGE] = package
    is_package = path.name == "__init__.py"
    spec = importlib.util.spec_from_file_location(
        module_name, path, submodule_search_locations=[str(path.parent)] if is_package else None
    )
    if spec is None or spec.loader is None:
        raise _LoadFailure(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise _LoadFailure(f"error importing {path}: {_describe(exc)}") from None
    return module


def _entry_points(name: str | None = None) -> list[importlib.metadata.EntryPoint]:
    eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    unique: dict[tuple[str, str], importlib.metadata.EntryPoint] = {}
    for ep in eps:
        if name is None or ep.name == name:
            unique.setdefault((ep.name, ep.value), ep)
    return list(unique.values())


def _ep_source(ep: importlib.metadata.EntryPoint) -> str:
    dist = ep.dist
    where = f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"
    return f"entry point {ep.name} = {ep.value} ({where})"


def _load_entry_point(ep: importlib.metadata.EntryPoint) -> object:
    try:
        return ep.load()
    except Exception as exc:
        raise _LoadFailure(f"cannot load {_ep_source(ep)}: {_describe(exc)}") from None


# -- checking and instantiating -------------------------------------------------------------


def _hook_impls(target: object) -> dict[str, Mapping[str, Any]]:
    """Hook name -> hookimpl options, for every attribute marked with ``@hookimpl``."""
    found: dict[str, Mapping[str, Any]] = {}
    for attr in dir(target):
        try:
            value = inspect.getattr_static(target, attr)
        except AttributeError:
            continue
        value = getattr(value, "__func__", value)  # staticmethod / classmethod
        opts = getattr(value, _IMPL_ATTR, None)
        if isinstance(opts, Mapping):
            found[opts.get("specname") or attr] = opts
    return found


def _check_hooks(target: object) -> dict[str, Mapping[str, Any]]:
    """Every marked hook must exist and not be a wrapper; functions named like a hook must
    be marked; at least one hook must be implemented."""
    impls = _hook_impls(target)
    known = ", ".join(hookspecs.HOOK_NAMES)
    problems: list[str] = []
    for name, opts in sorted(impls.items()):
        if name not in hookspecs.HOOK_NAMES:
            close = difflib.get_close_matches(name, hookspecs.HOOK_NAMES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown hook {name!r}{hint}; known hooks: {known}")
        elif opts.get("wrapper") or opts.get("hookwrapper"):
            problems.append(f"hook {name!r} is a wrapper; qfexbot does not support hook wrappers")
    for attr in dir(target):
        if attr.startswith("qfexbot_") and attr not in impls and attr != "qfexbot_plugin":
            value = getattr(target, attr, None)
            if callable(value):
                problems.append(f"{attr!r} looks like a hook but is not decorated with @hookimpl")
    if not impls and not problems:
        problems.append(f"implements no qfexbot hook (known hooks: {known})")
    if problems:
        raise _LoadFailure("; ".join(problems))
    return impls


def _instantiate(cls: type, config: Mapping[str, Any]) -> object:
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        params = ()  # type: ignore[assignment]
    takes_config = any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params
    )
    try:
        return cls(config) if takes_config else cls()
    except Exception as exc:
        raise _LoadFailure(f"{cls.__qualname__}() failed: {_describe(exc)}") from None


def _subscribes_of(plugin: object) -> tuple[type[Event], ...] | None:
    value = getattr(plugin, "subscribes", None)
    if value is None:
        return None
    if isinstance(value, type):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not all(
        isinstance(t, type) and issubclass(t, Event) for t in value
    ):
        raise _LoadFailure(f"subscribes must be a tuple of event classes, got {value!r}")
    return tuple(value)


def _describe(exc: BaseException) -> str:
    """``Type: message (file:line)`` of the innermost frame, without a traceback."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith(("<", _IMPORTLIB_DIR)) and f.filename != __file__
    ]
    if frames and not isinstance(exc, SyntaxError):  # a SyntaxError names its own line
        text += f" ({frames[-1].filename}:{frames[-1].lineno})"
    return text


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


# -- discovery ------------------------------------------------------------------------------


def discover_plugins(plugin_dirs: Sequence[Path] = ()) -> list[PluginInfo]:
    """Every plugin available by name: modules in ``plugin_dirs`` then entry points of group
    ``qfexbot.plugins``, each loaded on its own. A plugin that fails to load is listed with
    ``error`` set; a name found twice is listed twice, the later one ``shadowed_by`` the
    earlier (as ``use`` would resolve it)."""
    infos: list[PluginInfo] = []
    seen: dict[str, str] = {}

    def add(name: str, source: str, load: Callable[[], object]) -> None:
        try:
            target = _plugin_target(load())
            hooks = tuple(sorted(_check_hooks(target)))
            schema = getattr(target, "config_schema", None) or {}
            doc = (inspect.getdoc(target) or "").strip().splitlines()
            info = PluginInfo(
                name,
                source,
                hooks,
                doc[0] if doc else "",
                None,
                seen.get(name),
                tuple(schema) if isinstance(schema, Mapping) else (),
            )
        except _LoadFailure as exc:
            info = PluginInfo(name, source, error=str(exc), shadowed_by=seen.get(name))
        infos.append(info)
        seen.setdefault(name, source)

    for configured in plugin_dirs:
        directory = Path(configured)
        if not directory.is_dir():
            continue
        names = sorted(
            {p.stem for p in directory.glob("*.py")}
            | {p.parent.name for p in directory.glob("*/__init__.py")}
        )
        for name in names:
            path = _local_path(directory, name)
            if path is None or name.startswith("_"):
                continue
            add(name, str(path), lambda name=name, path=path: _load_local(name, path))
    for ep in sorted(_entry_points(), key=lambda e: e.name):
        add(ep.name, _ep_source(ep), lambda ep=ep: _load_entry_point(ep))
    return infos
