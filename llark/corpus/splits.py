"""Train / val / test by piece, one rule for both branches: a tune is in the same split as audio
(`make_corpus.py`) and as ABC text (`make_abc_data.py`), so nothing tested in one branch trains the other.

    split_of("oneills1850-0012", "The Kesh")   # 'train' | 'val' | 'test', from a hash of the title
"""

from __future__ import annotations

import hashlib
import re

SPLITS = (("train", 80), ("val", 90), ("test", 100))  # cumulative percent of the hash buckets


def split_of(track_id: str, title: str = "") -> str:
    """train / val / test from a stable hash of the piece (its normalised title for tunes, so one tune
    printed in two collections lands in one split)."""
    name = re.sub(r"[^a-z0-9]+", " ", title.lower()).strip()
    key = f"tune:{name}" if name else track_id
    bucket = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100
    return next(split for split, bound in SPLITS if bucket < bound)
