"""Screenshot of the leaderboard served from the committed submissions (README image).

    .venv/bin/python scripts/screenshot_leaderboard.py [OUT.png]   # default docs/img/leaderboard.png

Serves `steer-pu leaderboard` and loads it in headless Debian chromium with the browser
test's harness (tests/browser/harness.py), waits for the ranking table and the frontier
chart, and saves a PNG.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the harness lives with the tests

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.browser.harness import charts_drawn, headless_chromium, served_leaderboard  # noqa: E402


def main(out: Path) -> None:
    with served_leaderboard() as url, headless_chromium(1400, 1250) as driver:
        driver.get(url)
        wait = WebDriverWait(driver, 180, poll_frequency=0.5)
        wait.until(lambda d: d.find_elements(By.TAG_NAME, "table"))
        wait.until(charts_drawn)
        time.sleep(1.5)  # let the charts finish drawing
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
        print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "img" / "leaderboard.png")
