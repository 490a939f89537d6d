"""Classification rules: the TOML shape shared by user rules files and the built-in table.

A rules file is a list of ``[[rule]]`` tables. Each rule names a verdict (``category``, optional
``subcategory`` and ``hint``) and one or more matchers, all of which must match::

    [[rule]]
    category = "toktx"
    subcategory = "encode"
    hint = "check the texture"
    exception = "RuntimeError"
    message = '^toktx exit \\d+'

Matchers (see `crashsight.diagnostics.classify` for how each is evaluated):

================  ================================================================================
``exception``     class name or list of names, bare (``OSError``) or qualified
                  (``requests.exceptions.HTTPError``), matched against the MRO of any exception in
                  the termination error's chain
``message``       regex searched in that exception's message (any exception's, without ``exception``)
``errno``         number, name (``ENOSPC``) or list; constrains the matched exception and/or
                  diagnostic, or with neither named, is met by either
``signature``     catalogue id or list of ids; a trailing ``*`` selects a family (``cuda.*``)
``stderr``        regex searched in every collected stderr line
``exit_codes``    list of exit statuses
``signals``       list of signal names (``SIGKILL``); a child's, when the worker reports its
                  death
``timeout``       ``deadline`` or ``no_progress``: which supervisor watchdog fired
``oom_killed``    true/false: whether the cgroup counted an OOM kill
``oom_in_tree``   true/false: whether the runner's own memory cgroup counted an OOM kill (exact)
``pids_limited``  true/false: whether the runner's cgroup refused a fork at its pids limit
================  ================================================================================

``role`` says what the verdict means for a job of many ranks: ``root_cause`` (the worker's own
fault, the default), ``consequence`` (a peer's failure reached it: a comm error) or ``collateral``
(stopped by a signal it did not cause); ``{signature.role}`` takes the matched catalogue entry's.

``category``, ``subcategory``, ``hint`` and ``role`` may use ``{exception}`` (bare class name of the matched
exception; needs ``exception`` or ``message``) and ``{signature.id}``, ``{signature.category}``,
``{signature.subcategory}``, ``{signature.hint}``, ``{signature.role}`` (the matched diagnostic; needs ``signature``).
That is what keeps the built-in table to one rule per precedence tier.
"""

from __future__ import annotations

import difflib
import errno as errno_module
import functools
import os
import re
import signal
import string
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..errors import RulesError
from .catalogue import SIGNATURE_IDS, ids_matching
from .models import ROLES, TimeoutKind

__all__ = ["MATCHERS", "Rule", "builtin_rules", "load_rules", "parse_rules", "rules_from_data"]

#: The matcher keys: a rule must use at least one.
MATCHERS = (
    "exception",
    "message",
    "errno",
    "signature",
    "stderr",
    "exit_codes",
    "signals",
    "timeout",
    "oom_killed",
    "oom_in_tree",
    "pids_limited",
)
_TEMPLATE_FIELDS = {
    "exception": ("exception", "message"),
    "signature.id": ("signature",),
    "signature.category": ("signature",),
    "signature.subcategory": ("signature",),
    "signature.hint": ("signature",),
    "signature.role": ("signature",),
}
_ROLE_FROM_SIGNATURE = "{signature.role}"


def _as_tuple(value: object) -> tuple[object, ...]:
    """Let a single value stand for a one-element list, as TOML authors expect."""
    if isinstance(value, list | tuple):
        return tuple(value)
    return (value,)


def _did_you_mean(word: str, choices: list[str] | tuple[str, ...] | frozenset[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Rule(BaseModel):
    """One classification rule: a verdict and the matchers that must all hold for it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    category: str = Field(min_length=1)
    subcategory: str | None = None
    hint: str | None = None
    role: str | None = None
    exception: tuple[str, ...] | None = None
    message: str | None = None
    errno: tuple[int, ...] | None = None
    signature: tuple[str, ...] | None = None
    stderr: str | None = None
    exit_codes: tuple[int, ...] | None = None
    signals: tuple[str, ...] | None = None
    timeout: TimeoutKind | None = None
    oom_killed: bool | None = None
    oom_in_tree: bool | None = None
    pids_limited: bool | None = None
    _origin: str = PrivateAttr(default="rule")

    @property
    def origin(self) -> str:
        """Where the rule was defined, e.g. ``builtin rule[4]``; names the rule in a verdict."""
        return self._origin

    @property
    def matchers(self) -> tuple[str, ...]:
        """The names of the matchers this rule uses."""
        return tuple(name for name in MATCHERS if getattr(self, name) is not None)

    @field_validator("exception", "signature", "signals", "exit_codes", mode="before")
    @classmethod
    def _listify(cls, value: object) -> object:
        return None if value is None else _as_tuple(value)

    @field_validator("errno", mode="before")
    @classmethod
    def _errno_numbers(cls, value: object) -> object:
        if value is None:
            return None
        numbers: list[object] = []
        for item in _as_tuple(value):
            if isinstance(item, str):
                if not hasattr(errno_module, item) or not item.startswith("E"):
                    names = frozenset(errno_module.errorcode.values())
                    raise ValueError(f"unknown errno name {item!r}{_did_you_mean(item, names)}")
                item = getattr(errno_module, item)
            numbers.append(item)
        return tuple(numbers)

    @field_validator("message", "stderr")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"bad regex {value!r}: {exc}") from None
        return value

    @field_validator("signature")
    @classmethod
    def _known_signatures(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for pattern in value or ():
            if not ids_matching(pattern):
                hint = _did_you_mean(pattern, SIGNATURE_IDS)
                raise ValueError(f"{pattern!r} matches no catalogue signature{hint}")
        return value

    @field_validator("exception", "errno", "signature", "exit_codes", "signals")
    @classmethod
    def _can_match(cls, value: tuple[object, ...] | None, info: ValidationInfo) -> object:
        """A matcher that can never hold (an empty list, an impossible number) is a mistake."""
        if value is None:
            return value
        if not value:
            raise ValueError(
                f"an empty list never matches; give at least one {info.field_name} value"
            )
        if info.field_name == "exit_codes" and any(not 0 <= int(str(c)) <= 255 for c in value):
            raise ValueError(f"exit codes are 0 to 255, got {list(value)}")
        if info.field_name == "errno" and any(int(str(n)) <= 0 for n in value):
            raise ValueError(f"errno values are positive, got {list(value)}")
        return value

    @field_validator("signals")
    @classmethod
    def _known_signals(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        known = tuple(signal.Signals.__members__)
        for name in value or ():
            if name not in known:
                raise ValueError(f"unknown signal {name!r}{_did_you_mean(name, known)}")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Rule:
        if not self.matchers:
            raise ValueError(f"rule has no matchers; give at least one of {', '.join(MATCHERS)}")
        if self.role is not None and self.role not in (*ROLES, _ROLE_FROM_SIGNATURE):
            choices = ", ".join((*ROLES, _ROLE_FROM_SIGNATURE))
            raise ValueError(f"role: {self.role!r} is not one of {choices}")
        for key in ("category", "subcategory", "hint", "role"):
            for field in _template_fields(key, getattr(self, key)):
                if field not in _TEMPLATE_FIELDS:
                    raise ValueError(f"{key}: unknown placeholder {{{field}}}")
                needs = _TEMPLATE_FIELDS[field]
                if not any(getattr(self, matcher) is not None for matcher in needs):
                    raise ValueError(f"{key}: {{{field}}} needs a {' or '.join(needs)} matcher")
        return self

    def signature_selects(self, signature_id: str) -> bool:
        """Return whether the ``signature`` matcher selects this catalogue id."""
        return any(signature_id in ids_matching(pattern) for pattern in self.signature or ())


def _template_fields(key: str, template: str | None) -> list[str]:
    if template is None:
        return []
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{key}: bad template {template!r}: {exc}") from None
    fields = []
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        # A format spec or conversion ({exception:>99999}, {exception!r}) could fail or blow up
        # at classification time, after the run; placeholders are plain substitutions only.
        if spec or conversion:
            raise ValueError(
                f"{key}: placeholder {{{field}}} takes no format spec or conversion, got "
                f"{template!r}"
            )
        fields.append(field)
    return fields


def _problem(error: Mapping[str, Any]) -> str:
    """Turn one pydantic error into the words a rules author needs."""
    where = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] not in {"value_error", "assertion_error"}:
        message = f"{message} (got {error['input']!r})"
    return f"{where}: {message}" if where else message


def rules_from_data(data: Mapping[str, Any], source: str) -> list[Rule]:
    """Validate already-parsed TOML data into rules.

    Args:
        data: the document, a mapping with one key ``rule`` holding a list of tables.
        source: the file name to put in error messages and in each rule's `Rule.origin`.

    Raises:
        RulesError: the data is not a list of valid rules; the message names ``source``, the
            rule's index and the problem, e.g. ``rules.toml: rule[2]: unknown key 'mesage'``.
    """
    for key in data:
        if key != "rule":
            hint = _did_you_mean(key, ["rule"])
            raise RulesError(f"{source}: unknown top-level key {key!r}{hint}")
    tables = data.get("rule", [])
    if not isinstance(tables, list):
        raise RulesError(f"{source}: 'rule' must be an array of tables ([[rule]]), got {tables!r}")
    rules: list[Rule] = []
    for index, table in enumerate(tables):
        where = f"{source}: rule[{index}]"
        if not isinstance(table, Mapping):
            raise RulesError(f"{where}: a rule must be a table, got {table!r}")
        for key in table:
            if key not in Rule.model_fields:
                hint = _did_you_mean(str(key), tuple(Rule.model_fields))
                raise RulesError(f"{where}: unknown key {key!r}{hint}")
        try:
            rule = Rule.model_validate(table)
        except ValidationError as exc:
            problems = "; ".join(_problem(error) for error in exc.errors())
            raise RulesError(f"{where}: {problems}") from exc
        rule._origin = f"{source} rule[{index}]"
        rules.append(rule)
    return rules


def parse_rules(text: str, source: str) -> list[Rule]:
    """Parse the text of a rules file.

    Raises:
        RulesError: the text is not valid TOML (the message names ``source`` and the line) or
            not a valid list of rules.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{source}: invalid TOML: {exc}") from exc
    return rules_from_data(data, source)


def load_rules(path: str | os.PathLike[str]) -> list[Rule]:
    """Read and parse a rules file.

    Raises:
        RulesError: the file cannot be read (the ``OSError`` is the cause) or is not valid.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"{path}: cannot read rules file: {exc}") from exc
    return parse_rules(text, str(path))


@functools.cache
def _builtin() -> tuple[Rule, ...]:
    text = resources.files(__package__).joinpath("default_rules.toml").read_text("utf-8")
    return tuple(parse_rules(text, "builtin"))


def builtin_rules() -> list[Rule]:
    """Return the built-in rules (``default_rules.toml``), parsed once and shared."""
    return list(_builtin())
