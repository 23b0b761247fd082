"""Clip labels as checked facts, and the small music helpers the instruction phrasings use.

    facts = Facts.from_labels(clip["labels"])     # raises LabelError for a label off docs/data-formats.md
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

_ABC_INAUDIBLE_FIELD = re.compile(r"^[TCAOSZNHBDFGWw]:")
KEY_RE = re.compile(r"^([A-G][#b]?) (major|minor)$")
METER_RE = re.compile(r"^([1-9]\d?)/([1-9]\d?)$")


class LabelError(ValueError):
    """A label value that does not follow docs/data-formats.md."""



# ----------------------------------------------------------------------------- labels as facts

_DYNAMIC_SHAPES = {"crescendo": "growing from soft to loud", "diminuendo": "fading from loud to soft"}
_CHORD_QUALITIES = {"maj": " major", "min": " minor", "7": "7", "maj7": "maj7", "min7": "m7", "dim": " diminished",
                    "aug": " augmented", "sus2": "sus2", "sus4": "sus4", "dim7": "dim7", "hdim7": "m7b5"}


def readable_chord(symbol: str) -> str | None:
    """mir_eval chord -> words ("F#:min" -> "F# minor", "G:7" -> "G7"); None for no chord (N, X)."""
    if symbol in ("N", "X"):
        return None
    root, _, quality = symbol.partition(":")
    quality = quality.split("/")[0]  # the bass note of an inversion is not asked about
    if not re.fullmatch(r"[A-G][#b]*", root):
        raise LabelError(f"label 'chords': {symbol!r} is not a mir_eval chord")
    return root + _CHORD_QUALITIES.get(quality or "maj", f":{quality}")


def _text(labels: dict, name: str) -> str | None:
    value = labels.get(name)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise LabelError(f"label {name!r}: expected a non-empty string, got {value!r}")
    return value.strip() if value is not None else None


@dataclass(frozen=True)
class Facts:
    """The audible facts of one clip, checked against docs/data-formats.md; absent labels stay None/()."""

    key: str | None = None
    tempo: float | None = None
    meter: str | None = None
    instruments: tuple[str, ...] = ()
    genre: str | None = None
    dynamics: str | None = None
    melody: str | None = None
    chords: tuple[str, ...] = ()  # readable names, consecutive repeats merged
    abc: str | None = None

    @classmethod
    def from_labels(cls, labels: dict[str, Any]) -> Facts:
        if not isinstance(labels, dict):
            raise LabelError(f"labels: expected an object, got {type(labels).__name__}")
        key, meter, tempo = _text(labels, "key"), _text(labels, "meter"), labels.get("tempo")
        if key is not None and not KEY_RE.match(key):
            raise LabelError(f"label 'key': expected e.g. 'F# minor', got {key!r}")
        if meter is not None and not METER_RE.match(meter):
            raise LabelError(f"label 'meter': expected e.g. '6/8', got {meter!r}")
        if tempo is not None and (isinstance(tempo, bool) or not isinstance(tempo, (int, float))
                                  or not math.isfinite(tempo) or not 10 <= tempo <= 400):
            raise LabelError(f"label 'tempo': expected BPM between 10 and 400, got {tempo!r}")
        instruments = labels.get("instruments") or []
        if not isinstance(instruments, list) or not all(isinstance(i, str) and i.strip() for i in instruments):
            raise LabelError(f"label 'instruments': expected a list of names, got {instruments!r}")
        chords = labels.get("chords") or []
        if not isinstance(chords, list) or not all(isinstance(c, dict) and isinstance(c.get("chord"), str) for c in chords):
            raise LabelError("label 'chords': expected a list of {start, end, chord}")
        names = [name for name in (readable_chord(c["chord"]) for c in chords) if name]
        return cls(key=key, tempo=None if tempo is None else float(tempo), meter=meter,
                   instruments=tuple(dict.fromkeys(i.strip() for i in instruments)), genre=_text(labels, "genre"),
                   dynamics=_text(labels, "dynamics"), melody=_text(labels, "melody_instrument"),
                   chords=tuple(n for i, n in enumerate(names) if i == 0 or n != names[i - 1]), abc=_text(labels, "abc"))

    @property
    def tonic(self) -> str:
        return self.key.split()[0]

    @property
    def mode(self) -> str:
        return self.key.split()[1]

    @property
    def bpm(self) -> int:
        return int(math.floor(self.tempo + 0.5))  # half up (96.5 -> 97), as people round a tempo

    @property
    def feel(self) -> str:
        """slow < 76 <= moderate < 108 <= fairly fast < 140 <= fast (BPM)."""
        return "slow" if self.bpm < 76 else "moderate" if self.bpm < 108 else "fairly fast" if self.bpm < 140 else "fast"

    @property
    def meter_parts(self) -> tuple[int, int]:
        top, bottom = self.meter.split("/")
        return int(top), int(bottom)

    @property
    def dynamic_shape(self) -> bool:
        """True when the dynamics label names a change (crescendo, diminuendo), not a level (soft, loud)."""
        return self.dynamics in _DYNAMIC_SHAPES

    @property
    def drums(self) -> bool:
        return "Drums" in self.instruments

    def audible(self) -> bool:
        return any((self.key, self.tempo, self.meter, self.instruments, self.genre, self.dynamics, self.melody,
                    self.chords, self.abc))


# ----------------------------------------------------------------------------- small music helpers

_LETTERS = "CDEFGAB"
_NATURAL = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_STEPS = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
_PENTATONIC = {"major": (0, 1, 2, 4, 5), "minor": (0, 2, 3, 4, 6)}  # the scale degrees kept
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
_NOTE_VALUES = {1: "whole-note beats", 2: "half-note beats", 4: "quarter-note beats", 8: "eighth-note beats",
                16: "sixteenth-note beats"}


def scale_notes(tonic: str, mode: str) -> list[str]:
    """The spelled major or natural minor scale, one letter per degree ("F#", "minor" -> F# G# A B C# D E)."""
    pitch = (_NATURAL[tonic[0]] + tonic.count("#") - tonic.count("b")) % 12
    start = _LETTERS.index(tonic[0])
    notes = []
    for degree, step in enumerate(_STEPS[mode]):
        letter = _LETTERS[(start + degree) % 7]
        shift = (pitch + step - _NATURAL[letter]) % 12
        shift = shift - 12 if shift > 6 else shift
        notes.append(letter + ("#" * shift if shift > 0 else "b" * -shift))
    return notes


def join_names(names: list[str] | tuple[str, ...]) -> str:
    """"A", "A and B", "A, B and C"."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def number_word(n: int) -> str:
    return _NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else str(n)


def meter_description(facts: Facts) -> str:
    top, bottom = facts.meter_parts
    if bottom == 8 and top % 3 == 0 and top > 3:  # compound meter: the beat is a dotted quarter
        return f"{number_word(top // 3)} dotted-quarter beats per bar, each split into three"
    return f"{number_word(top)} {_NOTE_VALUES.get(bottom, 'beats')} per bar"


def meter_feel(facts: Facts) -> str:
    top, bottom = facts.meter_parts
    if bottom == 8 and top % 3 == 0 and top > 3:
        return "a lilting, rolling swing"
    return {2: "a crisp, march-like two-beat pulse", 3: "a swaying, waltz-like lilt",
            4: "a steady, even pulse"}.get(top, "an asymmetric, off-kilter pulse")


# General MIDI names -> family by the first keyword found (order matters: "English Horn" before "Horn").
_FAMILY_KEYWORDS = (
    ("Drums", "percussion"), ("Timpani", "percussion"), ("Bass", "bass"), ("Contrabass", "bass"), ("Tuba", "brass"),
    ("Harpsichord", "keys"), ("Piano", "keys"), ("Clavinet", "keys"), ("Organ", "keys"), ("Accordion", "keys"),
    ("Guitar", "guitar"), ("Banjo", "plucked"), ("Sitar", "plucked"), ("Koto", "plucked"), ("Harp", "plucked"),
    ("Violin", "strings"), ("Fiddle", "strings"), ("Viola", "strings"), ("Cello", "strings"), ("String", "strings"),
    ("English Horn", "reed"), ("Sax", "reed"), ("Oboe", "reed"), ("Clarinet", "reed"), ("Bassoon", "reed"),
    ("Harmonica", "reed"), ("Bagpipe", "reed"), ("Trumpet", "brass"), ("Trombone", "brass"), ("Horn", "brass"),
    ("Brass", "brass"), ("Flute", "flute"), ("Piccolo", "flute"), ("Recorder", "flute"), ("Whistle", "flute"),
    ("Ocarina", "flute"), ("Choir", "voice"), ("Voice", "voice"), ("Vibraphone", "mallets"), ("Marimba", "mallets"),
    ("Xylophone", "mallets"), ("Glockenspiel", "mallets"), ("Celesta", "mallets"), ("Kalimba", "mallets"),
    ("Lead", "synth"), ("Pad", "synth"), ("Synth", "synth"),
)
# Which GM instruments double a line of each family well, and why (background knowledge for reasoning).
_DOUBLERS = {
    "keys": (("Violin", "Flute", "Clarinet"), "a sustained voice smooths over the decay of struck or keyed notes"),
    "guitar": (("Flute", "Violin", "Clarinet"), "a sustained timbre fills in between the plucked attacks"),
    "plucked": (("Flute", "Violin"), "a bowed or blown line adds sustain to the plucked notes"),
    "strings": (("Flute", "Clarinet", "Oboe"), "a woodwind in unison or an octave up adds edge without masking the strings"),
    "reed": (("Violin", "Flute", "Muted Trumpet"), "a contrasting colour in unison thickens the line"),
    "brass": (("Alto Sax", "Trombone", "French Horn"), "a reed or another brass voice blends naturally with brass"),
    "flute": (("Violin", "Oboe", "Glockenspiel"), "a brighter timbre an octave below or above gives the line more presence"),
    "voice": (("Violin", "Cello", "Flute"), "singing, sustained instruments follow a vocal line naturally"),
    "mallets": (("Flute", "Acoustic Guitar (nylon)"), "a soft, sustained or plucked colour blends with mallet tones"),
    "synth": (("Alto Sax", "Violin", "Flute"), "an acoustic colour warms up a synthetic lead"),
    "bass": (("Cello", "Bassoon"), "a low bowed or reed voice reinforces a bass line without muddying it"),
}


_GENERAL_DOUBLERS = (("Violin", "Flute", "Clarinet", "Oboe"),
                     "a sustained voice on the tune makes it stand out without changing the harmony")


def instrument_family(name: str) -> str | None:
    """General MIDI instrument name -> family ("Fretless Bass" -> "bass"); None when unknown."""
    return next((family for word, family in _FAMILY_KEYWORDS if word in name), None)


def strip_inaudible_abc(abc: str) -> str:
    """The ABC without its title, composer, source, history or lyrics lines (no one can hear those)."""
    return "\n".join(line for line in abc.strip().splitlines() if not _ABC_INAUDIBLE_FIELD.match(line))


