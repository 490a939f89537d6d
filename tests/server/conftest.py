"""A real FastAPI training server with crashsight mounted, served by uvicorn on 127.0.0.1.

The server runs in a thread on a socket the test bound first (port 0, so parallel runs never
collide); the thread signals when uvicorn has started, and each test ends with a clean shutdown.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp

from crashsight.server import crashsight_app

TOKEN_ENV = "CRASHSIGHT_TEST_SERVER_TOKEN"
TOKEN = "s3rver-t0ken-for-tests-0123456789"
PREFIX = "/crashsight"


class _ThreadServer(uvicorn.Server):
    """uvicorn that says when it is ready, instead of the test polling the port."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 until the block ends; yields ``http://127.0.0.1:PORT``."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = _ThreadServer(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        assert server.ready.wait(timeout=20), "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        listener.close()
        assert not thread.is_alive(), "uvicorn did not shut down"


@dataclass
class Site:
    """The training server's job folders and the URL where crashsight is mounted."""

    reports: Path
    logs: Path
    url: str


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """Empty ``reports/`` and ``logs/`` folders."""
    reports, logs = tmp_path / "reports", tmp_path / "logs"
    reports.mkdir()
    logs.mkdir()
    return reports, logs


@pytest.fixture
def site(folders: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """A FastAPI app with the endpoint at ``/crashsight``, token from `TOKEN_ENV`, served live."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    reports, logs = folders
    app = FastAPI()
    app.mount(PREFIX, crashsight_app(reports, logs, token_env=TOKEN_ENV))
    with serving(app) as url:
        yield Site(reports=reports, logs=logs, url=url + PREFIX)


@pytest.fixture
def client(site: Site) -> Iterator[httpx.Client]:
    """An HTTP client for the endpoint that sends the right token."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=site.url, headers=headers, timeout=20) as client:
        yield client
