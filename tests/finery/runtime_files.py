"""A runtime in its own directory for the Finery runtime tests: bots.toml, test plugins, var/."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from qfexbot.config import load_config
from qfexbot.runtime import Runtime
from qfexbot.sim.finery import FinerySimulator
from qfexbot.sim.finery.config import demo_finery_config
from qfexbot.sim.finery.server import FineryUrls


def runtime_files(work: Path, bots_toml: str, plugins: Mapping[str, str]) -> Path:
    """Write ``bots_toml`` in ``work`` (its path is returned), ``plugins`` (module name -> source)
    in ``work/plugins`` and an empty ``work/var`` for the journal."""
    (work / "var").mkdir(parents=True)
    (work / "plugins").mkdir()
    for name, source in plugins.items():
        (work / "plugins" / f"{name}.py").write_text(source)
    (work / "bots.toml").write_text(bots_toml)
    return work / "bots.toml"


def runtime_in(work: Path, bots_toml: str, plugins: Mapping[str, str]) -> Runtime:
    """A (not yet running) runtime of ``bots_toml`` and ``plugins`` written in ``work``."""
    return Runtime(load_config(runtime_files(work, bots_toml, plugins)))


def finery_toml(
    bots: str,
    *,
    user_id: int,
    key: str,
    secret: str,
    accounts: Mapping[str, str | int],
    urls: FineryUrls | None = None,
    extra: str = "",
    pulse_interval: float | None = None,
    session: bool = True,
    request_timeout: float | None = None,
    plugin_dirs: Sequence[str] = ("plugins",),
) -> str:
    """A bots.toml: the ``[runtime]`` table, a ``[venues.fm]`` Finery table (the standalone
    simulator at ``urls``, or the embedded one without), then the test's ``bots`` tables.

    ``secret`` is TOML text (a quoted string or ``{ env = "..." }``); ``extra`` more venue
    lines; ``session`` adds the fast reconnect tunables the tests share."""
    dirs = ", ".join(f'"{d}"' for d in plugin_dirs)
    where = (
        f'trade_url = "{urls.ws_url}"\nrest_url = "{urls.rest_url}"'
        if urls is not None
        else "simulator = true"
    )
    lines = [
        "",
        "[runtime]",
        'journal = "var/journal.sqlite"',
        f"plugin_dirs = [{dirs}]",
        'kill_switch_file = "var/PAUSED"',
        "",
        "[venues.fm]",
        'kind = "finery"',
        where,
        f"user_id = {user_id}",
        f'public_key = "{key}"',
        f"secret = {secret}",
        *([extra] if extra else []),
        "[venues.fm.accounts]",
        *(f"{name} = {value!r}".replace("'", '"') for name, value in accounts.items()),
    ]
    if pulse_interval is not None:
        lines += ["[venues.fm.sim]", f"pulse_interval = {pulse_interval}"]
    if session:
        lines += ["[venues.fm.session]", "backoff_initial = 0.05", "backoff_max = 0.2"]
        if request_timeout is not None:
            lines.append(f"request_timeout = {request_timeout}")
    return "\n".join(lines) + "\n" + bots


# The demo simulator's logins: user id, public key, the env variable the tests put the secret in.
DEMO_LOGINS = {
    "maker": (2, "fm_maker_demo", "FM_TEST_MAKER_SECRET"),
    "taker": (1, "fm_taker_demo", "FM_TEST_TAKER_SECRET"),
}


def demo_toml(
    bots: str, urls: FineryUrls, login: str, accounts: Mapping[str, str | int], **options: Any
) -> str:
    """``finery_toml`` on the standalone demo simulator at ``urls`` as its ``login`` ("maker" or
    "taker"), the secret read from that login's env variable."""
    user_id, key, env = DEMO_LOGINS[login]
    secret = f'{{ env = "{env}" }}'
    return finery_toml(
        bots, urls=urls, user_id=user_id, key=key, secret=secret, accounts=accounts, **options
    )


@asynccontextmanager
async def running(runtime: Runtime) -> AsyncIterator[Runtime]:
    """``runtime`` started in a nursery of its own; on leaving, stopped and waited for."""
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        yield runtime
        runtime.stop()


@asynccontextmanager
async def runtime_on_simulator(
    work: Path,
    bots_toml: Callable[[FineryUrls], str],
    plugins: Mapping[str, str],
    sim: FinerySimulator | None = None,
) -> AsyncIterator[tuple[FineryUrls, Runtime]]:
    """A standalone Finery simulator (``sim``, else the demo one) on 127.0.0.1 and a running
    runtime of ``bots_toml(urls)`` in ``work``; both stopped on leaving."""
    sim = sim if sim is not None else FinerySimulator(demo_finery_config())
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(sim.serve, "127.0.0.1")
        async with running(runtime_in(work, bots_toml(urls), plugins)) as runtime:
            yield urls, runtime
        nursery.cancel_scope.cancel()
