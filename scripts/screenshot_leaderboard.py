"""Screenshot of the leaderboard served from the committed submissions (README image).

    .venv/bin/python scripts/screenshot_leaderboard.py [OUT.png]   # default docs/img/leaderboard.png

Starts `steer-pu leaderboard` on a free localhost port, loads it in headless Debian chromium
(selenium + chromedriver, as in tests/browser), waits for the ranking table and the
frontier chart, and saves a PNG.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parents[1]


def main(out: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = Path(sys.executable).with_name("steer-pu")
    server = subprocess.Popen([str(cli), "leaderboard", "--port", str(port), "--address", "127.0.0.1"], cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1250"):
        options.add_argument(arg)
    driver = None
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"the leaderboard did not come up on {url}")
                time.sleep(0.5)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        driver.get(url)
        wait = WebDriverWait(driver, 180, poll_frequency=0.5)
        wait.until(lambda d: d.find_elements(By.TAG_NAME, "table"))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg"))
        time.sleep(1.5)  # let the charts finish drawing
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
        print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "img" / "leaderboard.png")
