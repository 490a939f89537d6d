"""Per-rank output paths: ``reports/rank{rank}.json`` gives every rank of a job its own report.

Launchers such as torchrun start one ``crashsight run`` per rank with the same arguments and no
shell to expand variables, so the paths of ``--report``, ``--html`` and ``--termination-log``
accept placeholders that crashsight fills in itself: ``{rank}``, ``{local_rank}``, ``{host}`` and
``{pid}`` (crashsight's own process id, unique per rank on one host). ``{{`` and ``}}`` are
literal braces.
"""

from __future__ import annotations

import string
from collections.abc import Mapping

from ..errors import ConfigurationError

__all__ = ["PLACEHOLDERS", "expand_path"]

#: The placeholders a path may use.
PLACEHOLDERS = ("rank", "local_rank", "host", "pid")


def expand_path(option: str, template: str, values: Mapping[str, str | int | None]) -> str:
    """Fill in the placeholders of one path option.

    Args:
        option: the option's name, e.g. ``--report``, for the error message.
        template: the path as given.
        values: a value per placeholder; None where it is not known (no rank outside a job).

    Raises:
        ConfigurationError: an unknown placeholder, a format spec, unbalanced braces, or a
            placeholder whose value is not known; the message says which and what to do.
    """
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigurationError(
            f"{option} {template!r}: {exc}; write {{{{ and }}}} for literal braces"
        ) from None
    out: list[str] = []
    for literal, field, spec, conversion in parts:
        out.append(literal)
        if field is None:
            continue
        if field not in PLACEHOLDERS:
            known = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)
            raise ConfigurationError(
                f"{option} {template!r}: unknown placeholder {{{field}}}; use {known}"
            )
        if spec or conversion:
            raise ConfigurationError(
                f"{option} {template!r}: {{{field}}} takes no format spec or conversion"
            )
        value = values.get(field)
        if value is None:
            raise ConfigurationError(
                f"{option} {template!r}: {{{field}}} is not known here: no launcher variable "
                "(RANK, OMPI_COMM_WORLD_RANK, SLURM_PROCID, ...) is set; pass --rank "
                "(and --local-rank) or run under the launcher"
            )
        out.append(str(value))
    return "".join(out)
