"""The stacks of a real hang in the HTML panel, in a real headless browser."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

HANG = Path(__file__).resolve().parent.parent / "hang_workers.py"


@pytest.fixture(scope="module")
def hang_page(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The page of a thread pool whose task deadlocks, stopped by --no-progress-timeout."""
    page = tmp_path_factory.mktemp("hang") / "panel.html"
    result = subprocess.run(
        [sys.executable, "-m", "crashsight", "run", "--no-progress-timeout", "6",
         "--html", str(page), "--", sys.executable, str(HANG), "thread_pool"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 124, result.stderr
    return page.as_uri()


def test_the_stuck_thread_is_open_and_the_others_open_on_click(
    browser: webdriver.Chrome, hang_page: str
) -> None:
    """One block per thread: the stuck one open at its frame, another opens to show its frames."""
    browser.get(hang_page)
    assert "blocked in compress_chunk" in browser.find_element(By.ID, "summary").text
    threads = browser.find_elements(By.CSS_SELECTOR, "#stacks details.thread")
    stuck = [block for block in threads if block.get_attribute("open") == "true"]
    [open_block] = stuck
    assert "(blocked here)" in open_block.text
    assert "in compress_chunk" in open_block.text
    assert "lock.acquire()" in open_block.text
    main = next(block for block in threads if "MainThread" in block.text)
    assert main.get_attribute("open") is None
    assert "in thread_pool" not in main.text, "closed: its frames are hidden"
    main.find_element(By.TAG_NAME, "summary").click()
    assert "in thread_pool" in main.text
    rows = browser.find_elements(By.CSS_SELECTOR, "#process-tree tr")
    assert len(rows) == 2, "a header and the one python process"
