"""What reading each prompt once saves MBR decoding: sample rows sharing the prompt's KV cache against copies of the prompt.

    python benchmarks/mbr_decoding.py                        # the demo's checkpoint on its test manifest
    python benchmarks/mbr_decoding.py --checkpoint DIR --manifest data/demo/eval.jsonl --questions 64 --samples 16

evaluate.py and `llark ask` decode by minimum Bayes risk: 16 answers sampled per question (llark/mbr.py).
`LLark.generate(samples_per_prompt=16)` reads each prompt (the clip's 25 audio tokens and the question)
once and copies its KV cache to the 16 sample rows; before, the batch held 16 copies of every prompt and
read each of them. This times both on the same batches of `--batch-size` questions, alternating batch by
batch so that load drift on a shared machine hits both alike, and checks that they give the same
answers (same seed). Prints seconds per question and the speed-up.
"""

from __future__ import annotations

import argparse
import time

import torch

from llark.data import collate
from llark.inference import Answerer, GenerationOptions, read_manifest
from llark.model import LLark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="runs/demo/checkpoints/step-001200")
    parser.add_argument("--manifest", default="data/demo/eval.jsonl")
    parser.add_argument("--questions", type=int, default=160)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8, help="questions per batch (evaluate.py's default)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    model = LLark.from_pretrained(args.checkpoint).eval()
    answerer = Answerer(model, GenerationOptions(mbr_samples=args.samples, temperature=0.5))
    items = read_manifest(args.manifest)[: args.questions]
    prompts = [answerer.prompt(item["question"], answerer.features_for(item)) for item in items]
    seconds = {"shared": 0.0, "copies": 0.0}
    differing = 0
    for start in range(0, len(prompts), args.batch_size):
        chunk = prompts[start : start + args.batch_size]
        once = collate(chunk, model.ids.pad, left_pad=True)
        copies = collate([p for p in chunk for _ in range(args.samples)], model.ids.pad, left_pad=True)
        tokens = {}
        for name, batch, per_prompt in (("shared", once, args.samples), ("copies", copies, 1)):
            started = time.perf_counter()
            tokens[name] = model.generate(batch["input_ids"], batch["attention_mask"], batch["audio"], batch["audio_lengths"],
                                          max_new_tokens=64, do_sample=True, temperature=0.5,
                                          generator=torch.Generator().manual_seed(start), samples_per_prompt=per_prompt)
            seconds[name] += time.perf_counter() - started
        differing += sum(a != b for a, b in zip(tokens["shared"], tokens["copies"]))
    n = len(prompts)
    print(f"{n} questions of {args.manifest}, {args.samples} samples each, {args.batch_size} questions per batch, "
          f"{args.threads} thread(s)")
    print("| prompt | s per question | speed-up |\n|---|---|---|")
    print(f"| read once, KV cache shared by its samples | {seconds['shared'] / n:.3f} | "
          f"{seconds['copies'] / seconds['shared']:.2f}x |")
    print(f"| copied into every sample row | {seconds['copies'] / n:.3f} | 1.00x |")
    print(f"{differing} of {n * args.samples} sampled answers differ between the two")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
