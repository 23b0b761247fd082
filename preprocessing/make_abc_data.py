"""The ABC branch's data: real tunes from music21's corpus -> ChatMusician-format text tasks, shards and
an evaluation manifest.

    python preprocessing/make_abc_data.py --out data/abc
    python preprocessing/make_abc_data.py --out data/abc-small --limit 300 --max-chars 400
    python preprocessing/make_abc_data.py --out data/abc-essen --enable-essen   # Essen: non-commercial only

Stages: list the tunes of O'Neill's 1850, Ryan's Mammoth and Aird's Airs (Essen only with --enable-essen),
normalise each (abc.normalise), keep single-voice tunes whose bars fill their meter (abc.check_bars) and
that abc2midi reads (abc.validate), drop exact duplicates (the same normalised tune), and split by tune
with the audio corpus's own rule (llark/corpus/splits.py `split_of`: a hash of the tune's title,
else its track id), so a tune is never train in one branch and test in the other. Each training tune
also gets --transpositions copies in other keys (abc_tasks.transposed_variants; each checked like a
real tune), whose pairs join the tune's own in its shard record. Then build each tune's Q/A pairs
(llark/abc_tasks.py) and write:

    <out>/tunes.jsonl            one line per kept tune: tune_id, collection, source, title, licence,
                                 provenance, split, abc, key, meter, unit, rhythm, bars, pickup, repeats, has_chords,
                                 changes
    <out>/tunes-train.jsonl      the train split's lines and their transposed copies (with transposed_from
                                 and transposition): the abc_generation task's novelty reference
    <out>/dropped.jsonl          every tune or transposed copy left out: tune_id, source, stage, reason
    <out>/shards/{train,val,test}-NNNNNN.tar + {split}-manifest.json + manifest.json
                                 text-only records (no features.npy, json "modality": "text")
    <out>/eval/test.jsonl        evaluate.py manifest on test tunes: abc_generation prompts, key, meter,
                                 and bars / repeats as `exact` items
    <out>/eval/val.jsonl         the same on val tunes, for choosing settings (e.g. decoding) off test
    <out>/abc_data.json          settings, input fingerprint and counts; a rerun with the same inputs does nothing

The default run (4,248 tunes, 3 transposed copies of each training tune) takes about 1 min on 2 cores
(with Essen, 12,762 tunes: 50 s before the copies existed, not re-measured); --limit N takes the first N
tunes with the collections taking turns (for quick runs and tests).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from llark import abc
from llark.abc_tasks import (
    TaskConfig, analysis_answers, analysis_question, build_pairs, describe_tune, text2abc_prompt, transposed_variants,
    variant_pairs,
)
from llark.corpus.abc_tunes import COLLECTIONS, DEFAULT_COLLECTIONS, TuneSource, list_tunes
from llark.corpus.splits import split_of
from llark.evaluation.parsing import parse_key, parse_meter
from llark.jsonl import write_json_atomic, write_jsonl_atomic
from llark.shards import ClipRecord, write_shards

REPO = Path(__file__).resolve().parents[1]
SPLITS = ("train", "val", "test")
# Analysis kinds that evaluate.py scores, with the task that scores them.
EVAL_ANALYSIS = {"key": "key", "meter": "meter", "bars": "exact", "repeats": "exact"}
# Code whose changes change the output: part of the fingerprint, so an edited task builder rebuilds.
CODE = [Path(__file__), REPO / "llark" / "abc_tasks.py", REPO / "llark" / "corpus" / "splits.py",
        *sorted((REPO / "llark" / "abc").glob("*.py"))]


# ---- stage 1: check and describe each tune --------------------------------------------------------
def audio_title(text: str) -> str:
    """The title exactly as the audio corpus reads it (abc_tunes.read_tune: the first T: of the header,
    cut at '%'), so split_of gives a tune the same split in both branches."""
    for line in text.splitlines():
        if line.startswith("T:"):
            return line[2:].split("%")[0].strip()
        if line.startswith("K:"):
            break
    return ""


def check_tune(source: TuneSource) -> dict[str, Any]:
    """{'record': tunes.jsonl line without split} or {'dropped': {tune_id, source, stage, reason}}.
    Stages in order of cost: normalise, parse, voices, bars, abc2midi."""
    where = source.where
    stage = "normalise"
    try:
        clean = abc.normalise(source.text, where=where)
        stage = "parse"
        tune = abc.parse_tune(clean, where)
        if len(tune.voices) != 1:
            return _dropped(source, "voices", f"{len(tune.voices)} voices (single-voice tunes only)")
        stage = "bars"
        problem = playability_problem(tune, clean)
        if problem is not None:
            return _dropped(source, *problem)
        header, _ = abc.split_header_body(source.text, where)
        rhythm = abc.header_fields(header).get("R", [None])[0]
        facts = describe_tune(clean, audio_title(source.text), rhythm, where)
    except Exception as err:  # a batch job: AbcError or a reader bug, recorded with its stage, and the run goes on
        return _dropped(source, stage, f"{type(err).__name__}: {err}")
    collection = COLLECTIONS[source.collection]
    record = {"tune_id": source.track_id, "collection": source.collection, "source": where, "title": facts["title"],
              "licence": collection[1],
              "provenance": f"{collection[2]}: {where}" + (f' "{facts["title"]}"' if facts["title"] else ""),
              "split": None, "abc": clean, **{k: v for k, v in facts.items() if k != "title"}}
    return {"record": record}


def playability_problem(tune: abc.Tune, text: str) -> tuple[str, str] | None:
    """(stage, reason) when a parsed tune's bars do not fill its meter ("bars") or abc2midi does not read
    it ("abc2midi"); None when it is fine. The check for real tunes and transposed copies alike."""
    check = abc.check_bars(tune)
    if not check.ok:
        return "bars", check.describe().splitlines()[0]
    verdict = abc.validate(text)
    return None if verdict.ok else ("abc2midi", verdict.reason)


def _dropped(source: TuneSource, stage: str, reason: str) -> dict[str, Any]:
    return {"dropped": {"tune_id": source.track_id, "source": source.where, "stage": stage, "reason": reason}}


def map_with_progress(check: Callable[[Any], Any], items: list, workers: int, desc: str) -> list:
    """[check(item) for item in items] in order, in `workers` processes (abc2midi is the slow part)."""
    progress = {"total": len(items), "desc": desc, "unit": "tune"}
    if workers > 1:
        with multiprocessing.Pool(workers) as pool:
            return list(tqdm(pool.imap(check, items, chunksize=16), **progress))
    return list(tqdm(map(check, items), **progress))


def check_tunes(sources: list[TuneSource], workers: int) -> tuple[list[dict], list[dict]]:
    """(records, dropped) in source order; abc2midi runs in `workers` processes."""
    results = map_with_progress(check_tune, sources, workers, "checking tunes")
    records, dropped = [], []
    for result in results:
        (records if "record" in result else dropped).append(result.get("record") or result["dropped"])
    return records, dropped


def take_turns(sources: list[TuneSource], limit: int | None) -> list[TuneSource]:
    """The first `limit` tunes with the collections taking turns (all of them, in order, without a limit)."""
    if limit is None:
        return sources
    queues = defaultdict(list)
    for source in sources:
        queues[source.collection].append(source)
    chosen: list[TuneSource] = []
    for rank in range(max(len(q) for q in queues.values())):
        chosen += [q[rank] for q in queues.values() if rank < len(q)]
    return chosen[:limit]


# ---- stage 2: duplicates and splits --------------------------------------------------------------
def assign_splits(records: list[dict], split_of: Callable[[str, str], str]) -> tuple[list[dict], list[dict]]:
    """Each record's split, and exact duplicates (the same normalised tune) removed: the first copy stays.
    A tune whose copies fall in different splits is dropped whole, so no copy of it trains in one split
    and tests in another (the audio corpus may render either copy)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        record["split"] = split_of(record["tune_id"], record["title"] or "")
        groups[record["abc"]].append(record)
    kept, dropped = [], []
    for group in groups.values():
        first = group[0]
        if len({r["split"] for r in group}) > 1:
            dropped += [_drop_row(r, "duplicate", "copies of this tune fall in different splits: "
                                  + ", ".join(f"{c['tune_id']} ({c['split']})" for c in group)) for r in group]
            continue
        kept.append(first)
        dropped += [_drop_row(r, "duplicate", f"the same normalised tune as {first['tune_id']}") for r in group[1:]]
    order = {r["tune_id"]: i for i, r in enumerate(records)}
    return sorted(kept, key=lambda r: order[r["tune_id"]]), dropped


def _drop_row(record: dict, stage: str, reason: str) -> dict[str, str]:
    return {"tune_id": record["tune_id"], "source": record["source"], "stage": stage, "reason": reason}


# ---- stage 3: transposed copies of the training tunes ---------------------------------------------
def check_variant(variant: dict[str, Any]) -> str | None:
    """Why a transposed copy is unusable (bars or abc2midi, as for a real tune), or None."""
    try:
        problem = playability_problem(abc.parse_tune(variant["abc"], variant["tune_id"]), variant["abc"])
        return None if problem is None else problem[1]
    except Exception as err:  # a batch job: recorded, and the run goes on
        return f"{type(err).__name__}: {err}"


def make_variants(records: list[dict], config: TaskConfig, seed: int, workers: int) -> tuple[list[dict], list[dict]]:
    """(transposed copies of the train split's tunes that pass the checks, dropped rows for the others)."""
    variants, dropped = [], []
    for record in records:
        if record["split"] == "train":
            made, skipped = transposed_variants(record, config, random.Random(f"{seed}-{record['tune_id']}-transpose"))
            variants += made
            dropped += [_drop_row(record, "transpose", reason) for reason in skipped]
    reasons = map_with_progress(check_variant, variants, workers, "checking transposed copies")
    dropped += [_drop_row(v, "transpose", reason) for v, reason in zip(variants, reasons) if reason]
    return [v for v, reason in zip(variants, reasons) if reason is None], dropped


# ---- stage 4: pairs and shards -------------------------------------------------------------------
def tune_pairs(records: list[dict], variants: list[dict], config: TaskConfig, seed: int) -> dict[str, list[dict]]:
    """tune_id -> its Q/A pairs and those of its transposed copies, each tune or copy seeded by
    (seed, its id) alone."""
    pairs = {r["tune_id"]: build_pairs(r, config, random.Random(f"{seed}-{r['tune_id']}")) for r in records}
    for variant in variants:
        pairs[variant["transposed_from"]] += variant_pairs(variant, config, random.Random(f"{seed}-{variant['tune_id']}"))
    return pairs


def write_split_shards(records: list[dict], pairs: dict[str, list[dict]], out: Path, seed: int,
                       shard_mb: float) -> dict[str, Any]:
    """Text-only shards per split, records in a seeded shuffled order; returns {split: manifest}."""
    manifests = {}
    for split in SPLITS:
        chosen = [r for r in records if r["split"] == split and pairs[r["tune_id"]]]
        random.Random(f"{seed}-{split}").shuffle(chosen)
        shard_records = (ClipRecord(f"abc-{r['tune_id']}", None, shard_meta(r), pairs[r["tune_id"]]) for r in chosen)
        manifests[split] = write_shards(shard_records, out / split, max_bytes=int(shard_mb * (1 << 20)))
    return manifests


def shard_meta(record: dict) -> dict[str, Any]:
    labels = ("key", "meter", "unit", "rhythm", "bars", "pickup", "repeats", "has_chords", "changes")
    return {"tune_id": record["tune_id"], "track_id": record["tune_id"], "split": record["split"],
            "source": record["collection"], "licence": record["licence"], "provenance": record["provenance"],
            "title": record["title"], "labels": {k: record[k] for k in labels}}


# ---- stage 5: the evaluation manifest ------------------------------------------------------------
def eval_items(records: list[dict], config: TaskConfig, seed: int, generation: int, analysis: int,
               split: str = "test") -> list[dict]:
    """One split's tunes as evaluate.py items: `generation` abc_generation prompts, and up to `analysis`
    items for each of key, meter, bars and repeats (gold answers checked to parse back with the task's
    parser). The val split's items are for choosing settings (decoding) without looking at test."""
    tunes = sorted((r for r in records if r["split"] == split), key=lambda r: r["tune_id"])
    items = []
    fits = [r for r in tunes if len(r["abc"]) <= config.max_chars and r["key"] and r["meter"]]
    for record in random.Random(f"{seed}-generation").sample(fits, min(generation, len(fits))):
        question, with_title = text2abc_prompt(record, random.Random(f"{seed}-{record['tune_id']}-eval"),
                                               config.title_probability)
        gold = {"key": record["key"], "meter": record["meter"], "unit": record["unit"], "rhythm": record["rhythm"],
                "title": record["title"] if with_title else None, "reference_abc": record["abc"],
                "novelty_reference": "../tunes-train.jsonl"}
        items.append(_item(record, "generation", "abc_generation", question, gold))
    readable = [r for r in tunes if len(r["abc"]) <= config.max_analysis_chars]
    for kind, task in EVAL_ANALYSIS.items():
        answerable = [r for r in readable if _gold_parses(kind, analysis_answers(r).get(kind))]
        for record in random.Random(f"{seed}-{kind}").sample(answerable, min(analysis, len(answerable))):
            rng = random.Random(f"{seed}-{record['tune_id']}-{kind}-eval")
            question = analysis_question(kind, record["abc"], rng)
            items.append(_item(record, kind, task, question, analysis_answers(record)[kind]))
    return items


def _gold_parses(kind: str, answer: str | None) -> bool:
    """Whether evaluate.py's task reads this gold back unchanged (its key task knows major and minor only)."""
    if answer is None:
        return False
    if kind == "key":
        return parse_key(answer) == answer
    if kind == "meter":
        return parse_meter(answer) == answer
    return True


def _item(record: dict, kind: str, task: str, question: str, gold: Any) -> dict[str, Any]:
    return {"id": f"{record['tune_id']}-{kind}", "task": task, "modality": "text", "question": question,
            "gold": gold, "tune_id": record["tune_id"]}


# ---- the run -------------------------------------------------------------------------------------
def fingerprint(sources: list[TuneSource]) -> str:
    digest = hashlib.sha256()
    for source in sources:
        digest.update(f"{source.collection}\0{source.where}\0{source.text}\0".encode())
    for path in CODE:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def outputs_exist(out: Path) -> bool:
    names = ["tunes.jsonl", "tunes-train.jsonl", "dropped.jsonl", "eval/test.jsonl", "eval/val.jsonl",
             "shards/manifest.json"]
    return all((out / name).exists() for name in names)


def family_counts(records: list[dict], pairs: dict[str, list[dict]]) -> dict[str, dict[str, int]]:
    """split -> family -> pairs; pairs of transposed copies also count under 'transposed <family>'."""
    counts: dict[str, Counter] = {split: Counter() for split in SPLITS}
    for record in records:
        counts[record["split"]].update(p["family"] for p in pairs[record["tune_id"]])
        counts[record["split"]].update(f"transposed {p['family']}" for p in pairs[record["tune_id"]]
                                       if "transposition" in p)
    return {split: dict(sorted(c.items())) for split, c in counts.items()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--enable-essen", action="store_true",
                        help="add the Essen folksong collection (licence: non-commercial research use only)")
    parser.add_argument("--limit", type=int, help="use only this many tunes (collections taking turns)")
    parser.add_argument("--max-chars", type=int, default=TaskConfig.max_chars,
                        help="longest tune (normalised characters) for generation families and generation prompts")
    parser.add_argument("--max-analysis-chars", type=int, default=TaskConfig.max_analysis_chars,
                        help="longest tune put into an analysis question")
    parser.add_argument("--transpositions", type=int, default=3,
                        help="transposed copies of each training tune (0: none); spreads the keys the model writes")
    parser.add_argument("--generation-prompts", type=int, default=100, help="abc_generation items in eval/test.jsonl")
    parser.add_argument("--analysis-items", type=int, default=100,
                        help="eval items per analysis task (key, meter, bars, repeats)")
    parser.add_argument("--shard-mb", type=float, default=512.0)
    parser.add_argument("--workers", type=int, default=min(2, multiprocessing.cpu_count()))
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    out = Path(args.out)
    config = TaskConfig(max_chars=args.max_chars, max_analysis_chars=args.max_analysis_chars,
                        transpositions=args.transpositions)
    collections = [*DEFAULT_COLLECTIONS, *(["essenFolksong"] if args.enable_essen else [])]
    sources = take_turns(list_tunes(collections), args.limit)
    stamp = {"fingerprint": fingerprint(sources), "collections": collections, "limit": args.limit,
             "config": vars(config) | {"continuation_bars": list(config.continuation_bars)}, "seed": args.seed,
             "generation_prompts": args.generation_prompts, "analysis_items": args.analysis_items,
             "shard_mb": args.shard_mb}
    summary_path = out / "abc_data.json"
    if summary_path.exists() and outputs_exist(out) and json.loads(summary_path.read_text()).get("inputs") == stamp:
        print(f"[abc-data] {out} is up to date", file=sys.stderr)
        return 0
    print(f"[abc-data] {len(sources)} tunes from {', '.join(collections)}", file=sys.stderr)

    records, dropped = check_tunes(sources, args.workers)
    records, duplicates = assign_splits(records, split_of)
    dropped += duplicates
    variants, unusable = make_variants(records, config, args.seed, args.workers)
    dropped += unusable
    pairs = tune_pairs(records, variants, config, args.seed)
    write_jsonl_atomic(out / "tunes.jsonl", records)
    write_jsonl_atomic(out / "tunes-train.jsonl", [*(r for r in records if r["split"] == "train"), *variants])
    write_jsonl_atomic(out / "dropped.jsonl", dropped)
    manifests = write_split_shards(records, pairs, out / "shards", args.seed, args.shard_mb)
    write_json_atomic(out / "shards" / "manifest.json", {"splits": manifests, "modality": "text"})
    items = eval_items(records, config, args.seed, args.generation_prompts, args.analysis_items)
    write_jsonl_atomic(out / "eval" / "test.jsonl", items)
    write_jsonl_atomic(out / "eval" / "val.jsonl",
                       eval_items(records, config, args.seed, args.generation_prompts, args.analysis_items, "val"))

    counts = {"listed": len(sources), "kept": len(records), "dropped": dict(Counter(d["stage"] for d in dropped)),
              "tunes": dict(Counter(r["split"] for r in records)), "transposed_copies": len(variants),
              "pairs": family_counts(records, pairs),
              "eval": dict(Counter(item["task"] for item in items)), "seconds": round(time.perf_counter() - started, 1)}
    write_json_atomic(summary_path, {"inputs": stamp, "counts": counts})  # last: a crash never looks up to date
    print(f"[abc-data] kept {len(records)} of {len(sources)} tunes and {len(variants)} transposed copies; "
          f"dropped {counts['dropped']}", file=sys.stderr)
    for split in SPLITS:
        print(f"[abc-data] {split}: {counts['tunes'].get(split, 0)} tunes, pairs {counts['pairs'][split]}",
              file=sys.stderr)
    print(f"[abc-data] eval/test.jsonl: {counts['eval']}; {counts['seconds']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
