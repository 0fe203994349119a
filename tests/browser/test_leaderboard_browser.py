"""The leaderboard in a real browser: `steer-pu leaderboard` served on localhost, loaded by
headless Debian chromium through chromedriver (selenium). CI installs both (.ci/run); the
test fails, never skips, when they are missing. The screenshot is kept as a test artifact
in $STEER_PU_TEST_ARTIFACTS (default: test-artifacts/ at the repo root).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from steer_pu.leaderboard_data import SPLIT_MARK

from ..leaderboard_helpers import MAIN, MAIN_ENTRIES, build_board

CHROMIUM = os.environ.get("STEER_PU_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("STEER_PU_CHROMEDRIVER", "/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"steer-pu leaderboard exited with {server.returncode}: {server.stdout.read()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the leaderboard did not answer on {url} within {timeout:.0f} s")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    for tool in (CHROMIUM, CHROMEDRIVER):
        assert Path(tool).is_file(), (
            f"{tool} not found: the browser test needs Debian's chromium and chromedriver "
            "(apt-get install chromium chromium-driver; .ci/run installs them)"
        )
    folder = build_board(tmp_path_factory.mktemp("submissions"))
    port = _free_port()
    cli = Path(sys.executable).with_name("steer-pu")
    server = subprocess.Popen(
        [str(cli), "leaderboard", "--submissions", str(folder), "--port", str(port), "--address", "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, server, timeout=120)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        # steer-pu leaderboard must be the server, not its parent: nothing may still listen
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"a leaderboard server outlived steer-pu leaderboard on port {port}"


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_leaderboard_renders_table_and_split_rows(served, browser):
    browser.get(served)
    # the page is built over a websocket after load: wait for the ranking table's SPLIT rows
    wait = WebDriverWait(browser, 180, poll_frequency=0.5)
    wait.until(lambda d: any(SPLIT_MARK in t.text for t in d.find_elements(By.TAG_NAME, "table")))
    wait.until(lambda d: "Rejected entries" in d.find_element(By.TAG_NAME, "body").text)
    ranking = next(t for t in browser.find_elements(By.TAG_NAME, "table") if SPLIT_MARK in t.text)
    header = [th.text for th in ranking.find_elements(By.CSS_SELECTOR, "thead th")]
    assert {"rank", "method", "suite FA", "95% CI", "FA gain", "FA−", "verified"} <= set(header)
    rows = ranking.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == len(MAIN_ENTRIES) + 1  # + the tampered entry
    split_rows = [r for r in rows if SPLIT_MARK in r.text]
    assert len(split_rows) == sum(1 for e in MAIN_ENTRIES if e[1] == "split")
    # SPLIT rows are shaded, the others not
    shade = {r.find_element(By.TAG_NAME, "td").value_of_css_property("background-color") for r in split_rows}
    plain = {r.find_element(By.TAG_NAME, "td").value_of_css_property("background-color") for r in rows if r not in split_rows}
    assert shade.isdisjoint(plain)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert f"Ranking on {MAIN}" in body and "broken.json" in body
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg"))
    time.sleep(1.0)  # let the charts finish drawing before the screenshot
    artifacts = Path(os.environ.get("STEER_PU_TEST_ARTIFACTS", REPO / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "leaderboard.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
