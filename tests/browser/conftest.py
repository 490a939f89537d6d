"""The browser under test: Debian's chromium driven by selenium through its packaged chromedriver.

CI installs chromium and chromedriver (see .ci/run); elsewhere the browser tests are skipped when
they are missing, but never under CI=true, where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="session")
def browser() -> Iterator[webdriver.Chrome]:
    """Headless chromium as root in a sandboxless container, with console logs captured."""
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver must be installed in CI (see .ci/run)")
        pytest.skip("chromium and chromedriver are not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run",
    ):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def console_errors(browser: webdriver.Chrome) -> Callable[[], list[dict[str, object]]]:
    """Returns the console's SEVERE entries logged since this test began.

    The browser is shared by the session and reading its log empties it, so the fixture empties
    it first: a test never depends on what earlier tests logged, or on whether they read it.
    """
    browser.get_log("browser")  # type: ignore[no-untyped-call]

    def errors() -> list[dict[str, object]]:
        entries: list[dict[str, object]] = browser.get_log("browser")  # type: ignore[no-untyped-call]
        return [entry for entry in entries if entry["level"] == "SEVERE"]

    return errors


@pytest.fixture(scope="session")
def train_log() -> str:
    """A training log whose evaluation phase ran out of GPU memory."""
    return """\
[2025-12-10 03:58:20] [trainer] [INFO] [SFT] step 100 loss 0.412
[2025-12-10 03:58:21] [trainer] [INFO] [EVAL] Running evaluation
[2025-12-10 03:58:22] [trainer] [ERROR] [EVAL] torch.OutOfMemoryError: CUDA out of memory. \
Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.15 GiB of which 1.23 GiB is free.
"""
