"""Multiple choice: accuracy of the chosen letter. evaluate.py gets the letter two ways: parsed from
the generated answer, and by LM likelihood (the option whose text is most likely as the answer)."""

from __future__ import annotations

import numpy as np

from llark.evaluation.parsing import parse_letter


class McqTask:
    name = "mcq"
    constant = "A"

    def parse(self, answer: str) -> str | None:
        return parse_letter(answer)

    def parse_gold(self, gold) -> str:
        letter = str(gold).strip().upper()
        if letter not in ("A", "B", "C", "D", "E"):
            raise ValueError(f"gold answer {gold!r} is not an option letter")
        return letter

    def metrics(self, predicted, gold) -> dict[str, float]:
        return {"accuracy": float(np.mean([p == g for p, g in zip(predicted, gold)]))}
