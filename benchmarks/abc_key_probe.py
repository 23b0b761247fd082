"""Does an ABC checkpoint read the key from a text -> ABC prompt? A likelihood probe, no sampling.

    python benchmarks/abc_key_probe.py runs/abc-tiny-mix/checkpoints/step-000300

For each of 8 keys, the prompt "Key: <key>" (meter 6/8, note length 1/8) is scored against the 8 headers
"X:1 L:1/8 M:6/8 K:<k>" by mean answer log-probability; the key whose header scores best is the model's
choice. A model that ignores the prompt's key picks the same header every time (about 1 of 8 right);
one that copies it gets 8 of 8. The same for the meter (6 meters, key D), which small models learn first.
"""

from __future__ import annotations

import argparse

import torch

from llark.inference import Answerer
from llark.model import LLark

KEYS = ("C", "G", "D", "A", "E", "F", "Bb", "Eb")
METERS = ("6/8", "C", "C|", "2/4", "3/4", "9/8")
PROMPT = "Write a tune in ABC notation with these properties.\nKey: {key}\nNote Length: 1/8\nMeter: {meter}"


def chosen(answerer: Answerer, question: str, headers: list[str]) -> int:
    scores = answerer.option_scores(question, None, headers)
    return max(range(len(headers)), key=scores.__getitem__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    args = parser.parse_args()
    torch.set_num_threads(2)
    answerer = Answerer(LLark.from_pretrained(args.checkpoint).eval())
    with torch.no_grad():
        key_picks = [KEYS[chosen(answerer, PROMPT.format(key=key, meter="6/8"),
                                 [f"X:1\nL:1/8\nM:6/8\nK:{k}\n" for k in KEYS])] for key in KEYS]
        meter_picks = [METERS[chosen(answerer, PROMPT.format(key="D", meter=meter),
                                     [f"X:1\nL:1/8\nM:{m}\nK:D\n" for m in METERS])] for meter in METERS]
    print("key   asked -> chosen: " + ", ".join(f"{a}->{c}" for a, c in zip(KEYS, key_picks)))
    print("meter asked -> chosen: " + ", ".join(f"{a}->{c}" for a, c in zip(METERS, meter_picks)))
    print(f"keys right {sum(a == c for a, c in zip(KEYS, key_picks))} of {len(KEYS)}; "
          f"meters right {sum(a == c for a, c in zip(METERS, meter_picks))} of {len(METERS)}")


if __name__ == "__main__":
    main()
