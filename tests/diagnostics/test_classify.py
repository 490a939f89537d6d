"""The classifier: precedence of root causes, matcher semantics and user rules."""

from __future__ import annotations

import errno

import pytest

from crashsight.diagnostics.catalogue import diagnose_line, signature_by_id
from crashsight.diagnostics.classify import Classifier, Facts, Verdict
from crashsight.diagnostics.models import Diagnostic
from crashsight.diagnostics.rules import parse_rules
from crashsight.protocol import ExceptionInfo

SHARD_RULES = r"""
[[rule]]
category = "toktx"
hint = "toktx failed; check the texture"
exception = "RuntimeError"
message = '^toktx exit \d+'

[[rule]]
category = "http"
exception = ["requests.exceptions.HTTPError", "requests.exceptions.Timeout", "TimeoutError"]

[[rule]]
category = "disk"
errno = "ENOSPC"
"""


def diag(signature_id: str, sample: int = 0) -> Diagnostic:
    """The diagnostic the collector would make of one of the entry's own samples."""
    signature = signature_by_id(signature_id)
    diagnostic = diagnose_line(signature, signature.samples[sample])
    assert diagnostic is not None
    return diagnostic


def exc(type_: str, message: str = "", *, module: str = "builtins", **kw: object) -> ExceptionInfo:
    """An ExceptionInfo as the runner would send it (pass mro_names for non-builtins)."""
    return ExceptionInfo.model_validate({"type": type_, "module": module, "message": message, **kw})


def classify(rules: str = "", **facts: object) -> Verdict:
    """Classify with optional user rules given as TOML text."""
    return Classifier(parse_rules(rules, "user.toml")).classify(Facts.model_validate(facts))


def kind(verdict: Verdict) -> tuple[str, str | None]:
    """The verdict's category and subcategory, the part these tests pin."""
    return verdict.category, verdict.subcategory


@pytest.mark.parametrize(
    "diagnostics",
    [
        pytest.param(["ring.socket_errno", "ring.abort"], id="errno-first"),
        pytest.param(["ring.abort", "ring.socket_errno"], id="abort-first"),
        pytest.param(["ring.peer_closed", "ring.socket_errno", "ring.peer_lost"], id="closed"),
    ],
)
def test_ring_socket_errno_outranks_the_abort_it_causes(diagnostics: list[str]) -> None:
    """Socket errno + ring abort + SIGABRT is comm/ring_socket, whatever the line order."""
    verdict = classify(diagnostics=[diag(d) for d in diagnostics], signal="SIGABRT")
    assert kind(verdict) == ("comm", "ring_socket")
    assert verdict.evidence == signature_by_id("ring.socket_errno").samples[0]
    assert verdict.rule.startswith("builtin rule[")


def test_ring_abort_alone_is_the_abort() -> None:
    """Without a socket errno, the abort itself is the best explanation."""
    verdict = classify(diagnostics=[diag("ring.abort")], signal="SIGABRT")
    assert kind(verdict) == ("comm", "ring_abort")


def test_gpu_fault_outranks_abort_and_communication() -> None:
    """CUDA OOM + a peer-lost ring error + SIGABRT is gpu/oom."""
    verdict = classify(diagnostics=[diag("ring.peer_lost"), diag("cuda.oom")], signal="SIGABRT")
    assert kind(verdict) == ("gpu", "oom")
    assert verdict.hint == signature_by_id("cuda.oom").hint


def test_heap_corruption_explains_the_sigabrt() -> None:
    """glibc's double-free report outranks the SIGABRT and faulthandler's 'Aborted'."""
    diagnostics = [diag("glibc.double_free", 1), diag("faulthandler.abort")]
    assert kind(classify(diagnostics=diagnostics, signal="SIGABRT")) == ("crash", "heap_corruption")


def test_evidence_only_never_decides_alone() -> None:
    """A C++ terminate line alone is not a verdict; SIGABRT then decides."""
    verdict = classify(diagnostics=[diag("cxx.terminate")], signal="SIGABRT")
    assert kind(verdict) == ("crash", "abort")
    assert verdict.evidence is None


def test_evidence_only_can_decide_with_another_matcher() -> None:
    """A user rule that pairs an evidence-only signature with a signal does match it."""
    rules = '[[rule]]\ncategory = "cpp"\nsignature = "cxx.*"\nsignals = ["SIGABRT"]\n'
    verdict = classify(rules, diagnostics=[diag("cxx.terminate")], signal="SIGABRT")
    assert (verdict.category, verdict.rule) == ("cpp", "user.toml rule[0]")
    assert verdict.evidence == signature_by_id("cxx.terminate").samples[0]


def test_wrapped_enospc_is_disk_full() -> None:
    """An OSError(ENOSPC) as the context of a RuntimeError is disk/enospc, with its evidence."""
    oserror = exc("OSError", "[Errno 28] disk full", errno=errno.ENOSPC)
    error = exc("RuntimeError", "could not save checkpoint", context=oserror)
    verdict = classify(termination_error=error, exit_code=1)
    assert kind(verdict) == ("disk", "enospc")
    assert verdict.evidence == "OSError: [Errno 28] disk full"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("EDQUOT", "quota"), ("EROFS", "readonly"), ("EIO", "io_error")],
)
def test_disk_errnos_map_to_disk_subcategories(name: str, expected: str) -> None:
    """EDQUOT, EROFS and EIO in the chain give their disk subcategory."""
    cause = exc("PermissionError", "denied", errno=getattr(errno, name))
    verdict = classify(termination_error=exc("ValueError", "x", cause=cause))
    assert kind(verdict) == ("disk", expected)


@pytest.mark.parametrize(
    ("oom_killed", "expected"),
    [
        (True, ("memory", "oom_killed")),
        (False, ("crash", "killed")),
        (None, ("crash", "killed")),
    ],
)
def test_sigkill_needs_oom_evidence(oom_killed: bool | None, expected: tuple[str, str]) -> None:
    """SIGKILL is memory/oom_killed only with OOM evidence; unknown evidence is crash/killed."""
    assert kind(classify(signal="SIGKILL", oom_killed=oom_killed)) == expected


def test_shell_exit_137_with_oom_evidence_is_oom_killed() -> None:
    """A shell's exit status 137 plus an OOM kill counts like SIGKILL."""
    assert kind(classify(exit_code=137, oom_killed=True)) == ("memory", "oom_killed")


@pytest.mark.parametrize("timeout", ["deadline", "no_progress"])
def test_watchdog_timeout_beats_everything(timeout: str) -> None:
    """A fired watchdog decides even over a GPU fault, an exception and an OOM kill."""
    verdict = classify(
        timeout=timeout,
        diagnostics=[diag("cuda.oom")],
        termination_error=exc("MemoryError"),
        signal="SIGKILL",
        oom_killed=True,
    )
    assert kind(verdict) == ("timeout", timeout)


@pytest.mark.parametrize(
    ("signal", "subcategory"),
    [
        ("SIGSEGV", "segfault"),
        ("SIGABRT", "abort"),
        ("SIGBUS", "bus_error"),
        ("SIGILL", "illegal_instruction"),
        ("SIGFPE", "fpe"),
    ],
)
def test_fatal_signals_map_to_crash(signal: str, subcategory: str) -> None:
    """Each fatal signal alone gives its crash subcategory, as does faulthandler's report."""
    assert kind(classify(signal=signal)) == ("crash", subcategory)
    report = diag(f"faulthandler.{subcategory}")
    assert kind(classify(diagnostics=[report], exit_code=1)) == ("crash", subcategory)


def test_user_rule_beats_builtin() -> None:
    """A user rule matching a CUDA OOM overrides the built-in gpu/oom verdict."""
    rules = '[[rule]]\ncategory = "capacity"\nsignature = "cuda.oom"\n'
    verdict = classify(rules, diagnostics=[diag("cuda.oom")])
    assert (verdict.category, verdict.rule) == ("capacity", "user.toml rule[0]")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(exc("RuntimeError", "toktx exit 3: bad texture"), "toktx", id="toktx"),
        pytest.param(
            exc(
                "HTTPError",
                "503 Server Error: Service Unavailable for url: https://x/y",
                module="requests.exceptions",
                mro_names=[
                    "requests.exceptions.HTTPError",
                    "requests.exceptions.RequestException",
                    "builtins.OSError",
                    "builtins.Exception",
                    "builtins.BaseException",
                    "builtins.object",
                ],
            ),
            "http",
            id="http-error",
        ),
        pytest.param(exc("TimeoutError", "timed out"), "http", id="timeout"),
        pytest.param(
            exc("RuntimeError", "save failed", cause=exc("OSError", "full", errno=errno.ENOSPC)),
            "disk",
            id="enospc",
        ),
        pytest.param(exc("RuntimeError", "toktx crashed"), "unknown", id="other"),
    ],
)
def test_shard_pipeline_rules(error: ExceptionInfo, expected: str) -> None:
    """A shard pipeline's own rules file sorts its failures; the rest falls to 'unknown'."""
    rules = SHARD_RULES + '\n[[rule]]\ncategory = "unknown"\nexception = "BaseException"\n'
    assert classify(rules, termination_error=error, exit_code=1).category == expected


def test_uncaught_exception_is_python_type() -> None:
    """An exception nothing explains is python/<bare type>, with 'Type: message' as evidence."""
    error = exc("JSONDecodeError", "Expecting value", module="json.decoder")
    verdict = classify(termination_error=error, exit_code=1)
    assert kind(verdict) == ("python", "JSONDecodeError")
    assert verdict.evidence == "JSONDecodeError: Expecting value"
    assert "JSONDecodeError" in str(verdict.hint)


def test_keyboard_interrupt_is_python_keyboardinterrupt() -> None:
    """KeyboardInterrupt (a BaseException, not an Exception) is python/KeyboardInterrupt."""
    verdict = classify(termination_error=exc("KeyboardInterrupt"), signal="SIGINT")
    assert kind(verdict) == ("python", "KeyboardInterrupt")


def test_memory_error_is_memory() -> None:
    """MemoryError, even a numpy subclass known only by its MRO, is memory/memory_error."""
    error = exc(
        "_ArrayMemoryError",
        "Unable to allocate 8.00 GiB",
        module="numpy.core._exceptions",
        mro_names=["numpy.core._exceptions._ArrayMemoryError", "builtins.MemoryError"],
    )
    assert kind(classify(termination_error=error)) == ("memory", "memory_error")


def test_error_only_on_the_channel_meets_the_signature_tiers() -> None:
    """A Metal timeout sent as a termination error, never printed, is still gpu/timeout."""
    message = signature_by_id("metal.gpu_timeout").samples[0]
    verdict = classify(termination_error=exc("RuntimeError", message), exit_code=1)
    assert kind(verdict) == ("gpu", "timeout")
    assert verdict.evidence == f"RuntimeError: {message}"


def test_httpx_timeout_is_matched_by_class() -> None:
    """httpx.ReadTimeout's message does not name httpx; its MRO makes it http/timeout."""
    error = exc(
        "ReadTimeout",
        "The read operation timed out",
        module="httpx",
        mro_names=["httpx.ReadTimeout", "httpx.TimeoutException", "builtins.BaseException"],
    )
    assert kind(classify(termination_error=error)) == ("http", "timeout")


def test_builtin_class_names_work_without_mro() -> None:
    """An exception parsed from stderr (no MRO) still matches its builtin base classes."""
    rules = '[[rule]]\ncategory = "files"\nexception = "builtins.OSError"\n'
    verdict = classify(rules, termination_error=exc("FileNotFoundError", "no such file"))
    assert verdict.category == "files"


def test_errno_rule_matches_a_diagnostic_field() -> None:
    """A user errno rule without other matchers matches a ring socket diagnostic's errno."""
    rules = '[[rule]]\ncategory = "network"\nsubcategory = "reset"\nerrno = "ECONNRESET"\n'
    verdict = classify(rules, diagnostics=[diag("ring.socket_errno")])
    assert kind(verdict) == ("network", "reset")


def test_errno_constrains_the_signature_it_is_paired_with() -> None:
    """errno next to signature filters that signature's diagnostics by their errno field."""
    rules = '[[rule]]\ncategory = "peer"\nsignature = "ring.*"\nerrno = "EPIPE"\n'
    diagnostics = [diag("ring.socket_errno", 0), diag("ring.socket_errno", 1)]
    verdict = classify(rules, diagnostics=diagnostics)
    assert verdict.category == "peer"
    assert verdict.evidence == signature_by_id("ring.socket_errno").samples[1]


def test_templates_take_names_from_the_match() -> None:
    """{exception} and {signature.*} placeholders are filled from what the rule matched."""
    rules = (
        '[[rule]]\ncategory = "app"\nsubcategory = "{exception}"\n'
        'hint = "wrapped {exception}"\nmessage = "wrapped"\n\n'
        '[[rule]]\ncategory = "seen-{signature.category}"\nsubcategory = "{signature.id}"\n'
        'signature = "nccl.*"\n'
    )
    verdict = classify(rules, termination_error=exc("a.b.Custom", "wrapped", module="m"))
    assert (verdict.subcategory, verdict.hint) == ("Custom", "wrapped Custom")
    verdict = classify(rules, diagnostics=[diag("nccl.result")])
    assert kind(verdict) == ("seen-comm", "nccl.result")


def test_stderr_rule_gives_the_line_as_evidence() -> None:
    """A stderr matcher matches any collected line and reports it as the evidence."""
    rules = '[[rule]]\ncategory = "license"\nstderr = "license server .* unreachable"\n'
    lines = ["starting", "error: license server lic01 unreachable", "bye"]
    verdict = classify(rules, stderr_lines=lines, exit_code=3)
    assert (verdict.category, verdict.evidence) == ("license", lines[1])


def test_nothing_known_is_unknown() -> None:
    """A bare non-zero exit with no other facts is 'unknown', with a hint and no evidence."""
    verdict = classify(exit_code=2, stderr_lines=["something odd"])
    assert (verdict.category, verdict.rule, verdict.evidence) == ("unknown", "none", None)
    assert verdict.hint


def test_shared_oom_evidence_never_explains_another_death_alone() -> None:
    """An OOM kill counted in a cgroup shared with others does not make a segfault an OOM kill;
    the runner's own cgroup counting one in its tree explains even a plain exit 1."""
    assert kind(classify(signal="SIGSEGV", oom_killed=True)) == ("crash", "segfault")
    assert kind(classify(exit_code=1, oom_killed=True)) != ("memory", "oom_killed")
    assert kind(classify(exit_code=1, oom_killed=True, oom_in_tree=True)) == (
        "memory",
        "oom_killed",
    )


def test_a_refused_fork_outranks_the_watchdog_that_ended_the_bomb() -> None:
    """Forks refused at the runner's pids limit explain a run a deadline then stopped."""
    verdict = classify(timeout="deadline", signal="SIGTERM", pids_limited=True)
    assert kind(verdict) == ("resource", "pids_max")
    assert kind(classify(timeout="deadline", signal="SIGTERM", pids_limited=False)) == (
        "timeout",
        "deadline",
    )
