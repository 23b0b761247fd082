"""The demo: its summary table, and the whole pipeline at a small size (slow)."""

import json
import os
import subprocess
import sys

import pytest

from llark.demo import summary_table
from tests.conftest import REPO


def test_summary_table_shows_model_targets_ablation_and_baselines():
    metric = lambda v: {"value": v, "low": v - 0.1, "high": v + 0.05}  # noqa: E731
    results = {"tasks": {"key": {"n": 10, "unparseable": {"audio": 1},
                                 "systems": {"llark": {"mirex": metric(0.9)}, "llark, features shuffled": {"mirex": metric(0.2)},
                                             "majority": {"mirex": metric(0.15)}, "classic (librosa)": {"mirex": metric(0.8)}}}}}
    table = summary_table(results).splitlines()
    assert table[2] == "| key | mirex | 0.900 [0.800, 0.950] | ≥ 0.85 | 0.200 | 0.150 | 0.800 | 1/10 |"


@pytest.mark.slow
def test_demo_runs_every_stage_and_a_rerun_reuses_them(tmp_path):
    """`make demo` at a small size: corpus -> features -> shards -> two training stages -> evaluate -> ask."""
    command = [sys.executable, "-m", "llark.demo", "--data", tmp_path / "data", "--run", tmp_path / "run",
               "--generated", 40, "--tunes", 10, "--listen-steps", 3, "--steps", 2, "--workers", 1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    first = subprocess.run(list(map(str, command)), cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    assert (tmp_path / "run" / "listen" / "checkpoints" / "step-000003").is_dir()
    stage2 = json.loads((tmp_path / "run" / "checkpoints" / "step-000002" / "config.json").read_text())
    assert stage2["train"]["init_from"].endswith("step-000003") and stage2["data"]["topics"] == []
    listen = json.loads((tmp_path / "run" / "listen" / "checkpoints" / "step-000003" / "config.json").read_text())
    assert listen["data"]["families"] == ["mir_qa"] and listen["data"]["topics"] == ["key", "mode", "chords"]
    results = json.loads((tmp_path / "run" / "eval" / "results.json").read_text())
    assert set(results["tasks"]) == {"key", "tempo", "meter", "instruments"}
    assert {"llark", "llark, features shuffled", "llark, features zeroed", "majority"} <= set(results["tasks"]["key"]["systems"])
    assert "classic (librosa)" in results["tasks"]["tempo"]["systems"]
    assert "| key | mirex |" in first.stdout and "stage times:" in first.stdout
    # Re-run: every finished stage is reused, nothing trains again.
    again = subprocess.run(list(map(str, command)), cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "train, stage" not in again.stderr and "| key | mirex |" in again.stdout
