"""Music theory the corpus labels rest on: pitch names, the 24 keys, scales, diatonic chords in
mir_eval syntax, meters and their beat grids, and General MIDI instrument families.

    key = parse_key("F# minor")
    key.spelled_scale()                     # ['F#', 'G#', 'A', 'B', 'C#', 'D', 'E']
    diatonic_chord(key, 5, seventh=True)    # Chord(root='C#', quality='7') -> str(...) == 'C#:7'
    METERS["6/8"].beat_ticks                # 720: the dotted quarter at 480 ticks per quarter

Spelling follows the key (letters ascend by step from the tonic), so chord roots read as a musician
would write them in that key: `Bb:maj` in F major, `E#:dim` in F# major.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import pretty_midi

TICKS_PER_QUARTER = 480  # every generated and parsed score is put on this grid before it becomes seconds

LETTERS = "CDEFGAB"
LETTER_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10)  # natural minor; the harmonic minor's raised 7th is used for V


class TheoryError(ValueError):
    """A pitch, key, chord or meter name that cannot be read; the message names it."""


def pitch_class(name: str) -> int:
    """'F#' -> 6, 'Bb' -> 10, 'E#' -> 5, 'Cb' -> 11."""
    if not name or name[0] not in LETTER_PC or any(c not in "#b" for c in name[1:]):
        raise TheoryError(f"not a pitch name: {name!r}")
    return (LETTER_PC[name[0]] + name.count("#") - name.count("b")) % 12


def spell(letter: str, pc: int) -> str:
    """The name of pitch class `pc` written on `letter` ('E', 5 -> 'E#'; 'C', 11 -> 'Cb')."""
    offset = (pc - LETTER_PC[letter] + 6) % 12 - 6  # in -6..5: how far to sharpen (+) or flatten (-)
    return letter + ("#" * offset if offset > 0 else "b" * -offset)


@dataclass(frozen=True)
class Key:
    tonic: str  # 'F#', 'Bb', ...
    mode: str  # 'major' or 'minor'

    def __post_init__(self):
        pitch_class(self.tonic)
        if self.mode not in ("major", "minor"):
            raise TheoryError(f"mode must be 'major' or 'minor', got {self.mode!r}")

    @property
    def name(self) -> str:
        return f"{self.tonic} {self.mode}"

    @property
    def pc(self) -> int:
        return pitch_class(self.tonic)

    @property
    def steps(self) -> tuple[int, ...]:
        return MAJOR_STEPS if self.mode == "major" else MINOR_STEPS

    def scale_pcs(self) -> list[int]:
        return [(self.pc + step) % 12 for step in self.steps]

    def spelled_scale(self) -> list[str]:
        start = LETTERS.index(self.tonic[0])
        return [spell(LETTERS[(start + i) % 7], pc) for i, pc in enumerate(self.scale_pcs())]

    def __str__(self) -> str:
        return self.name


def parse_key(name: str) -> Key:
    """'F# minor' -> Key('F#', 'minor'); the label format of docs/data-formats.md."""
    parts = name.split()
    if len(parts) != 2:
        raise TheoryError(f"not a key name (want e.g. 'F# minor'): {name!r}")
    return Key(parts[0], parts[1])


# The 24 keys with their usual spelling (fewest accidentals; F# major and Eb minor for the 6-accidental pair).
MAJOR_TONICS = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MINOR_TONICS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
KEYS_24 = tuple([Key(t, "major") for t in MAJOR_TONICS] + [Key(t, "minor") for t in MINOR_TONICS])


# ---- chords -------------------------------------------------------------------------------------
QUALITY_INTERVALS = {
    "maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "aug": (0, 4, 8),
    "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10), "hdim7": (0, 3, 6, 10),
    "sus4": (0, 5, 7), "sus2": (0, 2, 7),
}
SEVENTH_OF = {"maj": "maj7", "min": "min7", "dim": "hdim7"}  # diatonic sevenths; V gets '7' (below)


@dataclass(frozen=True)
class Chord:
    root: str
    quality: str

    def pcs(self) -> list[int]:
        """Pitch classes, root first."""
        return [(pitch_class(self.root) + i) % 12 for i in QUALITY_INTERVALS[self.quality]]

    def __str__(self) -> str:  # mir_eval syntax
        return f"{self.root}:{self.quality}"


def diatonic_chord(key: Key, degree: int, seventh: bool = False, harmonic: bool = True) -> Chord:
    """The chord on scale degree 1..7 of `key`. In minor, degree 5 is the harmonic minor's major V
    (`harmonic=True`, the common cadence) or the natural minor v."""
    if not 1 <= degree <= 7:
        raise TheoryError(f"scale degree must be 1..7, got {degree}")
    scale = key.scale_pcs()
    root, third, fifth, svn = (scale[(degree - 1 + k) % 7] for k in (0, 2, 4, 6))
    if key.mode == "minor" and degree == 5 and harmonic:
        third = (third + 1) % 12  # raised leading tone
    quality = {(4, 7): "maj", (3, 7): "min", (3, 6): "dim", (4, 8): "aug"}[((third - root) % 12, (fifth - root) % 12)]
    if seventh:
        if quality == "maj" and (svn - root) % 12 == 10:
            quality = "7"
        else:
            quality = SEVENTH_OF.get(quality, quality)
    return Chord(key.spelled_scale()[degree - 1], quality)


def diatonic_chord_labels(key: Key) -> set[str]:
    """Every chord label the generator may write in `key` (triads and sevenths; minor adds major V)."""
    labels = set()
    for degree in range(1, 8):
        for seventh in (False, True):
            for harmonic in (False, True):
                labels.add(str(diatonic_chord(key, degree, seventh, harmonic)))
    return labels


# ---- meters -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Meter:
    """A meter and its beat: the quarter in 2/4, 3/4, 4/4; the dotted quarter in 6/8 (the tempo unit)."""

    numerator: int
    denominator: int

    @property
    def label(self) -> str:
        return f"{self.numerator}/{self.denominator}"

    @property
    def compound(self) -> bool:
        return self.denominator == 8 and self.numerator % 3 == 0 and self.numerator > 3

    @property
    def bar_ticks(self) -> int:
        return self.numerator * TICKS_PER_QUARTER * 4 // self.denominator

    @property
    def beat_ticks(self) -> int:
        return 3 * TICKS_PER_QUARTER // 2 if self.compound else TICKS_PER_QUARTER * 4 // self.denominator

    @property
    def beats_per_bar(self) -> int:
        return self.bar_ticks // self.beat_ticks

    @property
    def bar_fraction(self) -> Fraction:
        """The bar as a fraction of a whole note (ABC's unit)."""
        return Fraction(self.numerator, self.denominator)

    def quarter_bpm(self, tempo: float) -> float:
        """Quarter notes per minute for a tempo given in this meter's beats per minute."""
        return tempo * self.beat_ticks / TICKS_PER_QUARTER


METERS = {m.label: m for m in (Meter(2, 4), Meter(3, 4), Meter(4, 4), Meter(6, 8))}


def parse_meter(label: str) -> Meter:
    if label not in METERS:
        raise TheoryError(f"unsupported meter {label!r} (supported: {', '.join(METERS)})")
    return METERS[label]


def ticks_to_seconds(ticks: float, meter: Meter, tempo: float) -> float:
    return ticks * 60.0 / (meter.quarter_bpm(tempo) * TICKS_PER_QUARTER)


def beat_grid(meter: Meter, tempo: float, pickup_ticks: int, music_ticks: int) -> tuple[list[float], list[float]]:
    """(beats, downbeats) in seconds for music that starts with a pickup of `pickup_ticks` (0: none)
    and lasts `music_ticks`. Downbeats fall at the pickup's end and every bar after it; beats inside
    the pickup are counted back from the first downbeat."""
    first = pickup_ticks % meter.beat_ticks
    beat_ticks = range(first, music_ticks, meter.beat_ticks)
    downbeat_ticks = range(pickup_ticks, music_ticks, meter.bar_ticks)
    beats = [round(ticks_to_seconds(t, meter, tempo), 6) for t in beat_ticks]
    downbeats = [round(ticks_to_seconds(t, meter, tempo), 6) for t in downbeat_ticks]
    return beats, downbeats


# ---- General MIDI -------------------------------------------------------------------------------
GM_FAMILIES = {  # family -> programs (0-based), as the General MIDI 1 standard groups them
    "piano": range(0, 8), "chromatic percussion": range(8, 16), "organ": range(16, 24),
    "guitar": range(24, 32), "bass": range(32, 40), "strings": range(40, 48), "ensemble": range(48, 56),
    "brass": range(56, 64), "reed": range(64, 72), "pipe": range(72, 80), "synth lead": range(80, 88),
    "synth pad": range(88, 96), "synth effects": range(96, 104), "ethnic": range(104, 112),
    "percussive": range(112, 120), "sound effects": range(120, 128),
}
DRUMS = "Drums"  # the instruments label of the percussion channel


def program_name(program: int) -> str:
    """The GM program name exactly as the instruments label writes it."""
    return pretty_midi.program_to_instrument_name(program)


def gm_family(program: int) -> str:
    for family, programs in GM_FAMILIES.items():
        if program in programs:
            return family
    raise TheoryError(f"not a General MIDI program (0-127): {program}")
