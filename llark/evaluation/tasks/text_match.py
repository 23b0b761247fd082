"""Plain text matching (for probe tasks): `exact` (equal after lower-casing and removing punctuation)
and `contains` (the gold answer appears as whole words)."""

from __future__ import annotations

import re

import numpy as np


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s#/]", " ", text.lower()).split())


class ExactTask:
    name = "exact"
    constant = ""

    def parse(self, answer: str) -> str | None:
        return normalise(answer) or None

    def parse_gold(self, gold) -> str:
        return normalise(str(gold))

    def metrics(self, predicted, gold) -> dict[str, float]:
        return {"accuracy": float(np.mean([p == g for p, g in zip(predicted, gold)]))}


class ContainsTask(ExactTask):
    name = "contains"

    def metrics(self, predicted, gold) -> dict[str, float]:
        return {"accuracy": float(np.mean([p is not None and f" {g} " in f" {p} " for p, g in zip(predicted, gold)]))}
