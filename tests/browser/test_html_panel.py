"""The HTML error-trace panel of run, analyze and aggregate, in a real headless browser."""

from __future__ import annotations

import functools
import http.server
import re
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from crashsight.testing.httpd import local_http_server

HOSTILE = '</script><script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
WORKER = f"""
import sys
print({HOSTILE!r}, file=sys.stderr, flush=True)

def load(path):
    open(path)

def main():
    try:
        load("/nonexistent/shard-7.tar")
    except OSError as error:
        raise RuntimeError("cannot fetch shard 7") from error

main()
"""


def _crashsight(*args: str) -> int:
    result = subprocess.run(
        [sys.executable, "-m", "crashsight", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return result.returncode


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, train_log: str) -> Iterator[str]:
    """Real `run`, `analyze` and `aggregate` pages, served from 127.0.0.1 (a secure context)."""
    folder = tmp_path_factory.mktemp("panel")
    (folder / "worker.py").write_text(WORKER)
    (folder / "train.log").write_text(train_log)
    worker = [sys.executable, str(folder / "worker.py")]
    assert _crashsight("run", "--html", str(folder / "run.html"), "--report",
                       str(folder / "r.json"), "--", *worker) == 1  # fmt: skip
    assert _crashsight("analyze", "--html", str(folder / "analyze.html"),
                       str(folder / "train.log")) == 1  # fmt: skip
    assert _crashsight("aggregate", "--html", str(folder / "aggregate.html"),
                       str(folder / "r.json")) == 1  # fmt: skip
    handler = functools.partial(_QuietHandler, directory=str(folder))
    with local_http_server(handler) as base:
        yield base


@pytest.fixture
def panel_url(site: str) -> str:
    """The `crashsight run --html` page."""
    return f"{site}/run.html"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.mark.parametrize(
    ("page", "verdict", "summary"),
    [
        pytest.param("run.html", "python/RuntimeError", "cannot fetch shard 7", id="run"),
        pytest.param("analyze.html", "gpu/oom", "eval", id="analyze"),
        pytest.param("aggregate.html", "python x1", "1 of 1 shards failed", id="aggregate"),
    ],
)
def test_page_loads_without_console_errors(
    browser: webdriver.Chrome,
    console_errors: Callable[[], list[dict[str, object]]],
    site: str,
    page: str,
    verdict: str,
    summary: str,
) -> None:
    """Each command's page loads from its own bytes alone, with nothing logged as an error."""
    browser.get(f"{site}/{page}")
    assert browser.find_element(By.ID, "verdict").text == verdict
    assert summary in browser.find_element(By.ID, "summary").text
    assert console_errors() == []


def test_traceback_expands_to_frames_and_cause(browser: webdriver.Chrome, panel_url: str) -> None:
    """The traceback starts collapsed; opening it shows frames, and the cause nests inside."""
    browser.get(panel_url)
    block = browser.find_element(By.CSS_SELECTOR, "details.exception")
    assert block.get_attribute("open") is None
    block.find_element(By.TAG_NAME, "summary").click()
    assert block.get_attribute("open") == "true"
    assert re.search(r"worker\.py:\d+ in main", block.text)
    cause = block.find_element(By.CSS_SELECTOR, "details.exception")
    cause.find_element(By.TAG_NAME, "summary").click()
    assert "FileNotFoundError" in cause.text
    assert "in load" in cause.text


def test_copy_button_copies_the_full_report(browser: webdriver.Chrome, panel_url: str) -> None:
    """The copy button puts the plain-text report on the clipboard."""
    browser.get(panel_url)
    browser.execute_cdp_cmd(
        "Browser.grantPermissions",
        {"permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
    )
    button = browser.find_element(By.ID, "copy")
    button.click()
    WebDriverWait(browser, 10).until(lambda _: button.text == "Copied")
    copied = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "navigator.clipboard.readText().then(done, e => done('ERROR ' + e));"
    )
    assert copied.startswith("crashsight: python/RuntimeError: cannot fetch shard 7")
    assert "stderr tail:" in copied


def test_untrusted_text_is_shown_never_run(browser: webdriver.Chrome, panel_url: str) -> None:
    """A stderr line carrying markup is displayed as text; none of its script runs."""
    browser.get(panel_url)
    assert HOSTILE in browser.find_element(By.ID, "stderr").text
    assert browser.execute_script("return window.__xss === undefined")
