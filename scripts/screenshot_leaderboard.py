"""Screenshot of the leaderboard served from the committed submissions (README image).

    .venv/bin/python scripts/screenshot_leaderboard.py [OUT.png]   # default docs/img/leaderboard.png
    .venv/bin/python scripts/screenshot_leaderboard.py --drill submissions/smollm2-135m/prompting-prompt.json \
        docs/img/leaderboard_generations.png   # the drill-down of one entry, at its generations

Serves `steer-pu leaderboard` and loads it in headless Debian chromium with the browser
test's harness (tests/browser/harness.py), waits for the ranking table and the frontier
chart, and saves a PNG. With ``--drill FILE`` it serves that entry alone (its folder copied with
its artifacts into a scratch root), so the drill-down opens on it, scrolls to its generations
and saves that part of the page.
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


def drill(entry: Path, out: Path) -> None:
    """The drill-down of ``entry`` scrolled to its generations (the entry served alone)."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / entry.parent.name
        folder.mkdir()
        shutil.copy(entry, folder / entry.name)
        if (entry.parent / entry.stem).is_dir():  # its artifact copies
            shutil.copytree(entry.parent / entry.stem, folder / entry.stem)
        with served_leaderboard(Path(tmp)) as url, headless_chromium(1400, 1300) as driver:
            driver.get(url)
            wait = WebDriverWait(driver, 240, poll_frequency=0.5)
            wait.until(lambda d: "fluency NLL" in d.find_element(By.TAG_NAME, "body").text)
            time.sleep(2.0)
            heading = next(e for e in driver.find_elements(By.CSS_SELECTOR, "h2, h3, h4") if "Generations" in e.text)
            driver.execute_script("arguments[0].scrollIntoView();", heading)
            time.sleep(1.0)
            out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(out))
            print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


def main(out: Path) -> None:
    with served_leaderboard() as url, headless_chromium(1400, 1250) as driver:
        driver.get(url)
        wait = WebDriverWait(driver, 180, poll_frequency=0.5)
        wait.until(lambda d: d.find_elements(By.TAG_NAME, "table"))
        # the offline checks run in the background: shoot the table once every row is checked
        wait.until(lambda d: "checking" not in d.find_element(By.TAG_NAME, "body").text)
        wait.until(charts_drawn)
        time.sleep(1.5)  # let the charts finish drawing
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
        print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--drill"]:
        drill(
            Path(sys.argv[2]), Path(sys.argv[3]) if len(sys.argv) > 3 else REPO / "docs/img/leaderboard_generations.png"
        )
    else:
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "img" / "leaderboard.png")
