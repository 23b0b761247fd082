"""JSON-lines files, the hand-over format between pipeline stages: read with errors naming file and
line, write atomically (temp file, then rename), and resolve paths relative to the file that names them.

    rows = read_jsonl("data/pipeline/clips.jsonl", required=("clip_id", "audio"))
    write_jsonl_atomic("data/pipeline/clips.jsonl", rows)
    with sole_writer("data/pipeline/qa.jsonl"):     # a resumable batch job's output: one process at a time
        ...
    return as_sole_writer(args.out, lambda out: write_pairs(out, args))   # a script's main: 2 when busy
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator


class OutputBusyError(RuntimeError):
    """Another process is writing the same batch output (`sole_writer`); the message names the file."""


def read_jsonl(path: str | Path, required: Iterable[str] = ()) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    rows = []
    with path.open() as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object")
            missing = [k for k in required if k not in row]
            if missing:
                raise ValueError(f"{path}:{number}: missing field(s) {missing}")
            rows.append(row)
    return rows


def write_jsonl_atomic(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, path)


def write_json_atomic(path: str | Path, value: Any) -> None:
    write_text_atomic(path, json.dumps(value, indent=2) + "\n")


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path` (readers never see half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@contextmanager
def sole_writer(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on `<path>.lock` while a resumable batch job (annotate.py, instruct.py) appends
    finished clips to `<path>.partial` and then writes `path`: a second job on the same output stops at once
    with OutputBusyError, rather than both appending the same clips to one .partial file and the first to
    finish removing it under the other. The kernel drops the lock when its process ends, however it ends, so
    a crashed run never leaves a stale one; the empty lock file stays beside the output."""
    path = Path(path)
    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputBusyError(f"{path}: another process is writing it and holds {lock}; let that run finish, "
                                  "then run again: finished clips are kept") from None
        yield


def as_sole_writer(path: str | Path, write: Callable[[Path], int]) -> int:
    """A resumable batch script's run (annotate.py, instruct.py): `write(Path(path))` under `sole_writer(path)`,
    and its exit status; 2, with the error on stderr, when another process is writing `path`."""
    try:
        with sole_writer(path):  # a second run on the same output would share its .partial file
            return write(Path(path))
    except OutputBusyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def resolve_path(value: str, listed_in: str | Path) -> Path:
    """A path from a JSONL file: absolute as is, relative to the directory of the file that lists it."""
    path = Path(value)
    return path if path.is_absolute() else Path(listed_in).resolve().parent / path


def relative_path(target: str | Path, listed_in: str | Path) -> str:
    """How the file `listed_in` should name `target` (relative to its own directory)."""
    return os.path.relpath(Path(target).resolve(), Path(listed_in).resolve().parent)


def file_sha256(path: str | Path) -> str:
    """The file's SHA-256 (hex), read in 1 MiB blocks: what a shard or manifest held when it was used."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
