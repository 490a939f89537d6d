"""The short verdict block `crashsight run` prints on its stderr when a runner fails."""

from __future__ import annotations

from .model import Report

__all__ = ["render_verdict"]

_MAX_DIAGNOSTICS = 5


def render_verdict(report: Report, report_path: str | None = None) -> str:
    """Render a failed or cancelled report as a few plain lines an operator can read at a glance.

    Example::

        crashsight: gpu/oom: CUDA out of memory. Tried to allocate 2.00 GiB
          exit:      exited with code 1
          evidence:  cuda.oom x3  torch.OutOfMemoryError: CUDA out of memory. ...
          hint:      lower the batch size ...
          failed in: train.py:42 in step
          report:    r.json
    """
    lines = [f"crashsight: {report.summary}"]
    lines.append(f"  exit:      {report.exit.description}")
    if report.signals_sent:
        lines.append(f"  sent:      {', '.join(report.signals_sent)} (by crashsight)")
    for diagnostic in report.diagnostics[:_MAX_DIAGNOSTICS]:
        lines.append(
            f"  evidence:  {diagnostic.id} x{diagnostic.count}  {diagnostic.first_line.strip()[:160]}"
        )
    if report.hint:
        lines.append(f"  hint:      {report.hint}")
    error = report.termination_error
    if error is not None and error.frames:
        frame = error.frames[-1]
        lines.append(f"  failed in: {frame.file}:{frame.line} in {frame.function}")
    if report.tasks.in_flight:
        lines.append(f"  in flight: {', '.join(report.tasks.in_flight[:10])}")
    for note in report.notes:
        lines.append(f"  note:      {note}")
    if report_path:
        lines.append(f"  report:    {report_path}")
    return "\n".join(lines)
