"""The benchmark in `bench/` keeps working: a tiny run of every scenario.

Speed is not judged here (bench/RESULTS.md records it, from full runs on a
quiet machine); this only checks that the runner sets up a real server on the
run's backend, drives every scenario, gets no error, and reports a JSON line
for each: (a) to (d) through v2 onion requests, (e) to (i) through onion v4
with blinded users, the three reference apps, and the open-loop run of (e)
and of the v4 ceiling at the same rate.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from harness.server import REPO_ROOT, Backend

SCENARIOS = ["a_poll_1_room", "b_poll_10_rooms", "c_post", "d_mix_95_5"]
COMMUNITY_SCENARIOS = [
    "e_batch_1_room",
    "f_batch_10_rooms",
    "g_post_blinded",
    "h_mix_95_5",
    "i_mix_90_5_5",
]
CEILINGS = ["framework_ceiling", "onion_ceiling", "onion_v4_ceiling"]
OPEN_LOOP = ["e_batch_1_room_open_loop", "onion_v4_ceiling_open_loop"]


def run_bench(tmp_path: Path, backend: Backend, *options: str) -> list[dict[str, Any]]:
    """Run `python -m bench.run` tiny on the suite's backend; its JSON lines."""
    out = tmp_path / "bench.jsonl"
    command = [sys.executable, "-m", "bench.run", *options]
    command += ["--duration", "1", "--warmup", "0.5", "--users", "4", "--messages", "50"]
    command += ["--concurrency", "4", "--workers", "1", "--json-out", str(out)]
    command += ["--backend", backend.name]
    if backend.name == "postgresql":
        command += ["--database-url", backend.admin_url]
    run = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_every_scenario_of_the_benchmark_runs_without_errors(
    tmp_path: Path, backend: Backend
) -> None:
    rows = run_bench(tmp_path, backend, "--scenarios", "a,b,c,d", "--no-ceilings")

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


def test_every_community_api_scenario_the_ceilings_and_the_open_loop_run_without_errors(
    tmp_path: Path, backend: Backend
) -> None:
    rows = run_bench(
        tmp_path, backend, "--scenarios", "e,f,g,h,i", "--open-loop", "0.5", "--nonces", "20000"
    )

    assert [row["scenario"] for row in rows] == CEILINGS + COMMUNITY_SCENARIOS + OPEN_LOOP
    by_name = {row["scenario"]: row for row in rows}
    for row in rows:
        assert row["errors"] == {} and row["requests"] > 0 and row["rps"] > 0, row
        assert row["p50_ms"] <= row["p99_ms"] <= row["max_ms"], row
    for name in COMMUNITY_SCENARIOS:
        row = by_name[name]
        assert row["backend"] == backend.name and row["messages"] == 50, row
        assert row["users"] == 4 and row["server_rss_mb_max_worker"] > 0, row
        assert row["stored_nonces"] == 20000, row
        assert row["polls"] + row["posts"] + row["reactions"] == row["requests"], row
        # the ratios to both onion ceilings, as the v2 scenarios have theirs
        assert row["vs_onion_v4_ceiling"] > 0 and row["vs_onion_ceiling"] > 0, row
        # posts and reactions come from pre-signed pools, and so do the polls where
        # nothing is posted (signed on the fly only when a user's pool runs dry); the
        # mixes' polls, whose cursors move, are signed as they go
        if name in ("e_batch_1_room", "f_batch_10_rooms"):
            assert row["generator_presigned"] > 0, row
        else:
            assert row["generator_signed"] >= row["polls"], row
        assert row["generator_signed"] + row["generator_presigned"] == row["requests"], row
    assert by_name["onion_v4_ceiling"]["vs_onion_ceiling"] > 0
    assert by_name["onion_v4_ceiling"]["generator_presigned"] > 0
    assert "vs_onion_v4_ceiling" not in by_name["onion_ceiling"]
    for name in ("e_batch_1_room", "f_batch_10_rooms"):
        assert by_name[name]["posts"] == 0 and by_name[name]["reactions"] == 0
    assert by_name["g_post_blinded"]["posts"] == by_name["g_post_blinded"]["requests"]
    assert by_name["h_mix_95_5"]["reactions"] == 0 and by_name["h_mix_95_5"]["polls"] > 0
    assert by_name["i_mix_90_5_5"]["polls"] > 0

    server, ceiling = by_name[OPEN_LOOP[0]], by_name[OPEN_LOOP[1]]
    assert server["open_loop_of"] == "e_batch_1_room" and server["open_loop_fraction"] == 0.5
    assert server["open_loop_rate"] == pytest.approx(
        0.5 * by_name["e_batch_1_room"]["rps"], rel=1e-3
    )
    assert ceiling["open_loop_rate"] == server["open_loop_rate"]
    for row in (server, ceiling):
        assert row["mode"] == "open_loop" and row["backend"] == backend.name, row
        assert row["intended"] > 0 and row["unsent"] == 0, row
        assert row["requests"] == row["intended"], row
        assert 0 <= row["missed_sends"] <= row["intended"], row
        assert "vs_onion_v4_ceiling" not in row, row
