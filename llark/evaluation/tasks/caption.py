"""Captions: corpus BLEU-4 (sacrebleu, 13a tokenisation, lower-cased: "D minor" = "d minor") and mean ROUGE-L F1 (our own
implementation of Lin 2004: longest common subsequence of lower-cased word tokens).

n-gram metrics mostly reward length and style (LLark judged captions by human preference); they are
reported so runs can be compared, not as a measure of musical understanding.
"""

from __future__ import annotations

import re

import numpy as np
import sacrebleu


def rouge_l(candidate: str, reference: str) -> float:
    a, b = re.findall(r"\w+", candidate.lower()), re.findall(r"\w+", reference.lower())
    if not a or not b:
        return 0.0
    previous = [0] * (len(b) + 1)
    for token in a:  # dynamic programme over prefixes, one row at a time
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


class CaptionTask:
    name = "caption"
    constant = "A piece of music with several instruments."

    def parse(self, answer: str) -> str | None:
        return answer.strip() or None

    def parse_gold(self, gold) -> str:
        if not str(gold).strip():
            raise ValueError("empty gold caption")
        return str(gold).strip()

    def metrics(self, predicted, gold) -> dict[str, float]:
        candidates = [p or "" for p in predicted]
        bleu = sacrebleu.corpus_bleu(candidates, [list(gold)], lowercase=True).score / 100
        return {"bleu": float(bleu), "rouge_l": float(np.mean([rouge_l(c, g) for c, g in zip(candidates, gold)]))}
