"""Keeping every response small enough for a web UI, and saying what was cut.

A job's log can hold a million-character line or a traceback ten thousand frames deep; a UI that
asked "why did job 7f3a fail?" must not receive all of it. `Limits` caps the number of error rows
and jobs listed, the length of every string and the length of every other list. `bound` applies
the caps to a JSON-like value *after* redaction, so a secret is masked whole before a cut could
split it into pieces the redactor no longer recognises. Each cut is named in the response.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..redact import JsonLike

__all__ = ["Limits", "bound"]

_MAX_NOTES = 20  # truncation notes listed; more are counted in one last note


@dataclass(frozen=True)
class Limits:
    """How much one response may hold.

    Args:
        max_errors: Distinct error rows in ``/jobs/{id}/errors`` (the rest are counted).
        max_jobs: Jobs in ``/jobs``, most recently changed first (the rest are counted).
        max_string_chars: Characters kept of any one string; longer ones end in ``… [+N chars]``.
        max_list_items: Items kept of any other list (frames, samples, suggestions): the first
            and last halves, since a traceback's innermost frames matter as much as its first.
        cache_entries: Log analyses kept in memory, keyed by file size and mtime.
    """

    max_errors: int = 100
    max_jobs: int = 200
    max_string_chars: int = 2000
    max_list_items: int = 50
    cache_entries: int = 32

    def __post_init__(self) -> None:
        for name in ("max_errors", "max_jobs", "max_list_items", "cache_entries"):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be at least 1, got {getattr(self, name)}")
        if self.max_string_chars < 80:
            raise ValueError(
                f"Limits.max_string_chars must be at least 80: a cut must leave a readable line, got {self.max_string_chars}"
            )


def bound(
    value: JsonLike, limits: Limits, *, whole: frozenset[str] = frozenset()
) -> tuple[JsonLike, list[str]]:
    """Cut long strings and lists of ``value``; return the result and one note per cut.

    Args:
        value: A JSON-like value, already redacted.
        limits: The caps to apply.
        whole: Top-level keys whose value the caller already bounded in its own way (the
            ``errors`` list by ``max_errors``): that value is left whole, its items are not.

    Returns:
        The bounded value and notes such as ``errors[0].message: 90000 chars, kept 2000``.
    """
    notes: list[str] = []
    bounded = _walk(value, "", limits, notes, whole)
    if len(notes) > _MAX_NOTES:
        notes = [*notes[:_MAX_NOTES], f"... and {len(notes) - _MAX_NOTES} more cuts"]
    return bounded, notes


def _walk(
    value: JsonLike, where: str, limits: Limits, notes: list[str], whole: frozenset[str]
) -> JsonLike:
    if isinstance(value, str) and len(value) > limits.max_string_chars and where not in whole:
        cut = len(value) - limits.max_string_chars
        notes.append(f"{where}: {len(value)} chars, kept {limits.max_string_chars}")
        return f"{value[: limits.max_string_chars]}… [+{cut} chars]"
    if isinstance(value, dict):
        return {
            key: _walk(item, f"{where}.{key}" if where else key, limits, notes, whole)
            for key, item in value.items()
        }
    if isinstance(value, list):
        indexed = list(enumerate(value))
        if len(value) > limits.max_list_items and where not in whole:
            head = limits.max_list_items // 2
            tail = limits.max_list_items - head
            notes.append(f"{where}: {len(value)} items, kept the first {head} and the last {tail}")
            indexed = indexed[:head] + indexed[-tail:] if tail else indexed[:head]
        return [_walk(item, f"{where}[{index}]", limits, notes, whole) for index, item in indexed]
    return value
