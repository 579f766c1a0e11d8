"""Open a report in headless Chromium (Selenium) to check it renders and how fast it opens.

Used by the tests and `bench/bench_report.py`. Needs the `selenium` package and a
Chromium with its chromedriver (Debian: `chromium chromium-driver`, installed by
`scripts/install-browser.sh`); `browser_unavailable()` says why one cannot start.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path


CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--no-first-run",
    "--disable-sync", "--window-size=1280,1400",
)
BINARIES = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)


def _which(names) -> str | None:
    return next((path for name in names if (path := shutil.which(name))), None)


def browser_unavailable() -> str | None:
    """None when a headless Chromium can be driven here, else the reason (for skips)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the `selenium` package is not installed (pip install selenium, or the `dev` extra)"
    if not _which(BINARIES):
        return "no Chromium on PATH (run scripts/install-browser.sh as root on Debian/Ubuntu)"
    if not _which(DRIVERS):
        return "no chromedriver on PATH (Debian package `chromium-driver`; scripts/install-browser.sh)"
    return None


def start():
    """A headless Chromium WebDriver; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _which(BINARIES)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=_which(DRIVERS)))


def open_report(driver, path: str | Path, timeout: float = 60.0) -> float:
    """Load the report and wait until its list is rendered; returns ms from navigation start."""
    driver.get(Path(path).resolve().as_uri())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = driver.execute_script("return window.__reportReady || null")
        if ready is not None:
            return float(ready)
        time.sleep(0.02)
    raise TimeoutError(f"the report at {path} did not finish rendering in {timeout:.0f}s")
