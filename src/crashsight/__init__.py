"""crashsight: supervise worker processes and say, in one line, why a worker died.

The public API, re-exported from the modules that define it. Code running *inside* a worker uses
`crashsight.runner` (``emit``, ``heartbeat``, ``progress``, ``task``).

Why the re-exports are lazy: every worker imports ``crashsight.runner``, and Python imports this
package first. Eager re-exports would load anyio, psutil, the signature catalogue and the supervisor
into every worker (about 165 ms measured, against a budget of 30 ms), so each name is imported on
first use instead. Type checkers read the explicit imports under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import sys

#: Not ``typing.TYPE_CHECKING``: every Python process of a runner's tree imports this package for
#: its stack dumps, and importing typing would cost each of them more than the dumps do.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .diagnostics.catalogue import CATALOGUE as CATALOGUE
    from .diagnostics.classify import Classifier as Classifier
    from .diagnostics.classify import Facts as Facts
    from .diagnostics.classify import Verdict as Verdict
    from .diagnostics.collector import StderrCollector as StderrCollector
    from .diagnostics.hangs import BlockedIn as BlockedIn
    from .diagnostics.hangs import ProcessInfo as ProcessInfo
    from .diagnostics.hangs import ThreadStack as ThreadStack
    from .diagnostics.jobverdict import JobVerdict as JobVerdict
    from .diagnostics.jobverdict import RankOutcome as RankOutcome
    from .diagnostics.jobverdict import RootCause as RootCause
    from .diagnostics.jobverdict import decide_root_cause as decide_root_cause
    from .diagnostics.models import Diagnostic as Diagnostic
    from .diagnostics.models import Signature as Signature
    from .diagnostics.rules import Rule as Rule
    from .diagnostics.rules import load_rules as load_rules
    from .diagnostics.tracebacks import parse_traceback as parse_traceback
    from .errors import ChannelBrokenError as ChannelBrokenError
    from .errors import ChannelClosedError as ChannelClosedError
    from .errors import ChannelError as ChannelError
    from .errors import ConfigurationError as ConfigurationError
    from .errors import CrashsightError as CrashsightError
    from .errors import FrameTooLargeError as FrameTooLargeError
    from .errors import ProtocolError as ProtocolError
    from .errors import RulesError as RulesError
    from .errors import RunnerStateError as RunnerStateError
    from .errors import SpawnError as SpawnError
    from .protocol import ExceptionInfo as ExceptionInfo
    from .protocol import FrameInfo as FrameInfo
    from .protocol import Heartbeat as Heartbeat
    from .protocol import Progress as Progress
    from .protocol import Ready as Ready
    from .protocol import RunnerTerminationError as RunnerTerminationError
    from .protocol import TaskFinished as TaskFinished
    from .protocol import TaskStarted as TaskStarted
    from .protocol import UserEvent as UserEvent
    from .redact import Redactor as Redactor
    from .report.model import Report as Report
    from .report.write import write_report as write_report
    from .supervisor.group import GroupOutcome as GroupOutcome
    from .supervisor.group import GroupRank as GroupRank
    from .supervisor.group import RunnerGroup as RunnerGroup
    from .supervisor.restart import RestartPolicy as RestartPolicy
    from .supervisor.runner import Runner as Runner
    from .supervisor.snapshot import StackOptions as StackOptions
    from .supervisor.status import Containment as Containment
    from .supervisor.status import ErrorChunk as ErrorChunk
    from .supervisor.status import ExitInfo as ExitInfo
    from .supervisor.status import RunnerCancelled as RunnerCancelled
    from .supervisor.status import RunnerFailed as RunnerFailed
    from .supervisor.status import RunnerStatus as RunnerStatus
    from .supervisor.status import RunnerSucceeded as RunnerSucceeded
    from .supervisor.stop import StopPolicy as StopPolicy
    from .supervisor.supervisor import SpawnOptions as SpawnOptions
    from .supervisor.supervisor import Supervisor as Supervisor


#: Public name -> module that defines it.
_EXPORTS: dict[str, str] = {
    "CATALOGUE": "crashsight.diagnostics.catalogue",
    "Classifier": "crashsight.diagnostics.classify",
    "Facts": "crashsight.diagnostics.classify",
    "Verdict": "crashsight.diagnostics.classify",
    "StderrCollector": "crashsight.diagnostics.collector",
    "JobVerdict": "crashsight.diagnostics.jobverdict",
    "RankOutcome": "crashsight.diagnostics.jobverdict",
    "RootCause": "crashsight.diagnostics.jobverdict",
    "decide_root_cause": "crashsight.diagnostics.jobverdict",
    "BlockedIn": "crashsight.diagnostics.hangs",
    "ProcessInfo": "crashsight.diagnostics.hangs",
    "ThreadStack": "crashsight.diagnostics.hangs",
    "Diagnostic": "crashsight.diagnostics.models",
    "Signature": "crashsight.diagnostics.models",
    "Rule": "crashsight.diagnostics.rules",
    "load_rules": "crashsight.diagnostics.rules",
    "parse_traceback": "crashsight.diagnostics.tracebacks",
    "ChannelBrokenError": "crashsight.errors",
    "ChannelClosedError": "crashsight.errors",
    "ChannelError": "crashsight.errors",
    "ConfigurationError": "crashsight.errors",
    "CrashsightError": "crashsight.errors",
    "FrameTooLargeError": "crashsight.errors",
    "ProtocolError": "crashsight.errors",
    "RulesError": "crashsight.errors",
    "RunnerStateError": "crashsight.errors",
    "SpawnError": "crashsight.errors",
    "ExceptionInfo": "crashsight.protocol",
    "FrameInfo": "crashsight.protocol",
    "Heartbeat": "crashsight.protocol",
    "Progress": "crashsight.protocol",
    "Ready": "crashsight.protocol",
    "RunnerTerminationError": "crashsight.protocol",
    "TaskFinished": "crashsight.protocol",
    "TaskStarted": "crashsight.protocol",
    "UserEvent": "crashsight.protocol",
    "Report": "crashsight.report.model",
    "Redactor": "crashsight.redact",
    "write_report": "crashsight.report.write",
    "GroupOutcome": "crashsight.supervisor.group",
    "GroupRank": "crashsight.supervisor.group",
    "RunnerGroup": "crashsight.supervisor.group",
    "RestartPolicy": "crashsight.supervisor.restart",
    "Runner": "crashsight.supervisor.runner",
    "StackOptions": "crashsight.supervisor.snapshot",
    "Containment": "crashsight.supervisor.status",
    "ErrorChunk": "crashsight.supervisor.status",
    "ExitInfo": "crashsight.supervisor.status",
    "RunnerCancelled": "crashsight.supervisor.status",
    "RunnerFailed": "crashsight.supervisor.status",
    "RunnerStatus": "crashsight.supervisor.status",
    "RunnerSucceeded": "crashsight.supervisor.status",
    "StopPolicy": "crashsight.supervisor.stop",
    "SpawnOptions": "crashsight.supervisor.supervisor",
    "Supervisor": "crashsight.supervisor.supervisor",
}

__all__ = (
    "CATALOGUE",
    "BlockedIn",
    "ChannelBrokenError",
    "ChannelClosedError",
    "ChannelError",
    "Classifier",
    "ConfigurationError",
    "Containment",
    "CrashsightError",
    "Diagnostic",
    "ErrorChunk",
    "ExceptionInfo",
    "ExitInfo",
    "Facts",
    "FrameInfo",
    "FrameTooLargeError",
    "GroupOutcome",
    "GroupRank",
    "Heartbeat",
    "JobVerdict",
    "ProcessInfo",
    "Progress",
    "ProtocolError",
    "RankOutcome",
    "Ready",
    "Redactor",
    "Report",
    "RestartPolicy",
    "RootCause",
    "Rule",
    "RulesError",
    "Runner",
    "RunnerCancelled",
    "RunnerFailed",
    "RunnerGroup",
    "RunnerStateError",
    "RunnerStatus",
    "RunnerSucceeded",
    "RunnerTerminationError",
    "Signature",
    "SpawnError",
    "SpawnOptions",
    "StackOptions",
    "StderrCollector",
    "StopPolicy",
    "Supervisor",
    "TaskFinished",
    "TaskStarted",
    "ThreadStack",
    "UserEvent",
    "Verdict",
    "decide_root_cause",
    "load_rules",
    "parse_traceback",
    "write_report",
)


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'crashsight' has no attribute {name!r}")
    __import__(module)  # importlib.import_module would load importlib and warnings in every worker
    value = getattr(sys.modules[module], name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
