"""The dashboard in a real headless Chromium against the running demo: sessions reach LIVE, a
rebalancer transfer shows in the journal, the pause button engages the kill switch and the
next transfer is refused, resume releases it, a transfer in doubt is resolved with
confirmation, a plugin the test made fail is re-enabled with confirmation. Screenshots go to
the test's tmp directory and, with ``QFEXBOT_SCREENSHOTS=DIR``, to DIR (docs/images holds the
ones docs/operations.md shows).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio
from ops_helpers import FLAKY

from qfexbot.config import load_config
from qfexbot.runtime import Runtime

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[2]
WAIT = 15.0
"""Seconds any one step of the page may take."""

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    _MISSING = (
        "headless Chromium is not installed (apt-get install chromium chromium-driver; "
        ".ci/run installs it)"
    )
    if os.environ.get("CI"):  # .ci/run installs it: missing there is a failure, not a skip
        pytest.fail(_MISSING, pytrace=False)
    pytest.skip(_MISSING, allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (the test extra) missing")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def demo_config(tmp_path: Path) -> Path:
    """The shipped bots.toml and plugins, quicker: the rebalancer decides every 0.5 s, and
    desk-b starts so far above its band that sweeping it takes a few dozen transfers; plus a
    plugin ``watch/flaky`` the test can make fail."""
    text = (REPO / "bots.toml").read_text()
    for old, new in (
        ('min_interval = "5s"', "min_interval = 0"),
        ('interval = "5s"', "interval = 0.5"),
        ('retry_after = "60s"', "retry_after = 0.5"),
        ("desk-b = 5000", "desk-b = 60000"),
        ("max_daily = 20000", "max_daily = 1000000"),
    ):
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "bots.toml"
    path.write_text(text + '\n[bots.watch.plugins.flaky]\nuse = "flaky:Flaky"\nfailure_limit = 2\n')
    shutil.copytree(
        REPO / "plugins", tmp_path / "plugins", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tmp_path / "plugins" / "flaky.py").write_text(FLAKY)
    return path


def chromium(profile: str) -> Any:
    """One headless Chromium from the OS packages, driven by the OS's chromedriver."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1500",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    return driver


class Page:
    """The dashboard in the browser, with the screenshots it takes."""

    def __init__(self, driver: Any, shots: list[Path]) -> None:
        self.driver = driver
        self.shots = shots

    def until(self, what: str, check: Any) -> Any:
        return WebDriverWait(self.driver, WAIT, poll_frequency=0.1).until(check, message=what)

    def rows(self, table: str, css: str = "") -> list[Any]:
        return self.driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr{css}")

    def shot(self, directory: Path, name: str) -> None:
        path = directory / name
        self.driver.save_screenshot(str(path))
        self.shots.append(path)


def walk(
    url: str,
    shots_dir: Path,
    shots: list[Path],
    paused_file: Path,
    make_doubt: Callable[[], Awaitable[str]],
    break_flaky: Callable[[bool], None],
) -> None:
    """Every step of the test in the browser (blocking; runs in a thread). ``make_doubt``
    (run in the test's trio loop) journals a transfer in doubt and returns its id;
    ``break_flaky(broken)`` (likewise) makes the ``flaky`` plugin fail or work."""
    with tempfile.TemporaryDirectory() as profile:
        driver = chromium(profile)
        try:
            page = Page(driver, shots)
            driver.get(url)
            # the token moved from the link into the tab's session storage
            page.until("the token out of the address bar", lambda d: "#token" not in d.current_url)
            page.until(
                "every session LIVE",
                lambda _: (
                    (rows := page.rows("sessions"))
                    and all("state-live" in r.get_attribute("class") for r in rows)
                ),
            )
            page.until(
                "a rebalancer transfer done",
                lambda _: page.rows("journal", ".kind-transfer.state-done"),
            )
            page.until(
                "an equity line of two points or more per account",
                lambda _: (
                    (rows := page.rows("accounts"))
                    and all(r.find_elements(By.CSS_SELECTOR, "polyline.equity") for r in rows)
                ),
            )
            page.shot(shots_dir, "dashboard.png")

            driver.find_element(By.ID, "pause-reason").send_keys("checking desk-b by hand")
            driver.find_element(By.ID, "pause-btn").click()
            page.until(
                "the kill switch banner",
                lambda d: "on" in d.find_element(By.ID, "kill").get_attribute("class").split(),
            )
            assert "checking desk-b by hand" in driver.find_element(By.ID, "kill-state").text
            assert paused_file.exists()
            page.until(
                "the rebalancer's next transfer refused",
                lambda _: [
                    r
                    for r in page.rows("journal", ".kind-refusal")
                    if "keep-funded/rebalancer" in r.text
                ],
            )
            refusal = next(
                r.text
                for r in page.rows("journal", ".kind-refusal")
                if "keep-funded/rebalancer" in r.text
            )
            assert "kill switch" in refusal.lower(), refusal
            page.shot(shots_dir, "dashboard-paused.png")

            done_before = len(page.rows("journal", ".kind-transfer.state-done"))
            driver.find_element(By.ID, "resume-btn").click()
            page.until(
                "the banner off",
                lambda d: "off" in d.find_element(By.ID, "kill").get_attribute("class").split(),
            )
            assert not paused_file.exists()
            page.until(
                "a transfer done after resume",
                lambda _: len(page.rows("journal", ".kind-transfer.state-done")) > done_before,
            )
            page.shot(shots_dir, "dashboard-resumed.png")

            # a transfer in doubt is highlighted; "did not land" asks first, then resolves it
            entry = trio.from_thread.run(make_doubt)
            doubt = f".in-doubt.state-unknown[data-id='{entry}']"
            page.until("the transfer in doubt", lambda _: page.rows("journal", doubt))
            page.shot(shots_dir, "dashboard-in-doubt.png")
            page.rows("journal", doubt)[0].find_element(
                By.CSS_SELECTOR, "button.not-applied"
            ).click()
            confirm = page.until("the confirmation", lambda d: d.switch_to.alert)
            assert entry in confirm.text and "did NOT land" in confirm.text
            confirm.accept()
            resolved = f".state-failed[data-id='{entry}']"
            page.until("the transfer resolved", lambda _: page.rows("journal", resolved))
            assert not page.rows("journal", f".in-doubt[data-id='{entry}']")

            # a plugin the test broke is disabled; fixed, "Re-enable" asks first, then enables it
            trio.from_thread.run_sync(break_flaky, True)
            disabled = ".disabled[data-id='watch/flaky']"
            page.until("the plugin disabled", lambda _: page.rows("plugins", disabled))
            assert "the test broke it" in page.rows("plugins", disabled)[0].text
            trio.from_thread.run_sync(break_flaky, False)
            page.rows("plugins", disabled)[0].find_element(By.CSS_SELECTOR, "button.enable").click()
            confirm = page.until("the re-enable confirmation", lambda d: d.switch_to.alert)
            assert "Re-enable plugin watch/flaky?" in confirm.text
            confirm.accept()
            page.until("the plugin enabled again", lambda _: not page.rows("plugins", disabled))
            assert "re-enabled" in driver.find_element(By.ID, "message").text
        finally:
            driver.quit()


async def journal_a_doubt(runtime: Runtime) -> str:
    """A transfer desk-a -> desk-c whose outcome is unknown (as after a timeout): the id."""
    journal, accounts = runtime.journal, runtime.app.venues["demo"].accounts
    assert journal is not None
    entry = await journal.record_intent(
        bot="keep-funded",
        plugin="rebalancer",
        venue="demo",
        src=accounts["desk-a"],
        dst=accounts["desk-c"],
        amount=Decimal("12.50"),
        reason="browser test: an outcome in doubt",
    )
    await journal.mark_sent(entry.id)
    await journal.mark_unknown(entry.id, "no answer within the request timeout (browser test)")
    return entry.id


def break_flaky(runtime: Runtime, broken: bool) -> None:
    """Make the ``watch/flaky`` plugin fail on every event, or work again."""
    (slot,) = [slot for slot in runtime.hosts["watch"].slots if slot.name == "flaky"]
    slot.plugin.broken = broken  # type: ignore[attr-defined]


async def test_dashboard_in_headless_chromium(tmp_path, nursery):
    app = load_config(demo_config(tmp_path))
    runtime = Runtime(app)
    lines: list[str] = []
    runtime.announce = lines.append
    await nursery.start(runtime.run)
    assert runtime.dashboard_url is not None and lines[0].startswith("dashboard: ")
    shots_dir = tmp_path / "screenshots"
    shots_dir.mkdir()
    shots: list[Path] = []
    with trio.fail_after(60):
        await trio.to_thread.run_sync(
            walk,
            runtime.dashboard_url,
            shots_dir,
            shots,
            app.runtime.kill_switch_file,
            functools.partial(journal_a_doubt, runtime),
            functools.partial(break_flaky, runtime),
        )
    runtime.stop()
    assert [p.name for p in shots] == [
        "dashboard.png",
        "dashboard-paused.png",
        "dashboard-resumed.png",
        "dashboard-in-doubt.png",
    ]
    for path in shots:
        assert path.read_bytes().startswith(b"\x89PNG"), path
    (flaky,) = [slot for slot in runtime.hosts["watch"].slots if slot.name == "flaky"]
    assert not flaky.disabled and flaky.reenabled == 1 and flaky.failures == 2
    await trio.to_thread.run_sync(publish, shots)


def publish(shots: list[Path]) -> None:
    """Copy the screenshots to ``$QFEXBOT_SCREENSHOTS`` when it is set."""
    target = os.environ.get("QFEXBOT_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for path in shots:
            shutil.copy(path, Path(target) / path.name)
