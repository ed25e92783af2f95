"""The benchmark in `bench/` keeps working: a tiny run of every scenario.

Speed is not judged here (bench/RESULTS.md records it, from full runs on a
quiet machine); this only checks that the runner sets up a real server on the
run's backend, drives scenarios (a) to (d) through onion requests, gets no
error, and reports a JSON line for each.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from serverprocess import REPO_ROOT, Backend

SCENARIOS = ["a_poll_1_room", "b_poll_10_rooms", "c_post", "d_mix_95_5"]


def test_every_scenario_of_the_benchmark_runs_without_errors(
    tmp_path: Path, backend: Backend
) -> None:
    out = tmp_path / "bench.jsonl"
    command = [sys.executable, "-m", "bench.run", "--scenarios", "a,b,c,d", "--no-ceilings"]
    command += ["--duration", "1", "--warmup", "0.5", "--users", "4", "--messages", "50"]
    command += ["--concurrency", "4", "--workers", "1", "--json-out", str(out)]
    command += ["--backend", backend.name]
    if backend.name == "postgresql":
        command += ["--database-url", backend.admin_url]
    run = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)

    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["scenario"] for row in rows] == SCENARIOS
    for row in rows:
        assert row["backend"] == backend.name and row["messages"] == 50, row
        assert row["errors"] == {} and row["requests"] > 0 and row["rps"] > 0, row
        assert row["p50_ms"] <= row["p99_ms"], row
        assert row["server_rss_mb_max_worker"] > 0, row
    polls = {row["scenario"]: row["polls"] for row in rows}
    posts = {row["scenario"]: row["posts"] for row in rows}
    assert polls["a_poll_1_room"] > 0 and posts["a_poll_1_room"] == 0
    assert posts["c_post"] > 0 and polls["c_post"] == 0
    assert polls["d_mix_95_5"] > 0
