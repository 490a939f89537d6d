"""The shipped examples stay valid as the code changes."""

from __future__ import annotations

from pathlib import Path

from crashsight.diagnostics.rules import load_rules

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_github_actions_rules_file_loads() -> None:
    """The example rules file is accepted by the same loader `crashsight run --rules` uses."""
    rules = load_rules(EXAMPLES / "github-actions" / "crashsight-rules.toml")
    assert [rule.category for rule in rules] == ["toktx", "http", "disk"]
