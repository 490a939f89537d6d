"""The signature catalogue: every failure text crashsight recognises, as one table of data.

The rows live in `crashsight.diagnostics.signatures`, one module per family (GPU, comm, host,
config, crash, HTTP, Ray, other runtimes, conditions named in words, wrappers of a
child's death); this module assembles them and answers questions about them.

Each entry says how to find a line (``literals`` to grep for, then ``pattern``), what it means
(``category``/``subcategory``, the same taxonomy the classifier's verdicts use) and what to do
about it (``hint``). ``source`` names the library that prints the text and where; ``samples`` are
real lines as that library prints them, and ``tests/diagnostics/test_catalogue.py`` runs every
sample through its own entry and through the classifier, so the table cannot drift from the texts.

Patterns are searched, never anchored at the start of a line, so that log prefixes (timestamps,
``[rank3]:``, ``(WorkerProc pid=200)``) do not hide a match. Where two entries can match one line,
they agree on the category; the intended overlaps are:

* ``requests.max_retries`` (http/connection) wraps the urllib3 cause, so its line may also match
  ``python.connection_refused`` (http/connection) or ``requests.read_timeout`` (http/timeout).
* ``cxx.libcxxabi_terminate`` and ``cxx.terminate`` are evidence only: they wrap the real error
  (``[METAL] ...``, ``[ring] ...``) on the same line, and that error's entry gives the verdict.
  ``cxx.bad_alloc`` (memory/memory_error) is such an error: it names the exception type itself.
  ``cxx.what`` (the ``  what():`` line) is evidence only for the same reason: it may quote another
  library's error (NCCL's watchdog); with SIGABRT and nothing better, it gives crash/cxx_exception.
"""

from __future__ import annotations

import difflib
import errno
from collections.abc import Mapping
from datetime import UTC, datetime

from .models import Diagnostic, Signature

__all__ = [
    "CATALOGUE",
    "SIGNATURE_IDS",
    "diagnose_line",
    "enrich_fields",
    "ids_matching",
    "match_line",
    "signature_by_id",
]

from .signatures import comm, config, crash, gpu, host, http, ray, runtimes, words, wrappers

#: Every signature, grouped by family.
CATALOGUE: tuple[Signature, ...] = (
    *gpu.SIGNATURES,
    *comm.SIGNATURES,
    *host.SIGNATURES,
    *config.SIGNATURES,
    *crash.SIGNATURES,
    *http.SIGNATURES,
    *runtimes.SIGNATURES,
    *words.SIGNATURES,
    *wrappers.SIGNATURES,
    *ray.SIGNATURES,
)

#: Every catalogue id, for validating rules and hooks.
SIGNATURE_IDS: frozenset[str] = frozenset(signature.id for signature in CATALOGUE)

_BY_ID: Mapping[str, Signature] = {signature.id: signature for signature in CATALOGUE}


def signature_by_id(signature_id: str) -> Signature:
    """Return the catalogue entry with this id.

    Raises:
        KeyError: no entry has this id; the message names the closest ids.
    """
    try:
        return _BY_ID[signature_id]
    except KeyError:
        close = difflib.get_close_matches(signature_id, _BY_ID, n=3)
        advice = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
        raise KeyError(f"no catalogue signature {signature_id!r}{advice}") from None


def ids_matching(pattern: str) -> tuple[str, ...]:
    """Return the ids an id pattern selects: itself, or all ids with a prefix if it ends in ``*``.

    Rules name signatures this way (``cuda.*``), so a family can be ranked as one tier.
    """
    if pattern.endswith("*"):
        prefix = pattern[:-1]
        return tuple(signature.id for signature in CATALOGUE if signature.id.startswith(prefix))
    return (pattern,) if pattern in _BY_ID else ()


def enrich_fields(signature_id: str, fields: Mapping[str, str]) -> dict[str, str]:
    """Return ``fields`` plus the values derived from them, for the collector to store.

    Today this adds ``errno_name`` (``ECONNRESET``) wherever an ``errno`` field holds a number this
    platform knows, because a report reader recognises names, not numbers. Numbers are those of the
    machine running crashsight, which is the machine that printed them for local workers.

    Raises:
        KeyError: ``signature_id`` is not a catalogue id (the hook was called with a foreign id).
    """
    signature_by_id(signature_id)
    enriched = dict(fields)
    number = fields.get("errno", "")
    if number.isdigit() and int(number) in errno.errorcode:
        enriched["errno_name"] = errno.errorcode[int(number)]
    return enriched


def match_line(signature: Signature, line: str) -> dict[str, str] | None:
    """Match one line the way the collector does: literal prefilter, regex, then enrichment.

    Returns:
        The extracted fields (empty if the pattern has no groups), or None when the line does not
        match. Groups that did not take part in the match are left out.
    """
    if not any(literal in line for literal in signature.literals):
        return None
    found = signature.regex.search(line)
    if found is None:
        return None
    fields = {name: value for name, value in found.groupdict().items() if value is not None}
    return enrich_fields(signature.id, fields)


def diagnose_line(
    signature: Signature, line: str, *, lineno: int = 1, when: datetime | None = None
) -> Diagnostic | None:
    """Return the diagnostic of one matching line (count 1), or None if the line does not match.

    This is the first occurrence as the collector records it; it also lets the classifier treat
    an exception message that never reached stderr like a collected line.
    """
    fields = match_line(signature, line)
    if fields is None:
        return None
    seen = (line, lineno, when or datetime.now(UTC))
    return Diagnostic.of(signature, first=seen, last=seen, count=1, fields=fields)
