"""Three matrix shards under GitHub Actions, then one aggregated issue: exact title and body."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crashsight.testing.httpd import local_http_server

RULES = """
[[rule]]
category = "toktx"
subcategory = "encode"
hint = "check the texture"
exception = "RuntimeError"
message = '^toktx exit \\d+'
"""

SHARD_SOURCE = """
import sys, urllib.request
from crashsight import runner

def main() -> None:
    kind = sys.argv[1]
    with runner.task("ktx2/Bricks090"):
        pass
    with runner.task("ktx2/Metal049A"):
        if kind == "toktx":
            raise RuntimeError("toktx exit 3: Metal049A_2K_Color.png has 16-bit channels")
        if kind == "http":
            urllib.request.urlopen(sys.argv[2], timeout=10)

main()
"""


@pytest.fixture
def mirror() -> Iterator[str]:
    """A local listener that answers every request with HTTP 503."""
    with local_http_server() as base:
        yield f"{base}/503/ambientcg/2k.zip"


def _run_shard(tmp_path: Path, shard: str, kind: str, url: str) -> tuple[int, Path, Path]:
    summary, output = tmp_path / f"{shard}.summary.md", tmp_path / f"{shard}.output"
    env = {
        **os.environ,
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(output),
    }
    result = subprocess.run(
        [
            sys.executable, "-m", "crashsight", "run",
            "--rules", str(tmp_path / "rules.toml"),
            "--report", str(tmp_path / f"{shard}.json"),
            "--context", f"shard={shard}",
            "--", sys.executable, str(tmp_path / "shard.py"), kind, url,
        ],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return result.returncode, summary, output


def _outputs(path: Path) -> dict[str, str]:
    """Parse $GITHUB_OUTPUT written with the heredoc delimiter syntax."""
    found = re.findall(r"^(\w+)<<(\S+)\n(.*?)\n\2$", path.read_text(), flags=re.M | re.S)
    return {name: value for name, _, value in found}


def test_two_failed_shards_and_one_good_aggregate_into_one_issue(
    tmp_path: Path, mirror: str
) -> None:
    """Each shard writes a step summary and outputs; `aggregate` titles and lists the failures."""
    (tmp_path / "rules.toml").write_text(RULES)
    (tmp_path / "shard.py").write_text(SHARD_SOURCE)
    codes = {}
    for shard, kind in (("shard-0", "toktx"), ("shard-1", "http"), ("shard-2", "ok")):
        codes[shard], summary, output = _run_shard(tmp_path, shard, kind, mirror)
        outputs = _outputs(output)
        if kind == "ok":
            assert outputs["error_class"] == ""
            assert outputs["failed_tasks"] == "0"
            continue
        assert outputs["error_class"] == kind
        assert outputs["failed_tasks"] == "1"
        text = summary.read_text()
        assert "**Failed tasks (1)**" in text
        assert "<details><summary>stderr tail</summary>" in text
    assert codes == {"shard-0": 1, "shard-1": 1, "shard-2": 0}
    assert _outputs(tmp_path / "shard-1.output")["error_subcategory"] == "server_error"

    result = subprocess.run(
        [
            sys.executable, "-m", "crashsight", "aggregate",
            *(str(tmp_path / f"shard-{i}.json") for i in range(3)),
            "--title-prefix", "[derive-failed] ktx2 ambientcg/2k",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    title, blank, *body = result.stdout.replace(mirror, "URL").splitlines()
    assert title == "[derive-failed] ktx2 ambientcg/2k (toktx+http, 2 shards)"
    assert blank == ""
    assert body == [
        "2 of 3 shards failed.",
        "",
        "| shard | verdict | summary |",
        "| --- | --- | --- |",
        "| shard-0 | toktx/encode | toktx/encode: RuntimeError: toktx exit 3: Metal049A_2K_Color.png has 16-bit channels |",
        "| shard-1 | http/server_error | http/server_error: urllib.error.HTTPError: HTTP Error 503: Service Unavailable |",
        "| shard-2 | succeeded | succeeded: exited with code 0 |",
        "",
        "**Failed tasks (2)**",
        "",
        "- ktx2/Metal049A: RuntimeError: toktx exit 3: Metal049A_2K_Color.png has 16-bit channels",
        "- ktx2/Metal049A: HTTPError: HTTP Error 503: Service Unavailable",
    ]


def test_aggregate_survives_foreign_and_broken_reports(tmp_path: Path) -> None:
    """A newer report with unknown fields is read; broken files are named, not a traceback."""
    newer = tmp_path / "newer.json"
    newer.write_text(
        '{"schema_version": 9, "name": "x", "status": "failed", "category": "disk",'
        ' "summary": "disk/enospc: full", "future_field": {"a": 1}}'
    )
    (tmp_path / "garbage.json").write_bytes(b"\x00\xff not json")
    (tmp_path / "other.json").write_text('{"hello": "world"}')
    result = subprocess.run(
        [
            sys.executable, "-m", "crashsight", "aggregate",
            str(newer), str(tmp_path / "garbage.json"), str(tmp_path / "other.json"),
            str(tmp_path / "missing.json"),
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == "crashsight (disk, 1 shard)"
    assert "Traceback" not in result.stderr
    for name, reason in (
        ("garbage.json", "not JSON"),
        ("other.json", "no 'status' field"),
        ("missing.json", "cannot read it"),
    ):
        assert re.search(rf"skipping \S*{name}: .*{reason}", result.stderr), result.stderr


def test_aggregate_of_hundreds_of_shards_fits_an_issue_body(tmp_path: Path) -> None:
    """600 failed shards with long summaries still make a body GitHub accepts (< 65,536 chars)."""
    paths = []
    for i in range(600):
        path = tmp_path / f"shard-{i}.json"
        path.write_text(
            json.dumps(
                {
                    "name": f"shard {i}",
                    "status": "failed",
                    "category": "http",
                    "subcategory": "client_error",
                    "summary": "http/client_error: " + "x" * 900,
                    "tasks": {"failed": [{"task_id": f"t{i}", "error": "y" * 500}]},
                }
            )
        )
        paths.append(str(path))
    result = subprocess.run(
        [sys.executable, "-m", "crashsight", "aggregate", *paths],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    title, _, body = result.stdout.partition("\n\n")
    assert title == "crashsight (http, 600 shards)"
    assert len(body) < 65_536
    assert "… 550 more shards | http/client_error x550" in body
