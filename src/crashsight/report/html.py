"""The HTML error-trace panel: one self-contained page an operator can open from a CI artifact.

No network assets: styles and the small script are inline, so the page works from a file, an
artifact viewer or an air-gapped cluster. Every piece of text from a worker is untrusted: it is
HTML-escaped where it is shown, and the copy-to-clipboard text travels as JSON inside a
``<script type="application/json">`` block with ``<`` escaped, so a stderr line such as
``</script><script>alert(1)</script>`` is shown as text and never run.

The page is built from a `Panel`, a neutral description that `crashsight run`, ``analyze`` and
``aggregate`` each fill from their own results.
"""

from __future__ import annotations

import json
from html import escape

from pydantic import BaseModel, ConfigDict, Field

from ..diagnostics.hangs import BlockedIn, ProcessInfo, ThreadStack
from ..protocol import ExceptionInfo, FrameInfo
from .stacks_text import thread_title

__all__ = ["Panel", "PanelRow", "TimelineEntry", "render_panel"]


class PanelRow(BaseModel):
    """One deduplicated diagnostic or error: what it is, how often, and an example line."""

    model_config = ConfigDict(extra="forbid")

    label: str
    verdict: str
    count: int
    example: str
    detail: str = ""


class TimelineEntry(BaseModel):
    """Something that happened, in order: a start, a first or last sighting, an exit."""

    model_config = ConfigDict(extra="forbid")

    when: str
    what: str


class Panel(BaseModel):
    """Everything the page shows; filled by the run, analyze and aggregate commands."""

    model_config = ConfigDict(extra="forbid")

    title: str
    status: str
    verdict: str
    summary: str
    hint: str | None = None
    facts: list[tuple[str, str]] = Field(default_factory=list)
    rows: list[PanelRow] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    traceback: ExceptionInfo | None = None
    stderr_tail: list[str] = Field(default_factory=list)
    stacks: list[ThreadStack] = Field(default_factory=list)
    blocked_in: BlockedIn | None = None
    process_tree: list[ProcessInfo] = Field(default_factory=list)
    full_text: str = ""


_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:15px;margin:24px 0 8px}
.verdict{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;color:#fff}
.failed{background:#c62828}.succeeded{background:#2e7d32}.cancelled{background:#6d6d6d}
.summary{font-size:16px;margin:10px 0}.hint{background:#fff8e1;border-left:4px solid #f9a825;
padding:8px 12px} table{border-collapse:collapse;width:100%;background:#fff}
td,th{border:1px solid #dde1e7;padding:5px 8px;text-align:left;vertical-align:top}
code,pre{font:12.5px/1.4 ui-monospace,monospace} pre{background:#11151c;color:#e6e6e6;
padding:12px;overflow:auto;max-height:480px} details{background:#fff;border:1px solid #dde1e7;
margin:6px 0;padding:6px 10px} summary{cursor:pointer;font-weight:600}
.frame{margin:2px 0 2px 12px}.frame .src{color:#555;margin-left:18px}
button{font:inherit;padding:6px 14px;border-radius:6px;border:1px solid #8a94a6;background:#fff;
cursor:pointer}
"""

_SCRIPT = """
document.getElementById("copy").addEventListener("click", async function () {
  const text = JSON.parse(document.getElementById("report-text").textContent);
  const button = this;
  try {
    await navigator.clipboard.writeText(text);
  } catch (error) {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  button.textContent = "Copied";
});
"""


def render_panel(panel: Panel) -> str:
    """Render ``panel`` as one self-contained HTML document."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request: the page needs nothing else
        f"<title>{escape(panel.title)}</title><style>{_STYLE}</style></head><body><main>",
        f"<h1>{escape(panel.title)}</h1>",
        f'<span class="verdict {escape(panel.status)}" id="verdict">{escape(panel.verdict)}</span>',
        f'<p class="summary" id="summary">{escape(panel.summary)}</p>',
    ]
    if panel.hint:
        parts.append(f'<p class="hint">{escape(panel.hint)}</p>')
    parts.append('<button id="copy" type="button">Copy full report</button>')
    if panel.facts:
        parts.append("<h2>Facts</h2><table>")
        parts += [f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in panel.facts]
        parts.append("</table>")
    if panel.rows:
        parts.append('<h2>Errors and diagnostics</h2><table id="rows">')
        parts.append("<tr><th>what</th><th>verdict</th><th>count</th><th>first line</th></tr>")
        parts += [_row(row) for row in panel.rows]
        parts.append("</table>")
    if panel.timeline:
        parts.append('<h2>Timeline</h2><table id="timeline">')
        parts += [
            f"<tr><td><code>{escape(e.when)}</code></td><td>{escape(e.what)}</td></tr>"
            for e in panel.timeline
        ]
        parts.append("</table>")
    if panel.traceback is not None:
        parts.append("<h2>Traceback</h2>")
        parts.append(_exception(panel.traceback, "the error that ended the run", open_=False))
    parts += _stop(panel)
    if panel.stderr_tail:
        parts.append("<h2>stderr tail</h2>")
        parts.append(f'<pre id="stderr">{escape(chr(10).join(panel.stderr_tail))}</pre>')
    text = json.dumps(panel.full_text).replace("<", "\\u003c")
    parts.append(f'<script type="application/json" id="report-text">{text}</script>')
    parts.append(f"<script>{_SCRIPT}</script></main></body></html>")
    return "\n".join(parts) + "\n"


def _row(row: PanelRow) -> str:
    detail = f"<br><small>{escape(row.detail)}</small>" if row.detail else ""
    return (
        f"<tr><td><code>{escape(row.label)}</code>{detail}</td><td>{escape(row.verdict)}</td>"
        f"<td>{row.count}</td><td><code>{escape(row.example)}</code></td></tr>"
    )


def _stop(panel: Panel) -> list[str]:
    """The stacks at a stop, one collapsible block per thread (the stuck one open), and the tree."""
    parts: list[str] = []
    if panel.stacks:
        stuck = panel.blocked_in
        parts.append('<h2>Stacks at the stop</h2><div id="stacks">')
        for stack in panel.stacks:
            is_stuck = stuck is not None and (stuck.pid, stuck.thread_id) == (
                stack.pid,
                stack.thread_id,
            )
            title = thread_title(stack, panel.process_tree) + (
                " (blocked here)" if is_stuck else ""
            )
            native = (
                f"<details><summary>native frames</summary>{_frames(stack.native_frames)}</details>"
                if stack.native_frames
                else ""
            )
            parts.append(
                f'<details class="thread"{" open" if is_stuck else ""}>'
                f"<summary>{escape(title)}</summary>{_frames(stack.frames)}{native}</details>"
            )
        parts.append("</div>")
    if panel.process_tree:
        parts.append('<h2>Process tree at the stop</h2><table id="process-tree">')
        parts.append(
            "<tr><th>pid</th><th>ppid</th><th>name</th><th>state</th><th>CPU s</th>"
            "<th>age s</th><th>command</th></tr>"
        )
        parts += [
            f"<tr><td>{p.pid}</td><td>{p.ppid}</td><td>{escape(p.name)}</td>"
            f"<td>{escape(p.state)}</td><td>{p.cpu_time_s:.2f}</td><td>{p.age_s:.1f}</td>"
            f"<td><code>{escape(' '.join(p.cmdline))}</code></td></tr>"
            for p in panel.process_tree
        ]
        parts.append("</table>")
    return parts


def _frames(frames: list[FrameInfo]) -> str:
    return "".join(
        f'<div class="frame"><code>{escape(f.file)}:{f.line} in {escape(f.function)}</code>'
        + (f'<div class="src"><code>{escape(f.code)}</code></div>' if f.code else "")
        + "</div>"
        for f in frames
    )


def _exception(info: ExceptionInfo, relation: str, *, open_: bool) -> str:
    """A collapsible block for one exception, with its frames and the chain nested inside."""
    frames = _frames(info.frames)
    notes = "".join(f"<div><em>{escape(note)}</em></div>" for note in info.notes)
    linked = []
    if info.cause is not None:
        linked.append(_exception(info.cause, "caused by", open_=False))
    if info.context is not None:
        linked.append(_exception(info.context, "while handling", open_=False))
    linked += [_exception(e, "member of the group", open_=False) for e in info.exceptions]
    attribute = " open" if open_ else ""
    return (
        f'<details class="exception"{attribute}><summary>{escape(info.summary())}'
        f" <small>({escape(relation)})</small></summary>{frames}{notes}{''.join(linked)}</details>"
    )
