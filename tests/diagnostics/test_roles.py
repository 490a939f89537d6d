"""Roles are data: the rules and the catalogue say which verdicts are causes, consequences or
collateral, a user's rules file can override them, and comm texts are never taken for HTTP."""

from __future__ import annotations

import pytest

from crashsight.diagnostics.catalogue import CATALOGUE, diagnose_line, signature_by_id
from crashsight.diagnostics.classify import Classifier, Facts
from crashsight.diagnostics.jobverdict import peers_named
from crashsight.diagnostics.rules import parse_rules
from crashsight.errors import RulesError
from crashsight.protocol import ExceptionInfo

GLOO_RESET = signature_by_id("gloo.io_error").samples[0]


def torch_failure(type_: str, message: str) -> Facts:
    """Exit 1 with a torch.distributed exception, as the channel delivers it (with its MRO)."""
    mro = [f"torch.distributed.{type_}", "builtins.RuntimeError", "builtins.BaseException"]
    error = ExceptionInfo(type=type_, module="torch.distributed", message=message, mro_names=mro)
    return Facts(exit_code=1, termination_error=error)


def test_every_comm_entry_is_a_consequence_and_own_faults_are_root_causes() -> None:
    """The comm family is where a peer's failure shows; a worker's own faults are root causes."""
    own_faults = {"gpu", "memory", "disk", "resource", "crash", "http", "config"}
    for signature in CATALOGUE:
        if signature.category == "comm":
            assert signature.role == "consequence", signature.id
        elif signature.category in own_faults:
            assert signature.role == "root_cause", signature.id


@pytest.mark.parametrize(
    ("facts", "verdict"),
    [
        pytest.param(
            Facts(signal="SIGSEGV"), ("crash", "segfault", "root_cause"), id="own-segfault"
        ),
        pytest.param(
            Facts(signal="SIGTERM"), ("crash", "terminated", "collateral"), id="launcher-sigterm"
        ),
        pytest.param(Facts(exit_code=143), ("crash", "terminated", "collateral"), id="shell-143"),
        pytest.param(
            Facts(signal="SIGKILL", oom_killed=False),
            ("crash", "killed", "collateral"),
            id="sigkill",
        ),
        pytest.param(
            Facts(signal="SIGKILL", oom_killed=True),
            ("memory", "oom_killed", "root_cause"),
            id="oom-kill",
        ),
        pytest.param(
            Facts(signal="SIGTERM", timeout="no_progress"),
            ("timeout", "no_progress", "root_cause"),
            id="own-watchdog",
        ),
        pytest.param(
            torch_failure("DistBackendError", "[PG 0 Rank 1] something new broke"),
            ("comm", "backend", "consequence"),
            id="dist-backend-error",
        ),
        pytest.param(
            torch_failure(
                "DistStoreError",
                "Timed out after 31 seconds waiting for clients. 2/3 clients joined.",
            ),
            ("comm", "tcpstore", "consequence"),
            id="dist-store-error",
        ),
    ],
)
def test_built_in_rules_give_each_verdict_its_role(
    facts: Facts, verdict: tuple[str, str, str]
) -> None:
    """A launcher's signal is collateral, a comm exception a consequence, a crash a root cause."""
    result = Classifier().classify(facts)
    assert (result.category, result.subcategory, result.role) == verdict


def test_a_gloo_connection_reset_is_comm_not_http() -> None:
    """gloo's 'Read error [...]: Connection reset by peer' is a peer's death, not an HTTP error."""
    diagnostics = [d for s in CATALOGUE if (d := diagnose_line(s, GLOO_RESET)) is not None]
    assert [d.id for d in diagnostics] == ["gloo.io_error"]
    verdict = Classifier().classify(Facts(diagnostics=diagnostics, exit_code=1))
    assert (verdict.category, verdict.subcategory, verdict.role) == ("comm", "gloo", "consequence")
    assert peers_named(diagnostics) == ["[127.0.0.1]:6307"]


def test_peers_are_read_from_an_exception_that_never_reached_stderr() -> None:
    """The channel's exception message names the peer just as a stderr line would."""
    error = ExceptionInfo(
        type="RuntimeError", module="builtins", message="Connection closed by peer [10.0.0.7]:4100"
    )
    assert peers_named([], [error]) == ["[10.0.0.7]:4100"]


def test_a_user_rule_overrides_a_role() -> None:
    """A team that knows its gloo resets are its own bug can make them root causes."""
    rules = parse_rules(
        '[[rule]]\ncategory = "comm"\nsubcategory = "{signature.subcategory}"\n'
        'role = "root_cause"\nsignature = "gloo.*"\n',
        "mine.toml",
    )
    diagnostic = diagnose_line(signature_by_id("gloo.io_error"), GLOO_RESET)
    assert diagnostic is not None
    verdict = Classifier(rules).classify(Facts(diagnostics=[diagnostic]))
    assert (verdict.role, verdict.rule) == ("root_cause", "mine.toml rule[0]")


def test_a_rule_without_role_takes_its_signatures_role() -> None:
    """Without ``role``, a signature rule means what its catalogue entry means."""
    rules = parse_rules('[[rule]]\ncategory = "net"\nsignature = "gloo.*"\n', "mine.toml")
    diagnostic = diagnose_line(
        signature_by_id("gloo.timeout"), "Timed out waiting 9ms for recv operation to complete"
    )
    assert diagnostic is not None
    assert Classifier(rules).classify(Facts(diagnostics=[diagnostic])).role == "consequence"


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ('role = "victim"\nsignals = ["SIGTERM"]', r"role: 'victim' is not one of root_cause, "),
        ('role = "{signature.role}"\nsignals = ["SIGTERM"]', r"needs a signature matcher"),
    ],
)
def test_a_bad_role_is_a_clear_error(rule: str, problem: str) -> None:
    """An unknown role, or a signature's role without a signature, is refused with the reason."""
    with pytest.raises(RulesError, match=problem):
        parse_rules(f'[[rule]]\ncategory = "x"\n{rule}\n', "mine.toml")


def test_an_nccl_watchdog_abort_is_a_consequence_not_a_cxx_crash() -> None:
    """The watchdog's DistBackendError ends the process through std::terminate and SIGABRT; the
    verdict is the comm timeout a peer caused (lines from huggingface/open-r1 issue 620)."""
    lines = [
        "terminate called after throwing an instance of 'c10::DistBackendError'",
        "  what():  [PG ID 0 PG GUID 0(default_pg) Rank 3] Process group watchdog thread "
        "terminated with exception: [Rank 3] Watchdog caught collective operation timeout: "
        "WorkNCCL(SeqNum=4, OpType=BROADCAST, NumelIn=112, NumelOut=112, Timeout(ms)=1800000) "
        "ran for 1800011 milliseconds before timing out.",
    ]
    diagnostics = [d for line in lines for s in CATALOGUE if (d := diagnose_line(s, line))]
    verdict = Classifier().classify(Facts(diagnostics=diagnostics, signal="SIGABRT"))
    assert (verdict.category, verdict.subcategory, verdict.role) == (
        "comm", "nccl_timeout", "consequence",
    )  # fmt: skip
