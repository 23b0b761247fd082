"""Real-time factor of the MIR-feature encoder on one core (seconds of audio encoded per second).

    python benchmarks/encode.py                  # 6 clips of 25 s, one thread
    python benchmarks/encode.py --clips 3 --seconds 10
    python benchmarks/encode.py --rhythm         # with the opt-in rhythm group
    python benchmarks/encode.py --rhythm --timbre   # and the timbre group (342 dims)
    python benchmarks/encode.py --rhythm --timbre --tempo-bins 0 --clip-tempo-bins 156   # the clip tempogram instead: the demo's
    python benchmarks/encode.py --rhythm --timbre --tempo-bins 0 --clip-tempo-bins 156 --librosa-cache /tmp/lc   # as the demo encodes
    python benchmarks/encode.py --rhythm --timbre --tempo-bins 0 --clip-tempo-bins 156 --interval-bins 120   # with the interval group
    python benchmarks/encode.py --clips-file data/demo/clips.jsonl --clips 200 --rhythm --timbre   # the demo's clips
    python benchmarks/encode.py --clips-file data/demo/clips.jsonl --clips 60 --rhythm --timbre --tempo-bins 0 \
        --clip-tempo-bins 156 --beat-level --instrument-tags --librosa-cache data/demo/librosa-cache   # the demo's encoder

Pins BLAS/OpenMP to one thread before numpy loads, so the figure is per core; also prints the
share of time each channel group takes. `--librosa-cache DIR` sets LIBROSA_CACHE_DIR before librosa
loads (the warm-up fills it), as `make demo` does: librosa then keeps its filter banks on disk instead of
building the chroma's CQT filters again for every clip; compare with a run without it. The filters
depend on each clip's estimated tuning, so the demo's detuned clips (`--clips-file`) fill the cache with
one set per tuning (about 100) where the generated clips, all in tune, share one.
"""

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[variable] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def music_like(seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """Chords, a bass line and clicks at 100 BPM: enough structure for every feature group."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63)) / 3
    wave += 0.5 * np.sin(2 * np.pi * 110.0 * t) * (np.sin(2 * np.pi * 0.8 * t) > 0)
    for beat in np.arange(0, seconds, 0.6):
        start = int(beat * sample_rate)
        wave[start : start + 300] += rng.normal(0, 0.5, min(300, len(wave) - start))
    return (wave / np.abs(wave).max()).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--rhythm", action="store_true", help="with the rhythm group (+96 dims)")
    parser.add_argument("--timbre", action="store_true", help="with the timbre group (+n_mels + 8 dims)")
    parser.add_argument("--tempo-bins", type=int, default=96, help="the local tempogram's BPM values (0: none)")
    parser.add_argument("--clip-tempo-bins", type=int, default=0, help="the clip tempogram's BPM values (0: none)")
    parser.add_argument("--interval-bins", type=int, default=0, help="the interval group's lags (0: none)")
    parser.add_argument("--beat-level", action="store_true", help="the rhythm group at the fitted beat level")
    parser.add_argument("--instrument-tags", action="store_true", help="with the instrument tagger's group (+46 dims)")
    parser.add_argument("--librosa-cache", metavar="DIR", help="librosa's disk cache of filter banks (LIBROSA_CACHE_DIR)")
    parser.add_argument("--clips-file", metavar="CLIPS_JSONL", help="encode the first --clips clips of a clips.jsonl "
                        "(e.g. data/demo/clips.jsonl) instead of generated ones")
    args = parser.parse_args()
    if args.librosa_cache:
        os.environ["LIBROSA_CACHE_DIR"] = args.librosa_cache  # read once, when librosa is imported (next line)
    from llark.encoders.mir import MIRFeatureEncoder

    encoder = MIRFeatureEncoder(rhythm=args.rhythm, timbre=args.timbre, tempo_bins=args.tempo_bins,
                                clip_tempo_bins=args.clip_tempo_bins, interval_bins=args.interval_bins,
                                beat_level=args.beat_level, instrument_tags=args.instrument_tags)
    if args.clips_file:
        from llark.extraction import jobs_from_clips, load_clip

        jobs = jobs_from_clips(args.clips_file)[: args.clips + 1]
        waves = [load_clip(job, encoder.sample_rate) for job in jobs]
        args.clips, args.seconds = len(waves) - 1, float(np.mean([len(w) for w in waves[1:]]) / encoder.sample_rate)
    else:
        waves = [music_like(args.seconds, encoder.sample_rate, seed) for seed in range(args.clips + 1)]
    encoder.encode(waves[0])  # warm-up: numba compilation and caches
    # The STFT counts under log-mel; the CQT's tuning estimate and the onset read it (as encode() does).
    magnitudes = {id(w): encoder._magnitude(w) for w in waves[1:]}
    groups = {"log-mel": lambda w: encoder._log_mel(encoder._decibels(encoder._mel_power(encoder._magnitude(w)))),
              "cqt+chroma": lambda w: encoder._chroma(encoder._cqt(w, magnitudes[id(w)])),
              "onset+rms": lambda w: encoder._onset_and_level(w, magnitudes[id(w)])}
    # Each tempogram is timed with its onset envelope, which encode() computes once for both, and with the
    # STFT at the onset hop it reads (encode() takes the spectral-hop STFT from the same one: _fine_spectrum).
    if args.tempo_bins:
        groups["tempogram"] = lambda w: encoder._tempogram(encoder._fine_onset(encoder._fine_spectrum(w)[1]))
    if args.clip_tempo_bins:
        groups["clip tempogram"] = lambda w: encoder._clip_tempogram(encoder._fine_onset(encoder._fine_spectrum(w)[1]))
    # The rhythm, timbre and interval groups are timed on the STFT, mel, CQT and chroma the encoder has already
    # computed for the others (the CQT counts under chroma).
    cqts = {id(w): encoder._cqt(w, magnitudes[id(w)]) for w in waves[1:]}
    shared = {id(w): (encoder._mel_power(magnitudes[id(w)]), encoder._chroma(cqts[id(w)])) for w in waves[1:]}
    if args.rhythm:
        groups["rhythm"] = lambda w: encoder._rhythm(*shared[id(w)])
    if args.timbre:
        groups["timbre"] = lambda w: encoder._timbre(magnitudes[id(w)], encoder._decibels(shared[id(w)][0]))
    if args.interval_bins:
        groups["intervals"] = lambda w: encoder._intervals(cqts[id(w)])
    if args.instrument_tags:  # the tagger on the log-mel group at 25 fps, which encode() has already pooled
        log_mels = {id(w): encoder.log_mel_frames(w) for w in waves[1:]}
        groups["instrument tags"] = lambda w: encoder._instrument_tags(log_mels[id(w)])
    group_seconds = {name: 0.0 for name in groups}
    started = time.perf_counter()
    for wave in waves[1:]:
        encoder.encode(wave)
    total = time.perf_counter() - started
    for wave in waves[1:]:
        for name, function in groups.items():
            t0 = time.perf_counter()
            function(wave)
            group_seconds[name] += time.perf_counter() - t0
    audio = args.clips * args.seconds
    cache = f", librosa cache {args.librosa_cache}" if args.librosa_cache else ""
    print(f"MIR encoder ({encoder.dim} dims at {encoder.frame_rate:g} fps, {encoder.sample_rate} Hz), 1 thread{cache}:")
    print(f"  {audio:.0f} s of audio in {total:.2f} s = {audio / total:.1f}x real time per core "
          f"({total / args.clips * 1000:.0f} ms per {args.seconds:g} s clip)")
    parts = sum(group_seconds.values())
    print("  time per group: " + ", ".join(f"{k} {100 * v / parts:.0f}%" for k, v in group_seconds.items()))


if __name__ == "__main__":
    main()
