"""A local HTTP listener for tests that need a real HTTP failure (pairs with `injectors.http_get`).

Real 503s, 401s and refused connections come from a server on 127.0.0.1 that the test itself
runs, so nothing leaves the machine. Not re-exported from `crashsight.testing`: workers import
that package, and they have no use for a server.
"""

from __future__ import annotations

import http.server
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["StatusHandler", "local_http_server"]


class StatusHandler(http.server.BaseHTTPRequestHandler):
    """Answers ``GET /<code>/...`` with that status code, and any other path with 503."""

    def do_GET(self) -> None:
        first = self.path.strip("/").split("/", 1)[0]
        self.send_error(int(first) if first.isdigit() and len(first) == 3 else 503)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output (and the demo's screen) free of access logs."""


@contextmanager
def local_http_server(
    handler: Callable[..., socketserver.BaseRequestHandler] = StatusHandler,
) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 on a free port; yield the base URL; stop and join on exit.

    Args:
        handler: A request handler class, or a factory such as
            ``functools.partial(SimpleHTTPRequestHandler, directory=...)``.
    """
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="local-http", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{_host(host)}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _host(host: Any) -> str:
    return host.decode() if isinstance(host, bytes) else str(host)
