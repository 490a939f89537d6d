"""Finding a job's files, refusing anything outside the configured folders, and reading them.

Layout (both folders are given to `crashsight_app`)::

    reports/<job_id>.json      the job's `crashsight run --report` file: the job has ended
    reports/<job_id>.running   an empty marker the training server creates when the job starts
                               and deletes when it ends: the job is running
    logs/<job_id>.log          the job's log, analysed like `crashsight analyze` when there is no
                               report

A report always wins: a marker left behind by a crashed server does not hide a verdict. Without a
report, a marker means running, whatever the log says so far. A log that is merely recent does not
mean running: a job that died a second ago has a fresh log too, and calling it running would hide
exactly the failure the UI asks about.

Every job id must match `JOB_ID` (no separators, no leading dot, no NUL), and every file is
resolved, symlinks included, and must lie inside its folder, so no request reads anything else.
Problems are raised as Starlette `HTTPException`\\s with the status the app answers with (see
`crashsight.server.app` for why each status).

Log analyses are cached by (file, size, mtime): a UI polling a failed job's 2 GiB log parses it
once. Reading and analysing are blocking; the app runs them in worker threads, so this module is
thread-safe and never touches the event loop.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError
from starlette.exceptions import HTTPException

from ..diagnostics.analysis import analyze_file
from ..diagnostics.analysis_model import AnalyzeResult
from ..diagnostics.rules import Rule
from ..errors import ConfigurationError
from ..redact import Redactor
from ..report.model import Report
from .bounds import Limits

__all__ = ["JOB_ID", "JobFiles", "JobStore"]

#: A job id: a letter or digit, then up to 127 letters, digits, dots, underscores or dashes.
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
REPORT_SUFFIX, RUNNING_SUFFIX, LOG_SUFFIX = ".json", ".running", ".log"
_MAX_REPORT_BYTES = 64 << 20  # a report holds a bounded stderr tail; more is not a report


@dataclass(frozen=True)
class JobFiles:
    """Where one job's files are, each resolved and inside its folder; None when absent."""

    job_id: str
    report: Path | None
    log: Path | None
    running: bool
    updated_at: str


class JobStore:
    """The jobs under a reports folder and a logs folder.

    Args:
        reports: Folder of ``<job_id>.json`` reports and ``<job_id>.running`` markers.
        logs: Folder of ``<job_id>.log`` logs, or None when jobs leave reports only.
        limits: Row and cache limits.
        rules: Classification rules tried before the built-in ones when analysing a log.
        redactor: Applied to every analysis.

    Raises:
        ConfigurationError: A folder does not exist or is not a directory.
    """

    def __init__(
        self,
        reports: str | os.PathLike[str],
        logs: str | os.PathLike[str] | None,
        *,
        limits: Limits,
        rules: Sequence[Rule],
        redactor: Redactor,
    ) -> None:
        self.reports = _folder(reports, "reports")
        self.logs = _folder(logs, "logs") if logs is not None else None
        self.limits = limits
        self._rules = tuple(rules)
        self._redactor = redactor
        self._cache: OrderedDict[tuple[Path, int, int], AnalyzeResult] = OrderedDict()
        self._lock = threading.Lock()  # guards the cache and the per-file locks
        self._file_locks: dict[Path, threading.Lock] = {}

    def locate(self, job_id: str) -> JobFiles:
        """The job's files.

        Raises:
            HTTPException: 400 for an invalid id, 403 for a file that resolves outside its
                folder, 404 when the job has no file at all.
        """
        if not JOB_ID.fullmatch(job_id):
            raise HTTPException(
                400, f"job ids match {JOB_ID.pattern}: no separators, dots first or NUL"
            )
        report = self._inside(self.reports, job_id + REPORT_SUFFIX)
        running = self._inside(self.reports, job_id + RUNNING_SUFFIX)
        log = self._inside(self.logs, job_id + LOG_SUFFIX) if self.logs else None
        found = [path for path in (report, running, log) if path is not None]
        if not found:
            raise HTTPException(404, f"no job {job_id!r}: no report, running marker or log")
        newest = max(path.stat().st_mtime for path in found)
        return JobFiles(
            job_id=job_id,
            report=report,
            log=log,
            running=running is not None,
            updated_at=datetime.fromtimestamp(newest, UTC).isoformat(timespec="seconds"),
        )

    def job_ids(self) -> list[str]:
        """Ids of every job with a file in either folder, most recently changed first."""
        newest: dict[str, float] = {}
        folders: list[tuple[Path, tuple[str, ...]]] = [
            (self.reports, (REPORT_SUFFIX, RUNNING_SUFFIX))
        ]
        if self.logs is not None:
            folders.append((self.logs, (LOG_SUFFIX,)))
        for folder, suffixes in folders:
            with os.scandir(folder) as entries:
                for entry in entries:
                    stem, suffix = os.path.splitext(entry.name)
                    if suffix in suffixes and JOB_ID.fullmatch(stem):
                        mtime = entry.stat(follow_symlinks=False).st_mtime
                        newest[stem] = max(mtime, newest.get(stem, mtime))
        return sorted(newest, key=lambda job_id: (-newest[job_id], job_id))

    def read_report(self, path: Path) -> Report:
        """The report at ``path``, validated.

        Raises:
            HTTPException: 422 when it is not a crashsight report, 500 when it cannot be read.
        """
        try:
            if path.stat().st_size > _MAX_REPORT_BYTES:
                raise HTTPException(422, f"{path.name} is over {_MAX_REPORT_BYTES >> 20} MiB")
            return Report.model_validate_json(path.read_bytes())
        except OSError as exc:
            raise HTTPException(500, f"cannot read {path.name}: {exc.strerror or exc}") from exc
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "document"
            raise HTTPException(
                422, f"{path.name} is not a crashsight report: {where}: {first['msg']}"
            ) from exc

    def analyse_log(self, path: Path) -> AnalyzeResult:
        """The analysis of the log at ``path``, from the cache while its size and mtime hold.

        Raises:
            HTTPException: 404 when the log vanished, 422 for a binary file, 500 when it
                cannot be read.
        """
        with self._lock:
            file_lock = self._file_locks.setdefault(path, threading.Lock())
        with file_lock:  # concurrent requests for one log wait for one analysis
            try:
                stat = path.stat()
            except FileNotFoundError as exc:
                raise HTTPException(404, f"{path.name} was removed") from exc
            except OSError as exc:
                raise HTTPException(500, f"cannot read {path.name}: {exc.strerror}") from exc
            key = (path, stat.st_size, stat.st_mtime_ns)
            with self._lock:
                result = self._cache.get(key)
                if result is not None:
                    self._cache.move_to_end(key)
            if result is None:
                result = self._analyse(path)
                self._store(key, result)
        problem = {"missing": 404, "binary": 422, "unreadable": 500}.get(result.status)
        if problem is not None:
            raise HTTPException(problem, result.message)
        return result

    def _analyse(self, path: Path) -> AnalyzeResult:
        """Run the analyzer, naming the file relative to its folder so no server path leaks."""
        result = analyze_file(
            path, rules=self._rules, max_errors=self.limits.max_errors, redactor=self._redactor
        )
        full, shown = str(path), path.name
        return result.model_copy(
            update={
                "file": shown,
                "message": result.message.replace(full, shown),
                "notes": [note.replace(full, shown) for note in result.notes],
            }
        )

    def _store(self, key: tuple[Path, int, int], result: AnalyzeResult) -> None:
        with self._lock:
            for stale in [k for k in self._cache if k[0] == key[0]]:
                del self._cache[stale]  # an older version of the same log
            self._cache[key] = result
            while len(self._cache) > self.limits.cache_entries:
                self._cache.popitem(last=False)

    @staticmethod
    def _inside(folder: Path, name: str) -> Path | None:
        """``folder/name`` resolved, or None when absent; 403 when it resolves elsewhere."""
        path = folder / name
        if not os.path.lexists(path):
            return None
        resolved = path.resolve()
        if not resolved.is_relative_to(folder):
            raise HTTPException(403, f"{name} resolves outside its configured folder")
        return resolved if resolved.is_file() else None


def _folder(path: str | os.PathLike[str], role: str) -> Path:
    folder = Path(path).resolve()
    if not folder.is_dir():
        raise ConfigurationError(
            f"the {role} folder {os.fspath(path)!r} does not exist or is not a directory; "
            "create it before starting the server"
        )
    return folder
