"""The rules loader: the TOML shape, its validation and the messages of its errors."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crashsight.diagnostics.rules import (
    MATCHERS,
    Rule,
    builtin_rules,
    load_rules,
    parse_rules,
    rules_from_data,
)
from crashsight.errors import RulesError

GOOD = """
[[rule]]
category = "toktx"
subcategory = "encode"
hint = "check the texture"
exception = "RuntimeError"
message = '^toktx exit \\d+'

[[rule]]
category = "disk"
errno = ["ENOSPC", 122]
signature = "python.*"
signals = "SIGKILL"
exit_codes = [1, 137]
timeout = "deadline"
oom_killed = false
oom_in_tree = false
pids_limited = false
stderr = "No space"
"""


def test_parse_rules_reads_every_matcher() -> None:
    """A valid file yields rules with single values widened to lists and errno names resolved."""
    first, second = parse_rules(GOOD, "shard.toml")
    assert (first.category, first.subcategory, first.hint) == (
        "toktx",
        "encode",
        "check the texture",
    )
    assert first.exception == ("RuntimeError",)
    assert first.matchers == ("exception", "message")
    assert second.errno == (errno.ENOSPC, 122)
    assert second.signals == ("SIGKILL",)
    assert second.exit_codes == (1, 137)
    assert second.oom_killed is False
    assert second.pids_limited is False
    assert second.oom_in_tree is False
    assert set(second.matchers) == set(MATCHERS) - {"exception", "message"}
    assert (first.origin, second.origin) == ("shard.toml rule[0]", "shard.toml rule[1]")


def test_load_rules_reads_a_file(tmp_path: Path) -> None:
    """load_rules names its rules after the path it was given."""
    path = tmp_path / "rules.toml"
    path.write_text(GOOD, encoding="utf-8")
    assert [rule.origin for rule in load_rules(path)] == [
        f"{path} rule[0]",
        f"{path} rule[1]",
    ]


def test_empty_file_has_no_rules() -> None:
    """A file without [[rule]] tables is valid and empty."""
    assert parse_rules("# nothing yet\n", "empty.toml") == []


def test_builtin_rules_are_valid_and_hinted() -> None:
    """The built-in table parses, names itself 'builtin' and gives every verdict a hint."""
    rules = builtin_rules()
    assert len(rules) >= 10
    assert rules[0].origin == "builtin rule[0]"
    assert all(rule.hint for rule in rules)


def _rule(body: str) -> str:
    return '[[rule]]\ncategory = "ok"\nexit_codes = [1]\n\n[[rule]]\ncategory = "x"\n' + body


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param(
            "mesage = 'x'\n", r"unknown key 'mesage' \(did you mean 'message'\?\)", id="unknown-key"
        ),
        pytest.param("message = '(unclosed'\n", r"message: bad regex '\(unclosed'", id="bad-regex"),
        pytest.param("stderr = '['\n", r"stderr: bad regex", id="bad-stderr-regex"),
        pytest.param(
            "signature = 'cuda.oomm'\n",
            r"signature: 'cuda\.oomm' matches no catalogue signature "
            r"\(did you mean 'cuda\.oom'\?\)",
            id="unknown-signature",
        ),
        pytest.param(
            "signature = 'zzz.*'\n",
            r"signature: 'zzz\.\*' matches no catalogue signature",
            id="empty-wildcard",
        ),
        pytest.param(
            "errno = 'ENOSPCC'\n",
            r"errno: unknown errno name 'ENOSPCC' \(did you mean 'ENOSPC'\?\)",
            id="unknown-errno",
        ),
        pytest.param(
            "signals = ['SIGKIL']\n",
            r"signals: unknown signal 'SIGKIL' \(did you mean 'SIGKILL'\?\)",
            id="unknown-signal",
        ),
        pytest.param(
            "exit_codes = '1'\n", r"exit_codes\.0: Input should be a valid int", id="type"
        ),
        pytest.param("oom_killed = 'yes'\n", r"oom_killed: .*valid boolean", id="strict-bool"),
        pytest.param("timeout = 'soon'\n", r"timeout: .*'deadline' or 'no_progress'", id="literal"),
        pytest.param("hint = 'x'\n", r"rule has no matchers", id="empty-rule"),
        pytest.param(
            "subcategory = '{exception}'\nsignals = ['SIGKILL']\n",
            r"subcategory: \{exception\} needs a exception or message matcher",
            id="template-without-source",
        ),
        pytest.param(
            "hint = '{signature.fields}'\nsignature = 'cuda.oom'\n",
            r"hint: unknown placeholder \{signature\.fields\}",
            id="unknown-placeholder",
        ),
        pytest.param(
            "hint = 'a {'\nsignature = 'cuda.oom'\n", r"hint: bad template", id="bad-template"
        ),
    ],
)
def test_invalid_rule_names_file_index_and_problem(body: str, problem: str) -> None:
    """Each malformed rule is a RulesError naming the file, the rule's index and the problem."""
    with pytest.raises(RulesError, match=rf"^my\.toml: rule\[1\]: {problem}"):
        parse_rules(_rule(body), "my.toml")


def test_invalid_toml_names_file_and_line() -> None:
    """Broken TOML is a RulesError naming the file and the line, with the parser error as cause."""
    with pytest.raises(RulesError, match=r"^bad\.toml: invalid TOML: .*line 3") as caught:
        parse_rules('[[rule]]\ncategory = "x"\nexit_codes = [1,,]\n', "bad.toml")
    assert caught.value.__cause__ is not None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(
            "[[rules]]\ncategory = 'x'\n",
            r"unknown top-level key 'rules' \(did you mean 'rule'\?\)",
            id="top-key",
        ),
        pytest.param("rule = 3\n", r"'rule' must be an array of tables", id="not-a-list"),
        pytest.param("rule = [3]\n", r"rule\[0\]: a rule must be a table", id="not-a-table"),
    ],
)
def test_invalid_document_shape_is_rejected(text: str, problem: str) -> None:
    """A document that is not a list of [[rule]] tables is a RulesError naming the file."""
    with pytest.raises(RulesError, match=rf"^f\.toml: {problem}"):
        parse_rules(text, "f.toml")


def test_unreadable_file_keeps_the_oserror_as_cause(tmp_path: Path) -> None:
    """A missing rules file is a RulesError naming it, caused by the FileNotFoundError."""
    missing = tmp_path / "missing.toml"
    with pytest.raises(RulesError, match=r"missing\.toml: cannot read rules file") as caught:
        load_rules(missing)
    assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_rule_origin_defaults_for_rules_built_in_code() -> None:
    """A Rule built directly (not from a file) still has a readable origin."""
    assert Rule(category="x", exit_codes=(1,)).origin == "rule"


_SCALARS = st.one_of(
    st.text(max_size=12),
    st.integers(-3, 300),
    st.booleans(),
    st.floats(allow_nan=False),
    st.sampled_from(["ENOSPC", "SIGKILL", "cuda.*", "deadline", "(", "{exception}", "x"]),
)
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
_KEYS = st.one_of(st.sampled_from([*Rule.model_fields, "mesage"]), st.text(max_size=8))
_TABLES = st.dictionaries(_KEYS, _VALUES, max_size=5)


@given(st.dictionaries(st.sampled_from(["rule", "rules"]), st.lists(_TABLES, max_size=3)))
def test_arbitrary_data_gives_rules_or_rules_error(data: dict[str, Any]) -> None:
    """Any TOML-like data yields valid rules or a RulesError, never another exception."""
    outcome: list[Rule] | RulesError
    try:
        outcome = rules_from_data(data, "fuzz.toml")
    except RulesError as exc:
        outcome = exc
    if isinstance(outcome, RulesError):
        assert str(outcome).startswith("fuzz.toml: ")
    else:
        assert all(rule.matchers for rule in outcome)


@given(st.text(max_size=80))
def test_arbitrary_text_gives_rules_or_rules_error(text: str) -> None:
    """Any text yields rules or a RulesError, never a TOML or validation exception."""
    outcome: list[Rule] | RulesError
    try:
        outcome = parse_rules(text, "fuzz.toml")
    except RulesError as exc:
        outcome = exc
    assert isinstance(outcome, list) or str(outcome).startswith("fuzz.toml: ")


@pytest.mark.parametrize(
    "template",
    ["{exception:d}", "{exception:>99999999999}", "{exception!r}", "{signature.hint:>9}"],
)
def test_placeholder_with_format_spec_is_rejected(template: str) -> None:
    """A format spec or conversion in a placeholder is refused when the file loads, not later."""
    text = f'[[rule]]\ncategory = "x"\nhint = "{template}"\nexception = "E"\nsignature = "cuda.*"\n'
    with pytest.raises(RulesError, match=r"rules\.toml: rule\[0\]: .*no format spec"):
        parse_rules(text, "rules.toml")


@pytest.mark.parametrize(
    ("matcher", "problem"),
    [
        pytest.param("exception = []", "empty list never matches", id="empty-exception"),
        pytest.param("signature = []", "empty list never matches", id="empty-signature"),
        pytest.param("errno = -5", "errno values are positive", id="negative-errno"),
        pytest.param("exit_codes = [1000]", "exit codes are 0 to 255", id="exit-code-range"),
    ],
)
def test_matchers_that_can_never_hold_are_rejected(matcher: str, problem: str) -> None:
    """A matcher that could never match is a mistake, reported with the file and rule index."""
    with pytest.raises(RulesError, match=rf"rules\.toml: rule\[0\]: .*{problem}"):
        parse_rules(f'[[rule]]\ncategory = "x"\n{matcher}\n', "rules.toml")
