"""Write a seeded set of checkable music-theory multiple-choice questions in MusicTheoryBench's layout.

    python preprocessing/make_theory_questions.py --out data/theory/questions.json
    python preprocessing/make_theory_questions.py --count 600 --dev 5 --seed 1 --out data/theory/questions.json
    python evaluate_theory.py --checkpoint CKPT --questions data/theory/questions.json --shots 5 --out results/theory

Categories: intervals, chord qualities, key signatures, scales, meters, ABC reading; two thirds
knowledge, one third reasoning. Each record has the benchmark's fields (id, instruction, stem,
options A-D, subject, answer, split, abc_score, analysis) plus `category`. The first --dev records
are split "dev" (few-shot examples). The same arguments write the same file; written atomically.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from llark.theory_bench import generate_questions, save_questions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the JSON file to write (a list of records)")
    parser.add_argument("--count", type=int, default=300, help="questions in all, dev ones included")
    parser.add_argument("--dev", type=int, default=5, help="how many of them are few-shot examples (split dev)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.count < 1 or not 0 <= args.dev <= args.count:
        parser.error("--count must be positive and --dev between 0 and --count")

    questions = generate_questions(args.count, seed=args.seed, dev=args.dev)
    save_questions(args.out, questions)
    subjects = Counter(q.subject for q in questions if q.split == "test")
    categories = Counter(q.category for q in questions)
    print(f"[theory] wrote {len(questions)} questions to {args.out}: {args.dev} dev, "
          f"{subjects['knowledge']} knowledge / {subjects['reasoning']} reasoning test; "
          + ", ".join(f"{c} {n}" for c, n in sorted(categories.items())), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
