import subprocess
import sys

import pytest
import torch

from llark.checkpoint import (RunDirBusy, atomic_checkpoint_dir, claim_run_dir, list_checkpoints, load_training_state,
                              prune_checkpoints, resolve_resume, save_training_state)
from tests.conftest import REPO


def fake_checkpoint(out_dir, step):
    with atomic_checkpoint_dir(out_dir, step) as directory:
        (directory / "config.json").write_text("{}")
        save_training_state(directory, {"step": step}, {"state": {0: {"exp_avg": torch.ones(2)}}}, torch.get_rng_state())


def test_a_failed_write_leaves_no_checkpoint(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_checkpoint_dir(tmp_path, 5) as directory:
            (directory / "config.json").write_text("{}")
            raise RuntimeError("disk full")
    assert list((tmp_path / "checkpoints").iterdir()) == []
    assert resolve_resume("auto", tmp_path) is None


def test_resume_auto_picks_the_newest_complete_checkpoint_and_pruning_keeps_the_newest(tmp_path):
    for step in (10, 20, 30):
        fake_checkpoint(tmp_path, step)
    (tmp_path / "checkpoints" / "step-000040").mkdir()  # no trainer state: incomplete, ignored
    assert [s for s, _ in list_checkpoints(tmp_path)] == [10, 20, 30]
    assert resolve_resume("auto", tmp_path).name == "step-000030"
    assert resolve_resume("none", tmp_path) is None
    assert resolve_resume(str(tmp_path / "checkpoints" / "step-000010"), tmp_path).name == "step-000010"
    with pytest.raises(FileNotFoundError, match="step-000040"):
        resolve_resume(str(tmp_path / "checkpoints" / "step-000040"), tmp_path)
    prune_checkpoints(tmp_path, keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [20, 30]
    state, optimizer_state, rng = load_training_state(tmp_path / "checkpoints" / "step-000030")
    assert state == {"step": 30} and torch.equal(optimizer_state["state"][0]["exp_avg"], torch.ones(2))
    assert torch.equal(rng, torch.get_rng_state())


def test_one_process_at_a_time_trains_into_a_run_folder(tmp_path):
    import train

    out = tmp_path / "run"
    # Another process claims the folder and holds it until its stdin closes.
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from llark.checkpoint import claim_run_dir; "
                               f"lock = claim_run_dir({str(out)!r}); print('held', flush=True); sys.stdin.read()"],
                              cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirBusy, match=rf"{out}: process {holder.pid} on .* is training into this folder"):
            claim_run_dir(out)
        with pytest.raises(RunDirBusy):  # train.py claims it before it reads a checkpoint or a shard
            train.main(["--config", str(REPO / "configs/debug.yaml"), f"train.out_dir={out}",
                        f"data.train_shards=[{tmp_path}/never-read-*.tar]"])
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    first = claim_run_dir(out)  # the holder ended: the kernel dropped its lock
    again = claim_run_dir(out)  # the same process may claim it again (a test training twice into one folder)
    assert (out / ".train.lock").read_text().startswith("process ")
    first.close(), again.close()


def test_a_file_system_without_locks_warns_and_trains(tmp_path, monkeypatch, capsys):
    import errno
    import fcntl

    def no_locks(handle, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "lockf", no_locks)
    claim_run_dir(tmp_path / "run").close()
    assert "cannot be locked here" in capsys.readouterr().out
