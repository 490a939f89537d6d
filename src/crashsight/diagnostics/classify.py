"""The classifier: from what the supervisor knows about a dead worker to a one-line verdict.

The supervisor gathers `Facts` (the termination error, the diagnostics the collector found in
stderr, the exit status, which watchdog fired, OOM-kill evidence) and asks a `Classifier` for a
`Verdict`. The classifier tries the user's rules, then the built-in ones (``default_rules.toml``,
whose comments hold the taxonomy and the precedence tiers); the first rule whose matchers all
hold decides.

How each matcher is evaluated:

* ``exception``/``message`` look at every exception in the termination error's chain (causes,
  contexts, group members), outermost first, and pick the first one that satisfies both. Class
  names are compared with the MRO (``ExceptionInfo.mro_names``); a bare name matches the last
  component of a qualified one. An exception parsed from stderr may come without its MRO: for
  builtins the real MRO is used, otherwise its own name and ``BaseException``.
* ``signature`` picks the first diagnostic (in order of appearance) whose id it selects. A rule
  whose only matcher is ``signature`` never selects an evidence-only diagnostic.
* ``errno`` constrains the picked exception and/or diagnostic (``errno`` field); a rule with
  ``errno`` and neither of the other two takes the first exception, else diagnostic, with it.
* The termination error's messages are also run through the catalogue, so an error that reached
  the supervisor only over the channel (never printed) still meets the signature tiers.
* A child's death the worker reported (``Facts.in_child``, else found here from the wrapper
  in the chain, as for a log): the child's signal stands in for
  ``signals`` when the worker itself exited normally, and tracebacks that wrappers carry in their
  message (``ProcessRaisedException``) are parsed and put first in the chain.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from ..protocol import ExceptionInfo
from .catalogue import CATALOGUE, SIGNATURE_IDS, diagnose_line, signature_by_id
from .children import ChildProcess, child_exceptions, find_child
from .models import Diagnostic, Role, TimeoutKind
from .rules import Rule, builtin_rules
from .summary import message_line

__all__ = ["Classifier", "Facts", "Verdict"]

_UNKNOWN_HINT = "No rule explains this failure; read the stderr tail and the exit status."
_LEADING_ERRNO = re.compile(r"^\[Errno (\d+)\]")


class Facts(BaseModel):
    """What the supervisor knows after a runner failed: the classifier's whole input."""

    model_config = ConfigDict(extra="forbid")

    termination_error: ExceptionInfo | None = Field(
        default=None, description="Structured from the channel, or parsed from stderr."
    )
    diagnostics: list[Diagnostic] = Field(
        default_factory=list, description="In order of first appearance."
    )
    stderr_lines: list[str] = Field(
        default_factory=list, description="Collected tail lines, for `stderr` matchers."
    )
    exit_code: int | None = Field(default=None, description="Exit status when it exited normally.")
    signal: str | None = Field(default=None, description="e.g. 'SIGSEGV' when killed by a signal.")
    timeout: TimeoutKind | None = Field(default=None, description="Which watchdog fired, if any.")
    oom_killed: bool | None = Field(default=None, description="None means 'could not tell'.")
    oom_in_tree: bool | None = Field(
        default=None,
        description="Whether the runner's own memory cgroup counted an OOM kill of any process "
        "of its tree (exact); None without a memory cgroup of its own.",
    )
    in_child: ChildProcess | None = Field(
        default=None,
        description="The worker's child whose death it reported (`children.find_child`); its "
        "signal counts for ``signals`` when the worker itself was not killed by one.",
    )
    pids_limited: bool | None = Field(
        default=None,
        description="Whether the runner's cgroup refused a fork at its pids limit; None: no limit.",
    )


class Verdict(BaseModel):
    """Why a worker died, in one line: a category, the rule that said so, and the evidence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str
    subcategory: str | None = None
    hint: str | None = None
    role: Role = Field(
        default="root_cause",
        description="What this failure is in a job of many ranks: its own fault, a consequence "
        "of a peer's failure, or collateral (stopped by a signal it did not cause).",
    )
    rule: str = Field(description="Which rule decided, e.g. 'builtin rule[4]'.")
    evidence: str | None = Field(
        default=None,
        description="The line that best explains it: the matched diagnostic's first line, or "
        "'Type: message' of the matched exception.",
    )


@dataclass(frozen=True)
class _Match:
    """What a rule's matchers picked; the verdict's templates and evidence come from it."""

    diagnostic: Diagnostic | None = None
    exception: ExceptionInfo | None = None
    line: str | None = None


class Classifier:
    """Turns `Facts` into a `Verdict` with user rules first, then the built-in table.

    Args:
        rules: the user's rules (`crashsight.diagnostics.rules.load_rules`), tried in order
            before the built-in ones, so a user can override any built-in verdict.
    """

    def __init__(self, rules: Sequence[Rule] = ()) -> None:
        self._rules = (*rules, *builtin_rules())

    def classify(self, facts: Facts) -> Verdict:
        """Return the verdict of the first rule that matches, or category ``unknown``."""
        chain = facts.termination_error.chain() if facts.termination_error else []
        # A child's exception carried as text inside a wrapper is the root of the chain: first.
        chain = [*child_exceptions(chain), *chain]
        diagnostics = [*facts.diagnostics, *_diagnostics_from(chain, facts.diagnostics)]
        if facts.in_child is None:  # e.g. a log analysed later: the wrapper in the chain tells
            child = find_child(chain, [], facts.signal)
            facts = facts.model_copy(update={"in_child": child}) if child else facts
        for rule in self._rules:
            match = _match(rule, facts, chain, diagnostics)
            if match is not None:
                return _verdict(rule, match, facts.stderr_lines)
        return Verdict(category="unknown", hint=_UNKNOWN_HINT, rule="none")


def _match(
    rule: Rule, facts: Facts, chain: list[ExceptionInfo], diagnostics: list[Diagnostic]
) -> _Match | None:
    """Return what the rule picked when all its matchers hold, else None."""
    if rule.timeout is not None and facts.timeout != rule.timeout:
        return None
    if rule.oom_killed is not None and facts.oom_killed is not rule.oom_killed:
        return None
    if rule.oom_in_tree is not None and facts.oom_in_tree is not rule.oom_in_tree:
        return None
    if rule.pids_limited is not None and facts.pids_limited is not rule.pids_limited:
        return None
    child_signal = facts.in_child.signal if facts.in_child else None
    if rule.signals is not None and (facts.signal or child_signal) not in rule.signals:
        return None
    if rule.exit_codes is not None and facts.exit_code not in rule.exit_codes:
        return None
    diagnostic = exception = line = None
    if rule.signature is not None:
        alone = rule.matchers == ("signature",)
        diagnostic = next(
            (
                d
                for d in diagnostics
                if rule.signature_selects(d.id)
                and not (alone and d.evidence_only)
                and _diagnostic_errno_ok(rule, d)
            ),
            None,
        )
        if diagnostic is None:
            return None
    if rule.exception is not None or rule.message is not None:
        exception = next((e for e in chain if _exception_ok(rule, e)), None)
        if exception is None:
            return None
    elif rule.errno is not None and rule.signature is None:
        exception = next((e for e in chain if _errno_of(e) in rule.errno), None)
        if exception is None:
            diagnostic = next((d for d in diagnostics if _diagnostic_errno_ok(rule, d)), None)
            if diagnostic is None:
                return None
    if rule.stderr is not None:
        pattern = re.compile(rule.stderr)
        line = next((text for text in facts.stderr_lines if pattern.search(text)), None)
        if line is None:
            return None
    return _Match(diagnostic, exception, line)


def _exception_ok(rule: Rule, info: ExceptionInfo) -> bool:
    if rule.exception is not None:
        names = _class_names(info)
        if not any(wanted in names for wanted in rule.exception):
            return False
    if rule.message is not None and not re.search(rule.message, info.message):
        return False
    return rule.errno is None or _errno_of(info) in rule.errno


def _diagnostic_errno_ok(rule: Rule, diagnostic: Diagnostic) -> bool:
    number = diagnostic.fields.get("errno", "")
    return rule.errno is None or (number.isdigit() and int(number) in rule.errno)


def _errno_of(info: ExceptionInfo) -> int | None:
    """The exception's errno, or the one OSError.__str__ put at the start of its message."""
    if info.errno is not None:
        return info.errno
    found = _LEADING_ERRNO.match(info.message)
    return int(found.group(1)) if found else None


def _class_names(info: ExceptionInfo) -> set[str]:
    """Every name a rule may use for this exception's classes: qualified and bare."""
    qualified = list(info.mro_names)
    if not qualified:
        cls = getattr(builtins, info.type, None) if info.module == "builtins" else None
        if isinstance(cls, type) and issubclass(cls, BaseException):
            qualified = [f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__]
        else:
            qualified = [f"{info.module}.{info.type}", "builtins.BaseException"]
    return {*qualified, *(name.rsplit(".", 1)[-1] for name in qualified)}


def _diagnostics_from(chain: list[ExceptionInfo], seen: list[Diagnostic]) -> list[Diagnostic]:
    """Run the catalogue over the chain's messages, for errors never printed to stderr.

    A child's stderr that ``subprocess`` captured (``attributes["stderr"]``) is read the same way:
    the child's own error is there and nowhere else.

    Only signatures the collector did not already report are added, after its diagnostics.
    """
    found: list[Diagnostic] = []
    known = {diagnostic.id for diagnostic in seen}
    for info in chain:
        captured = info.attributes.get("stderr")  # a child's stderr that subprocess captured
        texts = [*info.summary().splitlines(), *str(captured or "").splitlines()]
        for text in texts:
            for signature in CATALOGUE:
                diagnostic = None if signature.id in known else diagnose_line(signature, text)
                if diagnostic is not None:
                    known.add(signature.id)
                    found.append(diagnostic)
    return found


def _verdict(rule: Rule, match: _Match, lines: Sequence[str]) -> Verdict:
    bare = match.exception.type.rsplit(".", 1)[-1] if match.exception else ""

    def render(template: str) -> str:
        return template.format(exception=bare, signature=match.diagnostic)

    if match.diagnostic is not None:
        where = (
            signature_by_id(match.diagnostic.id).message_at
            if match.diagnostic.id in SIGNATURE_IDS
            else "line"
        )
        evidence: str | None = message_line(match.diagnostic.first_line, where, lines)
    elif match.exception is not None:
        evidence = match.exception.summary()
    else:
        evidence = match.line
    if rule.role is not None:
        role = render(rule.role)
    else:
        role = match.diagnostic.role if match.diagnostic is not None else "root_cause"
    return Verdict(
        category=render(rule.category),
        subcategory=None if rule.subcategory is None else render(rule.subcategory),
        hint=None if rule.hint is None else render(rule.hint),
        role=role,
        rule=rule.origin,
        evidence=evidence,
    )
