"""Ray's prefix on the worker lines it forwards to a driver: ``(encode pid=1234) ...``.

A Ray driver prints each line its workers write with the worker's task or actor name and pid in
front, coloured with ANSI codes on a terminal (Ray python/ray/_private/worker.py,
``print_worker_logs``)::

    \\x1b[36m(encode pid=1234)\\x1b[0m Fatal Python error: Segmentation fault
    (Shard pid=1234, ip=10.0.0.7) ...       another node's worker
    \\x1b[33m(raylet)\\x1b[0m A worker died ...  Ray's own daemons

When crashsight supervises such a driver, the worker's line is the root cause and its pid says
which process died. The collector strips the prefix before matching and stores the line without
it, with the origin as the diagnostic's fields.
"""

from __future__ import annotations

import re

__all__ = ["split_ray_prefix"]

_ANSI = r"(?:\x1b\[[\d;]*m)?"
_PREFIX = re.compile(
    rf"^{_ANSI}\("
    r"(?:(?:(?P<ray_worker>[^()]+?) )?pid=(?P<ray_pid>\d+)|(?P<ray_daemon>raylet|autoscaler[^(),]*))"
    rf"(?:, ip=(?P<ray_ip>[^()\s]+))?\){_ANSI} ?"
)


def split_ray_prefix(line: str) -> tuple[str, dict[str, str]]:
    """Split ``line`` into its text without Ray's prefix and the prefix's fields.

    Returns:
        The text after the prefix and ``{"ray_worker": "encode", "ray_pid": "1234"}`` (with
        ``ray_ip`` for another node's worker, ``ray_worker`` naming ``raylet`` for Ray's own
        daemons); the line unchanged and no fields when it has no Ray prefix.
    """
    found = _PREFIX.match(line)
    if found is None:
        return line, {}
    fields = {key: value for key, value in found.groupdict().items() if value}
    if "ray_daemon" in fields:
        fields["ray_worker"] = fields.pop("ray_daemon")
    return line[found.end() :], fields
