"""Kubernetes: the verdict in the container's termination message.

Kubernetes copies the file at ``terminationMessagePath`` (``/dev/termination-log`` by default) into
the pod status when the container ends, and cluster tooling classifies on it (Armada's
``onTerminationMessage`` rules, for one). Kubernetes keeps at most 4096 bytes, so the message is cut
to fit at a character boundary.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .markdown import verdict_label
from .model import Report

__all__ = ["DEFAULT_TERMINATION_LOG", "default_termination_log", "termination_message"]

DEFAULT_TERMINATION_LOG = Path("/dev/termination-log")
_LIMIT = 4096


def termination_message(report: Report) -> str:
    """``category/subcategory: summary`` and the hint, at most 4096 bytes of UTF-8."""
    head = report.summary
    if report.category is None:
        head = f"{verdict_label(report)}: {report.summary}"
    text = head + (f"\nhint: {report.hint}" if report.hint else "") + "\n"
    data = text.encode()
    if len(data) <= _LIMIT:
        return text
    return data[: _LIMIT - 4].decode(errors="ignore") + "...\n"


def default_termination_log(env: Mapping[str, str] | None = None) -> Path | None:
    """``/dev/termination-log`` inside a pod when it is writable; None elsewhere."""
    env = os.environ if env is None else env
    if "KUBERNETES_SERVICE_HOST" not in env:
        return None
    path = DEFAULT_TERMINATION_LOG
    return path if path.exists() and os.access(path, os.W_OK) else None
