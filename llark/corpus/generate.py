"""Generated pieces with exact labels: a progression in the key, melody, bass, drums and one or two
accompaniment textures, as a pretty_midi score plus the labels of docs/data-formats.md.

    piece = generate_piece(index=42, seed=0, seconds=30.0)
    piece.midi.write("gen-00042.mid"); piece.labels["key"], piece.labels["chords"][0]

Everything is drawn from a numpy Generator seeded by (seed, index), so a piece never depends on how
many others are generated. Keys, meters and tempo bands are dealt in shuffled blocks (24 keys, 4
meters, 10 tempo bands of 15 BPM over 50-200): pieces 0-23, 24-47, ... each hold every key once.
All notes live on a 480-ticks-per-quarter grid; the labels are computed from the same grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction as F

import numpy as np
import pretty_midi

from llark.corpus.theory import (
    DRUMS, KEYS_24, METERS, TICKS_PER_QUARTER, Chord, Key, Meter, beat_grid, diatonic_chord, program_name,
    ticks_to_seconds,
)

GENERATOR_VERSION = "llark corpus generator v1"
TEMPO_RANGE = (50, 200)

# A note: (start tick, end tick, MIDI pitch, velocity, delay in seconds). The delay spreads a strum's
# strings or humanises an onset by a few ms; it never moves a note off its beat by more than 25 ms.
NoteEvent = tuple[int, int, int, int, float]


@dataclass
class Part:
    program: int
    role: str  # melody | harmony | bass | drums
    is_drum: bool = False
    notes: list[NoteEvent] = field(default_factory=list)


@dataclass
class Piece:
    midi: pretty_midi.PrettyMIDI
    labels: dict
    music_seconds: float  # where the last bar ends; the audio adds a release tail after it
    title: str = ""  # a tune's T: field (generated pieces have none)


@dataclass(frozen=True)
class Style:
    name: str
    meters: tuple[str, ...]
    textures: tuple[str, ...]
    bass_patterns: tuple[str, ...]
    drum_probability: float
    melody: tuple[int, ...]  # GM programs (0-based)
    harmony: tuple[int, ...]
    bass: tuple[int, ...]
    sevenths: float = 0.15  # chance that a chord carries its seventh
    kits: tuple[int, ...] = (0, 8, 16)  # GM drum kits (bank 128 presets)
    bass_probability: float = 0.85


# Meters are drawn before styles, so every meter has several styles and the meter stays uniform.
STYLES = (
    Style("pop", ("2/4", "3/4", "4/4", "6/8"), ("block", "strum", "arpeggio", "pad"),
          ("beats", "root5", "octaves", "syncopated"), 0.8,
          (0, 4, 11, 24, 25, 27, 53, 65, 73, 80, 81, 85), (0, 2, 4, 5, 24, 25, 27, 48, 88, 89, 90), (33, 34, 35, 38, 39)),
    Style("rock", ("2/4", "4/4", "6/8"), ("strum", "block"), ("octaves", "beats"), 1.0,
          (29, 30, 18, 81, 84, 62), (29, 30, 18, 27, 16, 1), (33, 34, 36, 37), kits=(0, 8, 16)),
    Style("ballad", ("3/4", "4/4", "6/8"), ("arpeggio", "pad", "block"), ("whole", "root5"), 0.4,
          (0, 40, 48, 52, 68, 71, 73, 4, 11, 75, 64, 69), (0, 4, 24, 46, 48, 49, 89, 92, 94), (32, 35, 43, 42),
          kits=(0, 8, 40)),
    Style("waltz", ("3/4", "6/8"), ("waltz", "arpeggio"), ("oom", "whole"), 0.3,
          (40, 21, 23, 73, 71, 0, 68, 56, 110), (0, 21, 23, 46, 48, 45, 6), (43, 58, 32, 42), kits=(0, 40)),
    Style("march", ("2/4", "4/4", "6/8"), ("block", "waltz"), ("root5", "beats"), 0.9,
          (56, 57, 60, 72, 71, 61, 59, 63), (61, 60, 62, 71, 57, 48), (58, 43, 57), kits=(48, 0)),
    Style("chamber", ("2/4", "3/4", "4/4", "6/8"), ("alberti", "arpeggio", "block", "pad"), ("beats", "whole", "root5"),
          0.0, (40, 41, 42, 73, 68, 71, 70, 60, 69, 74), (0, 6, 46, 48, 49, 45, 19), (42, 43, 70), bass_probability=0.7),
    Style("jazz", ("3/4", "4/4"), ("comping", "block"), ("walking",), 0.85,
          (65, 66, 56, 59, 11, 26, 0, 71, 57, 64), (0, 4, 26, 11, 2, 5), (32, 35), sevenths=0.9, kits=(32, 40)),
    Style("folk", ("2/4", "3/4", "4/4", "6/8"), ("strum", "arpeggio", "waltz", "block"), ("root5", "beats", "oom"),
          0.35, (110, 40, 73, 78, 74, 21, 22, 105, 109, 79, 71, 15), (25, 24, 21, 105, 0, 46, 15, 23),
          (32, 43, 33), kits=(0, 8, 40)),
    Style("electronic", ("2/4", "4/4", "6/8"), ("arpeggio", "pad", "block"), ("octaves", "syncopated", "beats"), 0.95,
          (80, 81, 82, 83, 84, 85, 98, 54, 8), (88, 89, 90, 91, 94, 95, 50, 51, 4, 5), (38, 39, 36, 87),
          kits=(24, 25, 16)),
    Style("hymn", ("3/4", "4/4", "2/4"), ("block", "pad"), ("whole", "beats"), 0.0,
          (19, 20, 52, 56, 60, 40, 16, 73), (19, 20, 52, 48, 16, 53), (19, 43, 42, 70, 58), bass_probability=0.75),
    Style("latin", ("2/4", "4/4"), ("comping", "strum", "arpeggio"), ("root5", "syncopated"), 0.85,
          (73, 65, 66, 11, 12, 24, 0, 56, 114, 22), (24, 0, 4, 12, 11, 25), (32, 33, 35), sevenths=0.5, kits=(0, 40)),
)

# Four-bar progressions as scale degrees; a piece strings phrases of them and ends on a V-I cadence.
PROGRESSIONS = {
    "major": ((1, 5, 6, 4), (1, 4, 5, 1), (1, 6, 4, 5), (2, 5, 1, 1), (1, 4, 1, 5), (6, 4, 1, 5), (1, 3, 4, 5),
              (4, 5, 3, 6), (1, 4, 6, 5), (1, 2, 5, 1), (1, 5, 4, 1), (4, 1, 2, 5), (1, 6, 2, 5), (3, 6, 2, 5)),
    "minor": ((1, 4, 5, 1), (1, 6, 3, 7), (1, 7, 6, 5), (1, 4, 7, 3), (1, 6, 4, 5), (1, 3, 7, 4), (1, 4, 1, 5),
              (6, 7, 1, 1), (1, 2, 5, 1), (4, 5, 1, 6), (1, 7, 6, 7), (6, 3, 4, 5)),
}
DYNAMICS = {"soft": (42, 42), "medium": (70, 70), "loud": (100, 100), "crescendo": (40, 105), "diminuendo": (105, 40)}
ROLE_LEVEL = {"melody": 8, "harmony": -12, "bass": 0, "drums": -2}
LOW_PROGRAMS = {42, 43, 57, 58, 67, 70, 32, 33, 34, 35, 36, 37, 38, 39, 87}
HIGH_PROGRAMS = {72, 8, 9, 10, 78, 79, 13, 112}


def pick(rng: np.random.Generator, options):
    """One element of a sequence, drawn with the piece's generator (keeps every choice seeded)."""
    return options[int(rng.integers(len(options)))]


def velocity(dynamics: str, position: float, role: str, accent: int, rng: np.random.Generator) -> int:
    """MIDI velocity at `position` (0..1 through the piece) for the piece's dynamics and the part's role."""
    start, end = DYNAMICS[dynamics]
    level = start + (end - start) * position + ROLE_LEVEL[role] + accent + rng.integers(-5, 6)
    return int(np.clip(level, 15, 127))


# ---- harmony ------------------------------------------------------------------------------------
def voice_chord(chord: Chord, low: int, high: int, previous: list[int] | None = None) -> list[int]:
    """Close-position voicing of `chord` inside [low, high], nearest to the previous voicing (voice leading)."""
    pcs = chord.pcs()
    candidates = []
    for inversion in range(len(pcs)):
        order = pcs[inversion:] + pcs[:inversion]
        for base in range(low, high + 1):
            if base % 12 != order[0]:
                continue
            notes = [base]
            for pc in order[1:]:
                notes.append(notes[-1] + ((pc - notes[-1]) % 12 or 12))
            if notes[-1] <= high:
                candidates.append(notes)
    if not candidates:
        raise ValueError(f"cannot voice {chord} inside MIDI {low}-{high}")
    if previous:
        return min(candidates, key=lambda c: abs(np.mean(c) - np.mean(previous)) + abs(c[0] - previous[0]) * 0.1)
    return min(candidates, key=lambda c: abs(np.mean(c) - (low + high) / 2))


def nearest_pitch(pc: int, low: int, high: int, previous: int | None = None) -> int:
    """The pitch of class `pc` inside [low, high] nearest to `previous` (the lowest one without it)."""
    options = [p for p in range(low, high + 1) if p % 12 == pc]
    return min(options, key=lambda p: abs(p - previous)) if previous is not None else options[0]


def progression(key: Key, bars: int, sevenths: float, rng: np.random.Generator) -> list[Chord]:
    """One chord per bar, in four-bar phrases drawn from the bank (sometimes repeated). The key must be
    audible, not only true: every other phrase opens on the tonic, the others close on it, and the piece
    opens on I and closes V-I. (Forcing half cadences on V instead made the dominant sound like the
    tonic: a chroma key-finder then named the fifth for a third of the pieces.)"""
    degrees: list[int] = []
    phrase = pick(rng, PROGRESSIONS[key.mode])
    while len(degrees) < bars:
        if rng.random() > 0.4:
            phrase = pick(rng, PROGRESSIONS[key.mode])
        chunk = list(phrase)
        chunk[0 if len(degrees) // 4 % 2 == 0 else 3] = 1
        degrees.extend(chunk)
    degrees = degrees[:bars]
    degrees[0] = 1
    if bars >= 2:
        degrees[-2:] = [5, 1]
    chords = []
    for k, degree in enumerate(degrees):
        cadence = k + 1 < len(degrees) and degrees[k + 1] == 1
        harmonic = key.mode == "minor" and degree == 5 and (cadence or rng.random() < 0.7)
        chords.append(diatonic_chord(key, degree, seventh=rng.random() < sevenths, harmonic=harmonic))
    return chords


def harmonise(melody: list[NoteEvent], bar_starts: list[int], bar_ticks: int, key: Key) -> list[Chord]:
    """A chord per bar for a given melody (tunes): the diatonic triad whose tones cover most of the bar's
    melody by duration, with the bar's first note counted double and a small preference for I, IV, V."""
    options = [1, 4, 5, 6, 2] if key.mode == "major" else [1, 4, 5, 6, 3, 7]
    prefer = {1: 0.3, 4: 0.15, 5: 0.2}
    chords = []
    for start in bar_starts:
        weights = np.zeros(12)
        for on, off, pitch, _, _ in melody:
            overlap = min(off, start + bar_ticks) - max(on, start)
            if overlap > 0:
                weights[pitch % 12] += overlap * (2.0 if on <= start + 60 else 1.0)
        total = weights.sum() or 1.0
        scores = []
        for degree in options:
            chord = diatonic_chord(key, degree)
            scores.append(sum(weights[pc] for pc in chord.pcs()) / total + prefer.get(degree, 0.0))
        chords.append(diatonic_chord(key, options[int(np.argmax(scores))]))
    return chords


# ---- accompaniment textures ---------------------------------------------------------------------
def harmony_part(texture: str, program: int, chords: list[Chord], bar_starts: list[int], meter: Meter,
                 dynamics: str, total: int, rng: np.random.Generator) -> Part:
    """One accompaniment layer: block, pad, arpeggio, alberti, strum, waltz or comping."""
    part = Part(program, "harmony")
    low, high = (48, 72) if texture != "pad" else (52, 76)
    beat, bar = meter.beat_ticks, meter.bar_ticks
    subdivision = {"arpeggio": pick(rng, (2, 3, 4) if not meter.compound else (3, 6)),
                   "alberti": 2 if not meter.compound else 3}.get(texture, 1)
    strikes = pick(rng, ("beat", "bar", "half")) if texture == "block" else None
    strum = _strum_pattern(meter, rng)
    previous = None
    for chord, start in zip(chords, bar_starts):
        voicing = previous = voice_chord(chord, low, high, previous)
        vel = lambda t, accent=0: velocity(dynamics, t / total, "harmony", accent, rng)  # noqa: E731
        if texture == "pad" or (texture == "block" and strikes == "bar"):
            part.notes += [(start, start + bar, p, vel(start), 0.0) for p in voicing]
        elif texture == "block":
            step = bar // 2 if strikes == "half" and meter.beats_per_bar % 2 == 0 else beat
            for on in range(start, start + bar, step):
                part.notes += [(on, on + step - 20, p, vel(on, 6 if on == start else 0), 0.0) for p in voicing]
        elif texture in ("arpeggio", "alberti"):
            step = beat // subdivision
            tones = voicing + [voicing[0] + 12] if texture == "arpeggio" else [voicing[0], voicing[-1], voicing[1], voicing[-1]]
            if texture == "arpeggio" and rng.random() < 0.5:
                tones = tones + tones[-2:0:-1]  # up and down
            for k, on in enumerate(range(start, start + bar, step)):
                part.notes.append((on, min(on + 2 * step, start + bar), tones[k % len(tones)], vel(on), 0.0))
        elif texture == "strum":
            guitar = sorted(set([nearest_pitch(chord.pcs()[0], 40, 52)] + voice_chord(chord, 52, 71)))
            for k, (offset, down) in enumerate(strum):
                on = start + offset
                off = start + (strum[k + 1][0] if k + 1 < len(strum) else bar)
                order = guitar if down else guitar[::-1]
                spread = float(rng.uniform(0.006, 0.014))
                part.notes += [(on, off, p, vel(on, 4 if down else -6), i * spread) for i, p in enumerate(order)]
        elif texture == "waltz":
            bass_note = nearest_pitch(chord.pcs()[0], 40, 52)
            step = beat // 3 if meter.compound else beat  # oom-pah-pah on the beats; on the eighths in 6/8
            for k, on in enumerate(range(start, start + bar, step)):
                oom = k == 0 or (meter.compound and k == 3) or (meter.numerator == 4 and k == 2)
                part.notes += [(on, on + step - 30, p, vel(on, 8 if oom else -4), 0.0)
                               for p in ([bass_note] if oom else voicing)]
        elif texture == "comping":
            grid = beat // (3 if meter.compound else 2)
            slots = sorted(rng.choice(bar // grid, size=min(3, bar // grid), replace=False))
            for slot in slots:
                on = start + int(slot) * grid
                part.notes += [(on, on + grid, p, vel(on, -2), 0.0) for p in voicing]
        else:
            raise ValueError(f"unknown texture {texture!r}")
    return part


def _strum_pattern(meter: Meter, rng: np.random.Generator) -> list[tuple[int, bool]]:
    """Strum offsets in the bar (ticks) and directions (True = down), on the meter's eighth grid."""
    eighth = TICKS_PER_QUARTER // 2
    patterns = {
        "2/4": ((0, 2), (0, 2, 3), (0, 1, 2, 3)),
        "3/4": ((0, 2, 4), (0, 2, 3, 4, 5), (0, 3, 4)),
        "4/4": ((0, 2, 4, 6), (0, 2, 3, 5, 6, 7), (0, 3, 4, 6)),
        "6/8": ((0, 3), (0, 2, 3, 5), (0, 1, 2, 3, 4, 5)),
    }[meter.label]
    return [(k * eighth, k % 2 == 0 or meter.compound) for k in pick(rng, patterns)]


def bass_part(pattern: str, program: int, chords: list[Chord], bar_starts: list[int], meter: Meter, key: Key,
              dynamics: str, total: int, rng: np.random.Generator) -> Part:
    """Bass line under the chords: whole, beats, root5, octaves, oom, syncopated or walking."""
    part = Part(program, "bass")
    beat, bar = meter.beat_ticks, meter.bar_ticks
    scale = key.scale_pcs()
    root = None
    for index, (chord, start) in enumerate(zip(chords, bar_starts)):
        root = nearest_pitch(chord.pcs()[0], 33, 47, root)
        fifth = root + 7 if root + 7 <= 52 else root - 5
        vel = lambda t, accent=0: velocity(dynamics, t / total, "bass", accent, rng)  # noqa: E731
        if pattern == "whole":
            hits = [(0, bar, root)]
        elif pattern == "beats":
            hits = [(k * beat, beat, root) for k in range(meter.beats_per_bar)]
        elif pattern == "root5":
            hits = [(k * beat, beat, root if k % 2 == 0 else fifth) for k in range(meter.beats_per_bar)]
        elif pattern == "octaves":
            step = beat // (3 if meter.compound else 2)
            hits = [(k * step, step, root + 12 * (k % 2)) for k in range(bar // step)]
        elif pattern == "oom":
            hits = [(0, beat, root)] + ([(bar // 2, beat, fifth)] if meter.beats_per_bar % 2 == 0 else [])
        elif pattern == "syncopated":
            hits = [(0, beat * 3 // 2, root), (beat * 3 // 2, beat // 2, root)] if meter.beats_per_bar >= 2 else []
            hits += [(k * beat, beat, fifth if k % 2 else root) for k in range(2, meter.beats_per_bar)]
            hits = hits or [(0, bar, root)]
        elif pattern == "walking":
            following = chords[index + 1] if index + 1 < len(chords) else chords[0]
            hits = _walk(root, chord, following, meter, scale, rng)
        else:
            raise ValueError(f"unknown bass pattern {pattern!r}")
        part.notes += [(start + on, start + on + length - 15, pitch, vel(start + on, 6 if on == 0 else 0), 0.0)
                       for on, length, pitch in hits]
    return part


def _walk(root: int, chord: Chord, following: Chord, meter: Meter, scale: list[int], rng) -> list[tuple[int, int, int]]:
    """Walking bass: chord tones on the beats, then a half-step or scale step into the next root."""
    beat = meter.beat_ticks
    tones = [root] + [root + (pc - root) % 12 for pc in chord.pcs()[1:]]
    target = root + ((following.pcs()[0] - root + 6) % 12 - 6)
    pitches = [root] + [pick(rng, tones[1:]) for _ in range(meter.beats_per_bar - 2)]
    if meter.beats_per_bar >= 2:
        approach = target + pick(rng, (-1, 1)) if rng.random() < 0.5 else target + (2 if target < root else -2)
        pitches.append(approach if approach % 12 in scale or rng.random() < 0.6 else target - 1)
    return [(k * beat, beat, p) for k, p in enumerate(pitches)]


# ---- drums --------------------------------------------------------------------------------------
# Step patterns per meter: (steps per beat, {GM drum note: steps}); 'X' accent, 'x' hit, 'o' soft.
KICK, SNARE, STICK, CLAP, HAT, OPEN_HAT, PEDAL_HAT, RIDE, CRASH, TAMBOURINE, LOW_TOM, HIGH_TOM = (
    36, 38, 37, 39, 42, 46, 44, 51, 49, 54, 45, 50)
DRUM_PATTERNS = {
    "4/4": ((4, {KICK: "X.......X.x.....", SNARE: "....X.......X...", HAT: "x.x.x.x.x.x.x.x."}),
            (4, {KICK: "X...X...X...X...", CLAP: "....X.......X...", OPEN_HAT: "..x...x...x...x."}),
            (4, {KICK: "X.........X.....", STICK: "....x.......x...", HAT: "o.o.o.o.o.o.o.o."}),
            (4, {KICK: "X..x..x.X..x..x.", STICK: "x..x..x...x..x..", HAT: "oooooooooooooooo"}),
            (3, {RIDE: "x..x.xx..x.x", PEDAL_HAT: "...x.....x..", KICK: "o.........o."}),
            (4, {KICK: "X.......X.......", SNARE: "x.xxx.x.x.xxx.x.", CRASH: "x......."  "........"})),
    "2/4": ((4, {KICK: "X...X...", SNARE: "..x...x.", HAT: "x.x.x.x."}),
            (4, {KICK: "X.......", SNARE: "....X...", HAT: "x.x.x.x."}),
            (4, {KICK: "X...X...", CLAP: "....X...", OPEN_HAT: "..x...x."}),
            (4, {KICK: "X...x...", SNARE: "x.xxx.x."})),
    "3/4": ((4, {KICK: "X...........", HAT: "x...x...x...", SNARE: "....x...x..."}),
            (3, {RIDE: "x..x.xx.x", PEDAL_HAT: "...x..x..", KICK: "o........"}),
            (4, {KICK: "X.......x...", STICK: "....x.......", HAT: "x.x.x.x.x.x."}),
            (4, {KICK: "X...........", TAMBOURINE: "....x...x..."})),
    "6/8": ((6, {KICK: "X...........", SNARE: "......X.....", HAT: "x.x.x.x.x.x."}),
            (6, {KICK: "X.....x.....", SNARE: "x.xx.xx.x.x.", HAT: "x....."  "x....."}),
            (6, {KICK: "X.....X.....", TAMBOURINE: "..x.x...x.x."}),
            (6, {KICK: "X...x.......", STICK: "......x.....", RIDE: "x.x.x.x.x.x."})),
}
STEP_VELOCITY = {"X": 14, "x": 0, "o": -22}


def drum_part(kit: int, bar_starts: list[int], meter: Meter, dynamics: str, total: int, rng: np.random.Generator,
              pattern: int | None = None) -> Part:
    """A meter-appropriate groove, a crash on the first bar of each 8, and a snare fill before it."""
    part = Part(kit, "drums", is_drum=True)
    options = DRUM_PATTERNS[meter.label]
    steps_per_beat, grid = options[pattern if pattern is not None else int(rng.integers(len(options)))]
    step = meter.beat_ticks // steps_per_beat
    fills = rng.random() < 0.6
    for index, start in enumerate(bar_starts):
        hits = [(note, k, STEP_VELOCITY[c]) for note, pattern_steps in grid.items()
                for k, c in enumerate(pattern_steps) if c != "."]
        if index % 8 == 0:
            hits.append((CRASH, 0, 10))
        if fills and index % 8 == 7 and index + 1 < len(bar_starts):
            last_beat = (meter.beats_per_bar - 1) * steps_per_beat
            hits = [h for h in hits if h[1] < last_beat]
            hits += [(SNARE if k % 2 == 0 else HIGH_TOM, last_beat + k, 0) for k in range(steps_per_beat)]
        loudest = {}
        for note, k, accent in hits:  # one hit per drum and step (a pattern's crash and the phrase crash)
            loudest[(k, note)] = max(accent, loudest.get((k, note), -99))
        for (k, note), accent in sorted(loudest.items()):
            on = start + k * step
            part.notes.append((on, on + min(step, 120), note, velocity(dynamics, on / total, "drums", accent, rng), 0.0))
    return part


# ---- melody -------------------------------------------------------------------------------------
SIMPLE_CELLS = {  # rhythm cells in beats, weighted by the piece's density
    "sparse": ((F(1),), (F(2),), (F(3),), (F(3, 2), F(1, 2)), (F(1),)),
    "medium": ((F(1),), (F(1, 2), F(1, 2)), (F(3, 4), F(1, 4)), (F(3, 2), F(1, 2)), (F(2),)),
    "dense": ((F(1, 2), F(1, 2)), (F(1, 4), F(1, 4), F(1, 2)), (F(1, 2), F(1, 4), F(1, 4)), (F(1, 4),) * 4,
              (F(1, 3),) * 3),
}
COMPOUND_CELLS = {
    "sparse": ((F(1),), (F(2),), (F(2, 3), F(1, 3))),
    "medium": ((F(2, 3), F(1, 3)), (F(1, 3),) * 3, (F(1, 3), F(2, 3)), (F(1),)),
    "dense": ((F(1, 3),) * 3, (F(1, 3), F(1, 3), F(1, 6), F(1, 6)), (F(1, 2), F(1, 6), F(1, 3)), (F(1, 6),) * 6),
}


def bar_rhythm(meter: Meter, density: str, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(onset, duration) in ticks within one bar, assembled from rhythm cells."""
    cells = (COMPOUND_CELLS if meter.compound else SIMPLE_CELLS)[density]
    beats_left, position, rhythm = F(meter.beats_per_bar), 0, []
    while beats_left > 0:
        cell = pick(rng, [c for c in cells if sum(c) <= beats_left])
        for length in cell:
            ticks = int(length * meter.beat_ticks)
            rhythm.append((position, ticks))
            position += ticks
        beats_left -= sum(cell)
    return rhythm


def melody_part(program: int, chords: list[Chord], bar_starts: list[int], meter: Meter, key: Key, tempo: float,
                dynamics: str, total: int, rng: np.random.Generator) -> Part:
    """A phrase-structured line: two-bar rhythm motifs repeated, chord tones on beats, steps between,
    a long chord tone closing every fourth bar."""
    part = Part(program, "melody")
    centre = 52 if program in LOW_PROGRAMS else 79 if program in HIGH_PROGRAMS else 67 + int(rng.integers(-3, 6))
    density = pick(rng, ("sparse", "medium", "medium", "dense") if tempo < 150 else ("sparse", "medium", "medium"))
    legato = float(rng.uniform(0.55, 0.98))
    motifs = [bar_rhythm(meter, density, rng) for _ in range(2)]
    pitch = centre
    for index, (chord, start) in enumerate(zip(chords, bar_starts)):
        if index % 4 == 3 or index == len(chords) - 1:  # phrase end: a held chord tone
            rhythm = [(0, meter.bar_ticks)] if rng.random() < 0.5 else bar_rhythm(meter, "sparse", rng)
        else:
            rhythm = motifs[index % 2] if rng.random() < 0.7 else bar_rhythm(meter, density, rng)
        scale = set(key.scale_pcs())
        if chord.pcs()[1] not in scale:  # minor key, major V: the raised leading tone replaces the 7th
            scale = (scale - {(chord.pcs()[1] - 1) % 12}) | {chord.pcs()[1]}
        for k, (on, length) in enumerate(rhythm):
            strong = on % meter.beat_ticks == 0
            if index == len(chords) - 1 and k == len(rhythm) - 1:
                pool = [key.pc]  # the piece ends on the tonic
            else:
                pool = chord.pcs() if strong or k == len(rhythm) - 1 and index % 4 == 3 else sorted(scale)
            pitch = _next_pitch(pitch, pool, centre, strong, rng)
            if k > 0 and rng.random() < 0.07:
                continue  # a rest
            end = start + on + max(60, int(length * legato))
            delay = float(rng.uniform(0.0, 0.012))
            part.notes.append((start + on, end, pitch, velocity(dynamics, (start + on) / total, "melody",
                                                                 6 if on == 0 else 0, rng), delay))
    return part


def _next_pitch(current: int, pcs: list[int], centre: int, leap: bool, rng: np.random.Generator) -> int:
    """Move to a nearby pitch of `pcs` inside centre±9: mostly by step, by a small leap on strong beats."""
    candidates = [p for p in range(centre - 9, centre + 10) if p % 12 in pcs and p != current] or [current]
    distance = np.array([abs(p - current) for p in candidates], dtype=float)
    pull = np.array([abs(p - centre) for p in candidates], dtype=float) * 0.08
    weights = np.exp(-(distance / (3.5 if leap else 2.0)) - pull)
    return int(candidates[int(rng.choice(len(candidates), p=weights / weights.sum()))])


# ---- assembly -----------------------------------------------------------------------------------
def dealt(seed: int, index: int, block: int, salt: int) -> int:
    """Position of piece `index` in a shuffled block of `block` values: every block deals each value once."""
    order = np.random.default_rng([seed, index // block, salt]).permutation(block)
    return int(order[index % block])


def choose_setting(index: int, seed: int) -> tuple[Key, Meter, int, np.random.Generator]:
    key = KEYS_24[dealt(seed, index, 24, 1)]
    meter = list(METERS.values())[dealt(seed, index, 4, 2)]
    rng = np.random.default_rng([seed, index, 3])
    band = dealt(seed, index, 10, 4)  # ten 15-BPM bands over 50-200
    tempo = int(min(TEMPO_RANGE[1], TEMPO_RANGE[0] + 15 * band + int(rng.integers(0, 16))))
    return key, meter, tempo, rng


def generate_piece(index: int, seed: int, seconds: float = 30.0) -> Piece:
    """Piece `index` of the corpus drawn with `seed`: whole bars filling at most `seconds`."""
    key, meter, tempo, rng = choose_setting(index, seed)
    style = pick(rng, [s for s in STYLES if meter.label in s.meters])
    bar_seconds = ticks_to_seconds(meter.bar_ticks, meter, tempo)
    bars = max(2, int(seconds // bar_seconds))
    bar_starts = [k * meter.bar_ticks for k in range(bars)]
    total = bars * meter.bar_ticks
    dynamics = pick(rng, tuple(DYNAMICS))
    chords = progression(key, bars, style.sevenths, rng)

    parts = [harmony_part(pick(rng, style.textures), pick(rng, style.harmony), chords, bar_starts, meter,
                          dynamics, total, rng)]
    if rng.random() < 0.3:  # a second, contrasting layer
        parts.append(harmony_part(pick(rng, ("pad", "arpeggio")), pick(rng, style.harmony), chords, bar_starts,
                                  meter, dynamics, total, rng))
    if rng.random() < 0.9:
        parts.insert(0, melody_part(pick(rng, style.melody), chords, bar_starts, meter, key, tempo, dynamics,
                                    total, rng))
    if rng.random() < style.bass_probability:
        parts.append(bass_part(pick(rng, style.bass_patterns), pick(rng, style.bass), chords, bar_starts, meter,
                               key, dynamics, total, rng))
    if rng.random() < style.drum_probability:
        parts.append(drum_part(pick(rng, style.kits), bar_starts, meter, dynamics, total, rng))

    midi = to_midi(parts, meter, tempo)
    labels = piece_labels(parts, key, meter, tempo, 0, total, chords, bar_starts)
    labels.update(genre=style.name, dynamics=dynamics)
    return Piece(midi, labels, ticks_to_seconds(total, meter, tempo))


def to_midi(parts: list[Part], meter: Meter, tempo: float, pickup_ticks: int = 0) -> pretty_midi.PrettyMIDI:
    """A pretty_midi score of the parts at the exact tempo, with the meter (and pickup) as time signatures."""
    midi = pretty_midi.PrettyMIDI(resolution=TICKS_PER_QUARTER, initial_tempo=meter.quarter_bpm(tempo))
    pickup_sig = _pickup_signature(pickup_ticks)
    if pickup_sig:  # a short first bar, the usual way to write an anacrusis in MIDI
        midi.time_signature_changes.append(pretty_midi.TimeSignature(*pickup_sig, 0.0))
    start = ticks_to_seconds(pickup_ticks, meter, tempo) if pickup_sig else 0.0
    midi.time_signature_changes.append(pretty_midi.TimeSignature(meter.numerator, meter.denominator, start))
    for part in parts:
        if not part.notes:
            continue
        instrument = pretty_midi.Instrument(part.program, is_drum=part.is_drum, name=part.role)
        for on, off, pitch, vel, delay in sorted(part.notes):
            begin = ticks_to_seconds(on, meter, tempo) + delay
            instrument.notes.append(pretty_midi.Note(vel, pitch, begin, max(begin + 0.02, ticks_to_seconds(off, meter, tempo))))
        midi.instruments.append(instrument)
    return midi


def _pickup_signature(pickup_ticks: int) -> tuple[int, int] | None:
    for denominator in (4, 8, 16, 32):
        unit = TICKS_PER_QUARTER * 4 // denominator
        if pickup_ticks and pickup_ticks % unit == 0:
            return pickup_ticks // unit, denominator
    return None


def instrument_names(parts: list[Part]) -> list[str]:
    """The instruments label: GM names of the pitched parts that play (in part order), then 'Drums'."""
    names = []
    for part in parts:
        if part.notes and not part.is_drum and program_name(part.program) not in names:
            names.append(program_name(part.program))
    if any(part.is_drum and part.notes for part in parts):
        names.append(DRUMS)
    return names


def piece_labels(parts: list[Part], key: Key, meter: Meter, tempo: float, pickup_ticks: int, music_ticks: int,
                 chords: list[Chord] | None, bar_starts: list[int]) -> dict:
    """key, tempo, meter, instruments, beats, downbeats, chords (one per bar) and melody_instrument."""
    beats, downbeats = beat_grid(meter, tempo, pickup_ticks, music_ticks)
    labels = {"key": key.name, "tempo": float(tempo), "meter": meter.label, "instruments": instrument_names(parts),
              "beats": beats, "downbeats": downbeats}
    if chords:
        seconds = lambda t: round(ticks_to_seconds(t, meter, tempo), 6)  # noqa: E731
        rows = [{"start": 0.0, "end": seconds(pickup_ticks), "chord": "N"}] if pickup_ticks else []
        rows += [{"start": seconds(s), "end": seconds(s + meter.bar_ticks), "chord": str(c)} for s, c in zip(bar_starts, chords)]
        labels["chords"] = rows
    melody = [p for p in parts if p.role == "melody" and p.notes]
    if melody:
        labels["melody_instrument"] = program_name(melody[0].program)
    return labels
