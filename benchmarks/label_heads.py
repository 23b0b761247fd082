"""How well a checkpoint's audio positions carry each label: its label heads (model.label_loss_weight) scored on a split.

    python benchmarks/label_heads.py                                          # the demo's checkpoint, val split
    python benchmarks/label_heads.py --checkpoint runs/demo/listen-1/checkpoints/step-001000 --shards 'data/demo/shards/test-*.tar'

Each clip of the shards is read once, with its audio before a key question (as in training, the heads
pool the hidden states of the checkpoint's model.label_layer over the audio positions: layer 0, the
projected audio tokens, in configs/tiny.yaml). Prints, per head: key accuracy (24
classes), tempo class accuracy (4 % classes) and the share within one class of the gold one (about
Acc1's tolerance), meter accuracy, and instruments micro-F1 over the instrument classes.

Set beside evaluate.py's figures for the same checkpoint, this separates what the model hears from
what it says: a head that reads a label the answers get wrong means the answer path has not learned to
use it yet. On the demo corpus, a model trained 700 steps on every family with the heads read tempo
within one class for 0.77 of the val clips and meter for 0.68, while its answers scored tempo Acc1 0.10
and meter 0.36 (docs/demo-experiments.md, "How the recipe was chosen").
"""

from __future__ import annotations

import argparse

import torch

from llark.data import ExampleBuilder, ShardDataset, collate
from llark.evaluation.instruments import CLASSES
from llark.model import LLark
from llark.templates import get_template


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="runs/demo/checkpoints/step-001200")
    parser.add_argument("--shards", default="data/demo/shards/val-*.tar")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)

    model = LLark.from_pretrained(args.checkpoint).eval()
    if not model.label_heads:
        raise SystemExit(f"{args.checkpoint}: trained without label heads (model.label_loss_weight is 0)")
    config = model.run_config.model
    builder = ExampleBuilder(model.tokenizer, model.ids, get_template(config.template), config.max_length,
                             audio_position="before", system=config.system_prompt, audio_pool=config.audio_pool)
    dataset = ShardDataset([args.shards], builder, shuffle_buffer=0, loop=False, label_targets=True,
                           families=["mir_qa"], topics=["key"])
    examples = list(dataset)  # one key question per clip
    if not examples:
        raise SystemExit(f"{args.shards}: no clips with a key question")
    batch = collate(examples, model.ids.pad)
    # As LLark.label_loss pools: each clip's hidden states at model.label_layer averaged over its audio positions.
    probabilities = model.label_probabilities(batch["input_ids"], batch["attention_mask"], batch["audio"],
                                              batch["audio_lengths"])

    print(f"[heads] {args.checkpoint}: {len(examples)} clips of {args.shards}, layer {model.label_layer()}")
    print("| head | figure | value | clips |\n|---|---|---|---|")
    for name in ("key", "tempo", "meter"):
        gold = batch[f"target_{name}"]
        known = gold >= 0
        predicted = probabilities[name].argmax(1)[known]
        print(f"| {name} | accuracy | {(predicted == gold[known]).float().mean():.3f} | {int(known.sum())} |")
        if name == "tempo":
            near = (predicted - gold[known]).abs() <= 1
            print(f"| tempo | within one 4 % class | {near.float().mean():.3f} | {int(known.sum())} |")
    gold = batch["target_instruments"]
    known = gold[:, 0] >= 0
    predicted, present = probabilities["instruments"][known] > 0.5, gold[known] > 0.5
    hits = int((predicted & present).sum())
    f1 = 2 * hits / max(1, int(predicted.sum()) + int(present.sum()))
    print(f"| instruments | micro-F1 over {len(CLASSES)} classes | {f1:.3f} | {int(known.sum())} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
