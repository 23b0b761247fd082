"""Corpus throughput: tracks (clips of ~30 s) built and rendered per second in one process, by stage.

    python benchmarks/corpus.py                                   # 24 generated + 12 tunes, 22050 Hz, 30 s
    python benchmarks/corpus.py --generated 48 --tunes 24 --sample-rate 44100 --augment

Stages: piece (generate a piece, or choose a tune: parse, check, harmonise; skipped tunes included),
render (tinysoundfont with TimGM6mb), augment (EQ, reverb, noise, gain; with --augment) and flac
(encode to 16-bit FLAC). The last line is the end-to-end rate a make_corpus.py run sees per worker.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
import soundfile

from llark.corpus.abc_tunes import choose_tunes, list_tunes
from llark.corpus.augment import augment
from llark.corpus.generate import generate_piece
from llark.corpus.render import peak_normalise, render_midi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generated", type=int, default=24)
    parser.add_argument("--tunes", type=int, default=12)
    parser.add_argument("--sample-rate", type=int, default=22050)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--augment", action="store_true")
    args = parser.parse_args()

    timings = {"piece": 0.0, "render": 0.0, "augment": 0.0, "flac": 0.0}
    started = time.perf_counter()
    pieces = [generate_piece(i, seed=0, seconds=args.seconds) for i in range(args.generated)]
    timings["piece"] += time.perf_counter() - started
    if args.tunes:
        sources = list_tunes()  # listing the corpus (music21 import) is a one-off cost, not timed
        started = time.perf_counter()
        chosen, rejected = choose_tunes(sources, args.tunes, seed=0, seconds=args.seconds)
        timings["piece"] += time.perf_counter() - started
        pieces += [piece for _, piece in chosen]
        print(f"tunes: {len(chosen)} chosen, {len(rejected)} skipped on the way")

    audio_seconds = 0.0
    rng = np.random.default_rng(0)
    for piece in pieces:
        started = time.perf_counter()
        wave = peak_normalise(render_midi(piece.midi, args.sample_rate))
        timings["render"] += time.perf_counter() - started
        if args.augment:
            started = time.perf_counter()
            wave, _ = augment(wave, args.sample_rate, rng)
            timings["augment"] += time.perf_counter() - started
        started = time.perf_counter()
        soundfile.write(io.BytesIO(), wave, args.sample_rate, format="FLAC", subtype="PCM_16")
        timings["flac"] += time.perf_counter() - started
        audio_seconds += wave.size / args.sample_rate

    count = len(pieces)
    total = sum(timings.values())
    print(f"{count} tracks, {audio_seconds / count:.1f} s each on average, {args.sample_rate} Hz, one process")
    print(f"{'stage':8}{'ms/track':>10}{'tracks/s':>10}")
    for stage, seconds in timings.items():
        if seconds:
            print(f"{stage:8}{1000 * seconds / count:>10.1f}{count / seconds:>10.1f}")
    print(f"{'total':8}{1000 * total / count:>10.1f}{count / total:>10.1f}   "
          f"({audio_seconds / total:.0f}x real time)")


if __name__ == "__main__":
    main()
