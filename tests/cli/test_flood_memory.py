"""crashsight's own memory stays small while a worker floods its stderr.

The worker writes 200 MB of realistic noise (log records, warnings, ``\\r``-redrawn progress bars,
one 5 MB line without a newline) and then a CUDA OOM traceback. ``crashsight run`` must still say
``gpu/oom`` and must not hold the flood: its own peak RSS stays under 100 MiB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

WORKERS = Path(__file__).resolve().parent.parent / "verdict_workers.py"
FLOOD_MB = 200
MAX_RSS_MIB = 100

# Runs `crashsight run` in this very process, then writes this process's peak RSS: VmHWM of its own
# memory map. Not ru_maxrss: Linux carries the peak of the pre-exec memory map (the forking pytest,
# well over 100 MiB with the whole suite imported) into the exec'd process's ru_maxrss. And not
# RUSAGE_CHILDREN, which would count the noisy worker.
DRIVER = """\
import os, sys
from crashsight.cli.main import main
try:
    main(sys.argv[1:])
finally:
    with open("/proc/self/status") as status, open(os.environ["RSS_OUT"], "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
"""


def test_stderr_flood_keeps_crashsight_small_and_the_verdict_right(tmp_path: Path) -> None:
    """After 200 MB of stderr noise the report says gpu/oom and crashsight peaked under 100 MiB."""
    report = tmp_path / "r.json"
    rss_out = tmp_path / "rss-kib"
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, "run", "--report", str(report), "--",
         sys.executable, str(WORKERS), "flood", str(FLOOD_MB)],
        env={**os.environ, "RSS_OUT": str(rss_out)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # the pass-through of the flood; the report is what we read
        timeout=55,
        check=False,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    data = json.loads(report.read_text())
    assert (data["category"], data["subcategory"]) == ("gpu", "oom"), data["summary"]
    assert [d["id"] for d in data["diagnostics"]] == ["cuda.oom"]
    error = data["termination_error"]
    assert (error["module"], error["type"], error["source"]) == (
        "torch",
        "OutOfMemoryError",
        "stderr",
    )
    peak_mib = int(rss_out.read_text()) / 1024  # VmHWM is in kB
    assert peak_mib < MAX_RSS_MIB, f"crashsight peaked at {peak_mib:.0f} MiB"
