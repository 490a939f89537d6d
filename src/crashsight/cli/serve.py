"""``crashsight serve --reports DIR [--logs DIR]``: the error endpoint on its own, under uvicorn.

For training servers that are not ASGI apps, or to try the endpoint out: it serves exactly what
``app.mount(prefix, crashsight_app(...))`` serves inside a host app (see `crashsight.server`).
It listens on 127.0.0.1 unless told otherwise, and needs a bearer token in an environment variable
(``CRASHSIGHT_TOKEN`` unless ``--token-env`` names another). ``--unauthenticated`` is for a loopback
address only: anything else would publish jobs' stderr to the network.

Starlette and uvicorn come with the ``server`` extra and are imported only when this command runs,
so the rest of the CLI works without them.

Exit status: 130 after Ctrl-C, 143 after SIGTERM (uvicorn shuts down cleanly, then re-raises the
signal), 2 for bad options, a busy port or a missing extra.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
from types import FrameType

from ..errors import ConfigurationError

__all__ = ["DEFAULT_TOKEN_ENV", "add_serve_parser", "serve_command"]

DEFAULT_TOKEN_ENV = "CRASHSIGHT_TOKEN"
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_MISSING_EXTRA = "crashsight serve needs the server extra: pip install 'crashsight[server]'"


def add_serve_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``serve`` and its options."""
    parser = subparsers.add_parser(
        "serve",
        help="serve jobs' errors over HTTP (needs the server extra)",
        description="Serve GET PREFIX/jobs, PREFIX/jobs/ID/errors (JSON) and PREFIX/jobs/ID "
        "(HTML panel) for the reports in --reports and the logs in --logs.",
    )
    parser.add_argument("--reports", required=True, metavar="DIR", help="<job_id>.json reports")
    parser.add_argument("--logs", metavar="DIR", help="<job_id>.log logs (optional)")
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    parser.add_argument("--prefix", default="/crashsight", help="URL prefix (default /crashsight)")
    parser.add_argument(
        "--token-env",
        metavar="NAME",
        help=f"environment variable holding the bearer token (default {DEFAULT_TOKEN_ENV})",
    )
    parser.add_argument(
        "--unauthenticated",
        action="store_true",
        help="serve without a token (only on a loopback address)",
    )
    parser.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    """Entry point of ``crashsight serve``."""
    try:
        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import Mount

        from ..server import crashsight_app
    except ImportError:
        print(_MISSING_EXTRA, file=sys.stderr)
        return 2
    try:
        if args.unauthenticated and args.host not in _LOOPBACK:
            raise ConfigurationError(
                f"--unauthenticated on {args.host} would show every job's errors to the network; "
                "serve on 127.0.0.1 or configure a token"
            )
        prefix = args.prefix.rstrip("/")
        if prefix and not prefix.startswith("/"):
            raise ConfigurationError(f"--prefix must start with '/', got {args.prefix!r}")
        token_env = args.token_env or (None if args.unauthenticated else DEFAULT_TOKEN_ENV)
        app = crashsight_app(
            args.reports, args.logs, token_env=token_env, unauthenticated=args.unauthenticated
        )
    except ConfigurationError as exc:
        print(f"crashsight serve: {exc}", file=sys.stderr)
        return 2
    root = Starlette(routes=[Mount(prefix, app=app)]) if prefix else app

    class _SignalRecordingServer(uvicorn.Server):  # here: uvicorn is imported by this command only
        """uvicorn's server, remembering the first signal it shut down for."""

        received: int | None = None

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self.received is None:
                self.received = sig
            super().handle_exit(sig, frame)

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    try:  # bound here, so that --port 0 can print the port it got, and a busy port is exit 2
        listener = socket.create_server((args.host, args.port), family=family)
    except OSError as exc:
        print(f"crashsight serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    with listener:
        host, port = listener.getsockname()[:2]
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        print(f"crashsight serve: jobs at http://{shown}:{port}{prefix}/jobs", file=sys.stderr)
        server = _SignalRecordingServer(uvicorn.Config(root, log_level="warning"))
        try:
            server.run(sockets=[listener])
        except KeyboardInterrupt:  # uvicorn shuts down, then re-raises the SIGINT it caught
            return 128 + signal.SIGINT
    # uvicorn re-raises the signal it shut down for once its handlers are restored, but a
    # SIGINT this process inherited as ignored (a command started with '&' from a script) then
    # goes nowhere and run() returns as if nothing happened: exit 0 after Ctrl-C. The signal
    # uvicorn's own handler saw decides instead.
    return 0 if server.received is None else 128 + server.received
