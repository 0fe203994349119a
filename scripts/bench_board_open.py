"""How long the leaderboard takes to open: time until the ranking table is visible in a browser.

    .venv/bin/python scripts/bench_board_open.py [--runs 3] [--submissions DIR]

Serves `steer-pu leaderboard` and loads it in headless Debian chromium with the browser test's
harness (tests/browser/harness.py), as a visitor would. Each run starts a fresh server (no
in-memory cache), so the figures include Streamlit importing the page:

- **cold**: an empty offline-check cache ($STEER_PU_BOARD_CACHE points at a new folder);
- **warm**: the cache filled by the cold runs (the usual case after the first visit);
- **reload**: the same page loaded again in the same server.

For each: seconds from ``driver.get`` to a ranking table with rows, and (cold) until no row
still reads "checking…" (the background offline checks done and the page rerun). Not a test:
the figures depend on the machine (docs/performance.md, "Opening the leaderboard").
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the harness lives with the tests

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from steer_pu.leaderboard.checks import ENV_CACHE  # noqa: E402
from steer_pu.leaderboard.data import CHECKING  # noqa: E402
from tests.browser.harness import headless_chromium, served_leaderboard  # noqa: E402

TIMEOUT = 120


def _ranking_rows(driver: WebDriver) -> list[str] | None:
    """The ranking table's row texts, or None while it is not drawn."""
    for table in driver.find_elements(By.TAG_NAME, "table"):
        header = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
        if "suite FA" in header:
            rows = [r.text for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
            return rows or None
    return None


def _open(driver: WebDriver, url: str) -> tuple[float, float]:
    """(seconds until the ranking table shows, seconds until no row reads "checking…")."""
    driver.get("about:blank")
    started = time.perf_counter()
    driver.get(url)
    WebDriverWait(driver, TIMEOUT, poll_frequency=0.05).until(lambda d: _ranking_rows(d) is not None)
    shown = time.perf_counter() - started
    # then poll gently: each poll is several WebDriver round trips, and polling every 50 ms takes
    # enough CPU from a 2-core machine to slow the background checks threefold
    WebDriverWait(driver, TIMEOUT, poll_frequency=0.5).until(
        lambda d: not any(CHECKING in r for r in (_ranking_rows(d) or [CHECKING]))
    )
    return shown, time.perf_counter() - started


def _figures(label: str, values: list[float]) -> str:
    runs = ", ".join(f"{v:.2f}" for v in values)
    return f"{label:<34} median {statistics.median(values):5.2f} s  (runs: {runs})"


def main(runs: int, submissions: Path | None) -> None:
    results: dict[str, list[float]] = {k: [] for k in ("cold", "cold, checks done", "warm", "reload")}
    with tempfile.TemporaryDirectory() as scratch, headless_chromium() as driver:
        filled = Path(scratch) / "filled"
        for i in range(runs):
            os.environ[ENV_CACHE] = str(Path(scratch) / f"empty-{i}")
            with served_leaderboard(submissions) as url:
                shown, done = _open(driver, url)
            results["cold"].append(shown)
            results["cold, checks done"].append(done)
            print(f"cold run {i + 1}: table {shown:.2f} s, checks done {done:.2f} s", flush=True)
        os.environ[ENV_CACHE] = str(filled)
        with served_leaderboard(submissions) as url:
            _open(driver, url)  # fills the cache
        for i in range(runs):
            with served_leaderboard(submissions) as url:
                shown, _ = _open(driver, url)
                again, _ = _open(driver, url)
            results["warm"].append(shown)
            results["reload"].append(again)
            print(f"warm run {i + 1}: table {shown:.2f} s, reload {again:.2f} s", flush=True)
    print(f"\n{os.cpu_count()} CPUs; submissions: {submissions or 'the repository default'}")
    for label, values in results.items():
        print(_figures(label, values))


if __name__ == "__main__":
    # `timeout` sends SIGTERM: exit through the context managers, which stop the servers (an orphaned
    # server whose stdout pipe is gone does not stop on SIGTERM any more)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--submissions", type=Path, default=None)
    args = parser.parse_args()
    main(args.runs, args.submissions)
