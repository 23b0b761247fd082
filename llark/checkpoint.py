"""Step-numbered, atomic checkpoint directories and the training state needed to resume exactly.

    runs/debug/checkpoints/step-000040/
        config.json  projector.safetensors  new_token_embeddings.safetensors
        lm/ (LM weights, when they are not a reference)  lm_adapter.safetensors (LoRA)  tokenizer/
        trainer_state.json (step, micro-batches consumed, ...)  optimizer.pt  rng.pt

A checkpoint is written under a temporary name and renamed when complete, so a crash never leaves a
half checkpoint under a `step-*` name. Weights are safetensors; optimizer.pt holds only tensors and
plain values and is read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import IO, Any, Iterator

import torch

STEP_DIR = re.compile(r"^step-(\d+)$")
TRAINER_STATE = "trainer_state.json"
RUN_LOCK = ".train.lock"  # in train.out_dir: who trains there (claim_run_dir)


class RunDirBusy(RuntimeError):
    """Another process is training into this train.out_dir."""


def claim_run_dir(out_dir: str | Path) -> IO[str]:
    """Lock `out_dir` for this training process, creating it. A second training into the same folder (a
    job launched twice, a requeued job whose first run still goes on) would resume from the same checkpoint
    and write both runs' steps, checkpoints and log lines into one folder; it gets RunDirBusy instead,
    naming the process that holds the folder.

    The lock is a POSIX record lock (fcntl.lockf, which NFS honours through its lock manager) on
    out_dir/.train.lock, held while the returned file stays open: close it when training ends. The kernel
    drops it when the process ends however it ends, so a crash or a kill leaves no stale lock. It belongs
    to the process, not to the file: the same process may claim the folder again (a test that trains into
    it twice), another process may not. On a file system that keeps no locks, training goes on with a warning.

        run_lock = claim_run_dir("runs/demo")  # RunDirBusy if another process trains there
        ...
        run_lock.close()
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    handle = (out_dir / RUN_LOCK).open("a+")
    try:
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EAGAIN):  # a file system without locks (ENOLCK, EOPNOTSUPP)
            print(f"[train] warning: {out_dir / RUN_LOCK} cannot be locked here ({err}); nothing stops a second "
                  "training into this folder", flush=True)
            return handle
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunDirBusy(f"{out_dir}: {holder} is training into this folder (train.out_dir); wait for it to end, "
                         "or train into another train.out_dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    return handle


def checkpoints_root(out_dir: str | Path) -> Path:
    return Path(out_dir) / "checkpoints"


def list_checkpoints(out_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (those with a trainer state), oldest first."""
    root = checkpoints_root(out_dir)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = STEP_DIR.match(path.name)
        if match and (path / TRAINER_STATE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def resolve_resume(resume: str, out_dir: str | Path) -> Path | None:
    """resume=auto -> newest checkpoint in out_dir (or None); none -> None; else that directory."""
    if resume == "none":
        return None
    if resume == "auto":
        found = list_checkpoints(out_dir)
        return found[-1][1] if found else None
    path = Path(resume)
    if not (path / TRAINER_STATE).is_file():
        raise FileNotFoundError(f"{path}: not a complete training checkpoint ({TRAINER_STATE} missing)")
    return path


@contextlib.contextmanager
def atomic_checkpoint_dir(out_dir: str | Path, step: int) -> Iterator[Path]:
    """Yield a temporary directory; on success it becomes checkpoints/step-NNNNNN."""
    root = checkpoints_root(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    tmp = root / f".tmp-step-{step:06d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():  # the same step saved again (a re-run): replace it whole
        shutil.rmtree(final)
    os.replace(tmp, final)


def prune_checkpoints(out_dir: str | Path, keep: int) -> None:
    if keep <= 0:
        return
    for _, path in list_checkpoints(out_dir)[:-keep]:
        shutil.rmtree(path)


def save_training_state(
    directory: Path, state: dict[str, Any], optimizer_state: dict[str, Any], rng_state: torch.Tensor
) -> None:
    torch.save(optimizer_state, directory / "optimizer.pt")
    torch.save({"torch": rng_state}, directory / "rng.pt")
    # Written last: its presence marks the checkpoint complete for list_checkpoints().
    (directory / TRAINER_STATE).write_text(json.dumps(state, indent=2) + "\n")


def load_training_state(directory: Path) -> tuple[dict[str, Any], dict[str, Any], torch.Tensor]:
    state = json.loads((directory / TRAINER_STATE).read_text())
    optimizer_state = torch.load(directory / "optimizer.pt", map_location="cpu", weights_only=True)
    rng_state = torch.load(directory / "rng.pt", map_location="cpu", weights_only=True)["torch"]
    return state, optimizer_state, rng_state
