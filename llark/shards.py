"""The shard format (DESIGN §3): webdataset tars of one record per clip, plus a manifest.

Each record: `__key__` (the clip id, dots escaped), `features.npy` (float16 [T, D], plain .npy) and
`json` (clip metadata, labels, and `qa`: a list of {question, answer, family}). A text-only record
(an ABC task: no audio) has no `features.npy` and says `"modality": "text"` in its json.

    manifest = write_shards(records, "data/shards/train", max_bytes=512 << 20)
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from llark.jsonl import file_sha256


def clip_key(clip_id: str) -> str:
    """A webdataset key for a clip id: webdataset splits file names at the first dot, so escape dots."""
    return clip_id.replace("%", "%25").replace(".", "%2E")


def clip_id_from_key(key: str) -> str:
    return key.replace("%2E", ".").replace("%25", "%")


@dataclass
class ClipRecord:
    clip_id: str
    features: np.ndarray | None  # [T, D], stored as float16; None for a text-only record
    meta: dict[str, Any] = field(default_factory=dict)  # labels, provenance, ...
    qa: list[dict[str, str]] = field(default_factory=list)  # [{question, answer, family}]


def encode_npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def decode_npy(data: bytes, where: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"{where}: features.npy is not a plain numeric .npy ({err})") from None


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _record_members(record: ClipRecord) -> list[tuple[str, bytes]]:
    key = clip_key(record.clip_id)
    if record.features is None:
        meta = {**record.meta, "id": record.clip_id, "modality": "text", "qa": _checked_qa(record)}
        return [(f"{key}.json", json.dumps(meta).encode())]
    if record.features.ndim != 2:
        raise ValueError(f"clip {record.clip_id}: features must be [T, D], got shape {record.features.shape}")
    meta = {**record.meta, "id": record.clip_id, "qa": _checked_qa(record)}
    return [
        (f"{key}.features.npy", encode_npy(record.features.astype(np.float16))),
        (f"{key}.json", json.dumps(meta).encode()),
    ]


def _checked_qa(record: ClipRecord) -> list[dict[str, str]]:
    for i, pair in enumerate(record.qa):
        if not {"question", "answer"} <= set(pair):
            raise ValueError(f"clip {record.clip_id}: qa[{i}] needs 'question' and 'answer'")
    return record.qa


def write_shards(records: Iterable[ClipRecord], prefix: str | Path, max_bytes: int = 512 << 20) -> dict[str, Any]:
    """Write `{prefix}-000000.tar`, ... of at most ~max_bytes each, and `{prefix}-manifest.json`.

    Each shard is written to a temporary name and renamed when complete, so a crash never leaves
    a truncated shard under a final name. Returns the manifest (shards with counts and sha256).
    """
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, Any]] = []
    tar: tarfile.TarFile | None = None
    tmp_path = final_path = None
    count = size = 0

    def close_current() -> None:
        nonlocal tar
        if tar is None:
            return
        tar.close()
        os.replace(tmp_path, final_path)
        shards.append({"path": final_path.name, "samples": count, "bytes": final_path.stat().st_size,
                       "sha256": file_sha256(final_path)})
        tar = None

    for record in records:
        members = _record_members(record)
        record_size = sum(len(data) + 1024 for _, data in members)
        if tar is not None and size + record_size > max_bytes:
            close_current()
        if tar is None:
            final_path = prefix.parent / f"{prefix.name}-{len(shards):06d}.tar"
            tmp_path = final_path.with_suffix(".tar.tmp")
            tar = tarfile.open(tmp_path, "w")
            count = size = 0
        for name, data in members:
            _add_member(tar, name, data)
        count += 1
        size += record_size
    close_current()
    # An earlier, larger run may have left higher-numbered shards that a glob would still pick up.
    for stale in prefix.parent.glob(f"{prefix.name}-[0-9][0-9][0-9][0-9][0-9][0-9].tar"):
        if int(stale.stem.rsplit("-", 1)[1]) >= len(shards):
            stale.unlink()
    manifest = {"shards": shards, "samples": sum(s["samples"] for s in shards)}
    manifest_path = prefix.parent / f"{prefix.name}-manifest.json"
    tmp_manifest = manifest_path.with_suffix(".json.tmp")
    tmp_manifest.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp_manifest, manifest_path)
    return manifest
