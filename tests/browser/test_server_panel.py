"""The endpoint's HTML route in a real headless browser, through ``crashsight serve``.

The browser sends the bearer token the way a training server's UI would, in the Authorization
header (set through the DevTools protocol), never in the URL. The browser fixture and the rule
for skipping without chromium are those of ``test_html_panel.py``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

TOKEN_ENV = "CRASHSIGHT_BROWSER_TEST_TOKEN"
TOKEN = "browser-test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def jobs_url(tmp_path_factory: pytest.TempPathFactory, train_log: str) -> Iterator[str]:
    """``crashsight serve`` on 127.0.0.1 with one job that left only its log."""
    folder = tmp_path_factory.mktemp("jobs")
    (folder / "reports").mkdir()
    (folder / "logs").mkdir()
    (folder / "logs" / "7f3a.log").write_text(train_log)
    command = [sys.executable, "-m", "crashsight", "serve", "--reports", str(folder / "reports"),
               "--logs", str(folder / "logs"), "--port", "0", "--token-env", TOKEN_ENV]  # fmt: skip
    env = {**os.environ, TOKEN_ENV: TOKEN}
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env) as server:
        assert server.stderr is not None
        found = re.search(r"http://\S+/jobs", server.stderr.readline())
        assert found, "crashsight serve did not say where it listens"
        try:
            yield found.group()
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=20)
            server.stderr.read()


@pytest.fixture
def with_token(browser: webdriver.Chrome) -> Iterator[webdriver.Chrome]:
    """The browser, sending the token in a header on every request until the test ends."""
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Bearer {TOKEN}"}}
    )
    yield browser
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
    browser.execute_cdp_cmd("Network.disable", {})


def test_job_page_loads_with_its_verdict_and_no_console_errors(
    with_token: webdriver.Chrome,
    console_errors: Callable[[], list[dict[str, object]]],
    jobs_url: str,
) -> None:
    """The job's panel loads under its content policy, shows the verdict, and logs no error."""
    with_token.get(f"{jobs_url}/7f3a")
    assert with_token.find_element(By.ID, "verdict").text == "gpu/oom"
    assert "eval" in with_token.find_element(By.ID, "summary").text
    assert with_token.title == "crashsight analyze: 7f3a.log"
    assert console_errors() == []


def test_job_page_without_the_token_is_refused(browser: webdriver.Chrome, jobs_url: str) -> None:
    """Without the header the browser gets the 401 JSON body, not the page."""
    browser.get(f"{jobs_url}/7f3a")
    assert '"error":"unauthorized"' in browser.find_element(By.TAG_NAME, "body").text
    assert browser.find_elements(By.ID, "verdict") == []
