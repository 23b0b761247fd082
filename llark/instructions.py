"""Instruction data from clip labels: LLark's Q/A families from offline templates, and its leakage filters.

    python preprocessing/instruct.py --clips data/pipeline/clips.jsonl --out data/pipeline/qa.jsonl

    from llark.instructions import TemplateGenerator, filter_pairs
    pairs, dropped = filter_pairs(TemplateGenerator(mir_per_clip=6, seed=0).generate(clip))

Families (LLark): `mir_qa` (factual, definite answers), `captioning` (one rich description),
`reasoning` (needs background knowledge, never a single-attribute lookup), and `transcription` (the
melody as ABC, only for clips rendered from an ABC tune). Answers spell label values exactly as the
labels do, in phrasings the evaluators parse: the first "X major/minor" of a key answer is the key,
the first number of a tempo answer is the integer BPM, the first "N/M" of a meter answer is the meter,
and an instrument answer names every instrument of the label. No answer says "a major"/"a minor"
with a lower-case article, which a case-insensitive key parser would read as A major/A minor.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

FAMILIES = ("mir_qa", "captioning", "reasoning", "transcription")

# LLark dropped answers with these phrases: they betray that the answer was read, not heard, or refuse.
BANNED_PHRASES = (
    "metadata", "meta-data", "meta data", "based on the provided", "provided information", "information provided",
    "as an ai", "language model", "cannot determine", "can't determine", "unable to determine",
    "not possible to determine", "i'm sorry", "i am sorry", "i apologize", "the labels", "annotation", "json",
)
# Questions about facts no one can hear (LLark: title, artist, composer, album, movement, duration).
INAUDIBLE_QUESTION = re.compile(
    r"\b(titles?|titled|artists?|composers?|composed|album|movements?|duration|how long|length of (the|this)|"
    r"who (wrote|performed|sings|sang|recorded)|written by|songwriter|lyricist|record label)\b",
    re.IGNORECASE,
)
# ABC information fields that name inaudible facts (title, composer, source, history, lyrics ...) leave
# the transcription answer; the notes, meter, unit length, tempo and key stay.
_ABC_INAUDIBLE_FIELD = re.compile(r"^[TCAOSZNHBDFGWw]:")
KEY_RE = re.compile(r"^([A-G][#b]?) (major|minor)$")
METER_RE = re.compile(r"^([1-9]\d?)/([1-9]\d?)$")


class LabelError(ValueError):
    """A label value that does not follow docs/data-formats.md."""


class ClipsFormatError(ValueError):
    """A clips.jsonl line that cannot be used; the message names the file and line."""


def leakage_reason(pair: dict[str, str]) -> str | None:
    """Why LLark's filters drop this pair ("banned_phrase", "inaudible_question"), or None to keep it."""
    answer = pair["answer"].lower().replace("\u2019", "'")
    if any(phrase in answer for phrase in BANNED_PHRASES):
        return "banned_phrase"
    if INAUDIBLE_QUESTION.search(pair["question"]):
        return "inaudible_question"
    return None


def filter_pairs(pairs: list[dict[str, str]]) -> tuple[list[dict[str, str]], Counter]:
    """(kept pairs, drop counts by reason): the same filters for every backend."""
    kept, dropped = [], Counter()
    for pair in pairs:
        reason = leakage_reason(pair)
        if reason:
            dropped[reason] += 1
        else:
            kept.append(pair)
    return kept, dropped


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


# ----------------------------------------------------------------------------- MIR Q/A phrasings


@dataclass(frozen=True)
class Ask:
    """Question and answer phrasings about one fact; `when` says whether a clip's facts allow it."""

    questions: tuple[str, ...]
    answers: tuple[str, ...]
    when: Callable[[Facts], bool] = lambda facts: True


def _has(*names: str) -> Callable[[Facts], bool]:
    return lambda facts: all(getattr(facts, name) for name in names)


MIR_ASKS: dict[str, tuple[Ask, ...]] = {
    "key": (Ask((
        "What key is this in?", "What key is this piece in?", "What is the key of this music?",
        "Which key is the music played in?", "Can you identify the key of this clip?", "In what key is this recording?",
        "Name the key of this excerpt.", "Tell me the key of this song.", "Which major or minor key does this piece use?",
        "What key does this track sit in?", "If you had to name the home key, what would it be?",
        "What is the tonic and mode of this music?", "Identify the key of the audio.", "What key would you say this is in?",
        "What is the musical key here?", "What's the key of this clip?", "Which key is this excerpt in?",
    ), (
        "It is in {key}.", "The key is {key}.", "{key}.", "This piece is in {key}.", "The music is in the key of {key}.",
        "It sounds like {key}.", "The home key is {key}: {tonic} is the tonal centre and the mode is {mode}.",
        "{key}, with {tonic} as the tonic.", "This excerpt is in {key}.", "It's in {key}.",
    ), _has("key")),),
    "mode": (Ask((
        "Is this in a major or a minor key?", "Is the mode major or minor?", "Does this sound major or minor?",
        "Is the tonality of this piece major or minor?", "Major or minor: which mode does this music use?",
        "Would you describe the harmony as major or minor?",
    ), (
        "It is in the {mode} mode: the key is {key}.", "The mode is {mode}: the piece is in {key}.",
        "The tonality is {mode}; it is in {key}.", "It sounds {mode}, in {key}.",
    ), _has("key")), Ask((
        "Is this piece in a {mode} key?", "Does this music use the {mode} mode?",
    ), ("Yes, it is in {key}.", "Yes: the key is {key}."), _has("key")), Ask((
        "Is this piece in a {other_mode} key?", "Does this music use the {other_mode} mode?",
    ), ("No, it is in {key}, so the mode is {mode}.", "No. The key is {key}."), _has("key"))),
    "tempo": (Ask((
        "What is the tempo of this piece?", "How fast is this music?", "What's the BPM?", "At what tempo is this played?",
        "How many beats per minute is this track?", "Can you estimate the tempo in BPM?",
        "What tempo would you set a metronome to in order to play along?",
        "What is the pace of this song in beats per minute?",
        "Tell me the tempo.", "How many BPM is this excerpt?", "Estimate the tempo of this clip.",
        "At roughly what BPM does this move?", "What is the tempo, in beats per minute?",
        "How quick is the pulse of this music?",
        "Give the tempo of this recording.", "What's the tempo here?",
    ), (
        "The tempo is about {bpm} BPM.", "About {bpm} BPM.", "It moves at around {bpm} beats per minute.",
        "Roughly {bpm} BPM, which feels {feel}.", "{bpm} BPM.", "The beat is at approximately {bpm} BPM.",
        "It is played at about {bpm} beats per minute, a {feel} tempo.", "Around {bpm} BPM.",
    ), _has("tempo")),),
    "tempo_feel": (Ask((
        "Is this fast or slow?", "Is the tempo fast, moderate or slow?", "Would you call this a slow or an up-tempo piece?",
        "How would you describe the speed of this music?", "Is this music quick or relaxed in pace?",
    ), (
        "It is {feel}, at about {bpm} BPM.", "The pace is {feel}: roughly {bpm} beats per minute.",
        "I'd call it {feel}; the tempo is around {bpm} BPM.",
    ), _has("tempo")),),
    "meter": (Ask((
        "What is the time signature?", "What meter is this in?", "What's the time signature of this piece?",
        "How would you count this: what is the meter?", "In what time signature is this music?",
        "What meter does this clip use?", "How many beats are in each bar, and what is the time signature?",
        "What is the metre of this excerpt?", "Tell me the time signature of this track.",
        "Which time signature would you notate this in?", "Identify the meter of this music.",
        "Is this in duple, triple or compound time? Give the time signature.",
    ), (
        "It is in {meter}.", "The time signature is {meter}.", "{meter}.", "The meter is {meter}, with {meter_desc}.",
        "This is in {meter} time.", "It's {meter}: {meter_desc}.", "{meter}, counted as {meter_desc}.",
    ), _has("meter")),),
    "instruments": (Ask((
        "What instruments are playing?", "Which instruments can you hear?", "What instruments are in this clip?",
        "Name the instruments in this recording.", "What is the instrumentation?", "Which instruments does this piece use?",
        "List the instruments you hear.", "What instruments make up this ensemble?",
        "What are the instruments in this track?",
        "Can you identify the instruments?", "Which instruments are featured here?",
        "Describe the instrumentation of this excerpt.", "What is this music played on?",
    ), (
        "I can hear {inst}.", "The instruments are {inst}.", "This is played by {inst}.", "{inst}.",
        "The instrumentation is {inst}.", "It features {inst}.", "You can hear {inst} in this clip.",
    ), lambda f: len(f.instruments) > 1), Ask((
        "What instruments are playing?", "Which instruments can you hear?", "What is the instrumentation?",
        "Name the instruments in this recording.", "What is this music played on?", "Which instrument is playing?",
        "What instrument do you hear?", "Can you identify the instruments?",
    ), (
        "Only {inst}.", "It is played on {inst} alone.", "I can hear {inst}, playing solo.", "{inst}.",
        "The only instrument is {inst}.",
    ), lambda f: len(f.instruments) == 1)),
    "instrument_count": (Ask((
        "How many instruments are playing?", "How many different instruments can you hear?",
        "How many instruments make up this ensemble?", "Count the instruments in this clip.",
    ), (
        "{n_inst} instruments: {inst}.", "There are {n_words} instruments playing: {inst}.",
        "I count {n_words}: {inst}.",
    ), lambda f: len(f.instruments) > 1), Ask((
        "How many instruments are playing?", "How many different instruments can you hear?",
    ), ("Just one: {inst}.", "A single instrument, {inst}."), lambda f: len(f.instruments) == 1)),
    "drums": (Ask((
        "Are there drums in this clip?", "Does this track have drums?", "Can you hear a drum kit?",
        "Is there any percussion?",
    ), (
        "Yes, Drums are playing{along_drums}.", "Yes. The instruments are {inst}.",
    ), lambda f: f.drums), Ask((
        "Are there drums in this clip?", "Does this track have drums?", "Can you hear a drum kit?",
    ), (
        "No, there are no drums. The instruments are {inst}.", "No drums here. You can hear {inst}.",
    ), lambda f: bool(f.instruments) and not f.drums)),
    "instrument_presence": (Ask((
        "Is {one} part of this recording?", "Can you hear {one} in this clip?", "Does {one} play in this piece?",
    ), (
        "Yes, {one} is playing{along}.", "Yes. The instruments are {inst}.",
    ), lambda f: any(i != "Drums" for i in f.instruments)),),
    "melody": (Ask((
        "Which instrument plays the melody?", "What instrument carries the tune?", "Which instrument has the lead line?",
        "What plays the main melody here?", "Which instrument is the melody played on?",
    ), (
        "The melody is played by {melody}.", "{melody} carries the melody.", "{melody}.", "The tune is on {melody}.",
        "{melody} plays the lead line.",
    ), _has("melody")),),
    "genre": (Ask((
        "What genre is this?", "What genre is this song?", "What style of music is this?",
        "How would you classify the genre?", "Which genre does this clip belong to?", "What kind of music is this?",
        "What musical style does this piece represent?", "Can you name the genre?",
    ), (
        "The genre is {genre}.", "Its style is {genre}.", "I would classify it as {genre}.", "It sounds like {genre} music.",
        "It is {genre}.", "Stylistically, it is {genre}.",
    ), _has("genre")),),
    "dynamics": (Ask((
        "How loud is this music?", "What are the dynamics like?", "Is this played softly or loudly?",
        "What is the dynamic level of this clip?", "How intense is the volume of this performance?",
    ), (
        "The dynamics are {dynamics}.", "It is played at a {dynamics} dynamic level.", "The volume level is {dynamics}.",
        "Overall the dynamics are {dynamics}.",
    ), lambda f: bool(f.dynamics) and not f.dynamic_shape), Ask((
        "How does the loudness change over the clip?", "What are the dynamics like?", "Is this played softly or loudly?",
        "Does the volume stay the same throughout?",
    ), (
        "It is a {dynamics}, {dynamic_shape}.", "The dynamics change: a {dynamics}, {dynamic_shape}.",
        "It does not stay level. It is a {dynamics}, {dynamic_shape}.",
    ), lambda f: f.dynamic_shape)),
    "chords": (Ask((
        "What chords are played?", "Which chords can you hear?", "What is the chord progression?",
        "What harmony does this clip move through?", "Name the chords in this excerpt.",
    ), (
        "The chords are {chords}.", "It moves through {chords}.", "The progression goes {chords}.",
        "I hear {chords}.",
    ), _has("chords")), Ask((
        "What chord does it begin on?", "What is the first chord?", "Which chord opens this excerpt?",
    ), ("It opens on {first_chord}.", "The first chord is {first_chord}.", "{first_chord}."), _has("chords"))),
}
# The facts the evaluators score (and LLark's genre) come first in every clip's MIR pairs.
CORE_FACTS = ("key", "tempo", "meter", "instruments", "genre")


def _fields(facts: Facts, rng: random.Random) -> dict[str, Any]:
    """Every value a phrasing may name, computed once per clip (only for labels that exist)."""
    fields: dict[str, Any] = {}
    if facts.key:
        fields.update(key=facts.key, tonic=facts.tonic, mode=facts.mode,
                      other_mode="minor" if facts.mode == "major" else "major")
    if facts.tempo:
        fields.update(bpm=facts.bpm, feel=facts.feel)
    if facts.meter:
        fields.update(meter=facts.meter, meter_desc=meter_description(facts))
    if facts.instruments:
        one = rng.choice([i for i in facts.instruments if i != "Drums"] or ["Drums"])
        others = [i for i in facts.instruments if i != one]
        not_drums = [i for i in facts.instruments if i != "Drums"]
        fields.update(inst=join_names(facts.instruments), n_inst=number_word(len(facts.instruments)).capitalize(),
                      n_words=number_word(len(facts.instruments)), one=one,
                      along=f", along with {join_names(others)}" if others else ", on its own",
                      along_drums=f", along with {join_names(not_drums)}" if not_drums else "")
    fields.update({name: getattr(facts, name) for name in ("genre", "dynamics", "melody") if getattr(facts, name)})
    if facts.dynamic_shape:
        fields["dynamic_shape"] = _DYNAMIC_SHAPES[facts.dynamics]
    if facts.chords:
        fields.update(chords=join_names(facts.chords[:8]), first_chord=facts.chords[0])
    return fields


# ----------------------------------------------------------------------------- captioning

CAPTION_QUESTIONS = (  # LLark asked for captions with ~15 long and ~28 short phrasings
    "Describe this music in detail.", "Give a detailed description of this clip: tempo, key, instrumentation and mood.",
    "Write a rich caption for this piece of music.", "Can you describe everything you hear in this excerpt?",
    "Provide a thorough description of the audio: style, tempo, harmony and instruments.",
    "Describe the musical characteristics of this recording.",
    "Write a paragraph describing this track for a music library.",
    "Describe the sound, feel and instrumentation of this piece.", "Give me a full musical description of what you hear.",
    "Summarise the main musical features of this excerpt in a few sentences.",
    "Describe this clip as you would to someone who cannot hear it.", "Describe this music.", "Caption this clip.",
    "What does this sound like?", "Describe the audio.", "Describe this track.", "What is this music like?",
    "Summarize this clip.", "Write a caption for this audio.", "Describe the piece.", "Tell me about this music.",
    "Characterize this excerpt.", "How would you describe this?", "Describe what you hear.",
    "Give a short description of this clip.", "What's going on musically here?",
)
_FEEL_WORDS = {"slow": ("slow", "unhurried", "languid"), "moderate": ("moderately paced", "easygoing", "mid-tempo"),
               "fairly fast": ("brisk", "lively", "upbeat"), "fast": ("fast", "energetic", "driving")}
_MODE_WORDS = {"major": ("bright", "warm", "cheerful", "sunny"),
               "minor": ("wistful", "melancholic", "brooding", "dark-hued")}
_MOOD = {("major", "slow"): "calm and tender", ("major", "moderate"): "content and easygoing",
         ("major", "fairly fast"): "cheerful and lively", ("major", "fast"): "joyful and energetic",
         ("minor", "slow"): "melancholic and introspective", ("minor", "moderate"): "wistful and reflective",
         ("minor", "fairly fast"): "restless and dramatic", ("minor", "fast"): "urgent and driving"}
_TEXTURES = {2: "an intimate duo texture", 3: "a small-ensemble texture", 4: "a small-ensemble texture",
             5: "a full, layered texture"}


def caption(facts: Facts, rng: random.Random) -> str:
    """One rich description: tempo feel, key and mode, meter, instrumentation, texture, dynamics, style."""
    fields = _fields(facts, rng)
    adjectives = [rng.choice(_FEEL_WORDS[facts.feel])] if facts.tempo else []
    adjectives += [rng.choice(_MODE_WORDS[facts.mode])] if facts.key else []
    head = " ".join(filter(None, [", ".join(adjectives), rng.choice(("piece", "excerpt", "track", "performance"))]))
    where = [f"in {facts.key}"] if facts.key else []
    if facts.tempo:
        where.append(rng.choice(("at about {bpm} BPM", "moving at around {bpm} beats per minute",
                                 "at roughly {bpm} BPM")).format(**fields))
    # With neither key nor tempo there is nothing to open with but a bare noun: start with the rest.
    sentences = [f"{'An' if head[0] in 'aeiou' else 'A'} {head}" + "".join(" " + w for w in where) + "."
                 ] if adjectives or where else []
    middle = [_instruments_sentence(facts, rng, fields)] if facts.instruments or facts.melody else []
    if facts.genre:
        middle.append(rng.choice(("The style is {genre}.", "Stylistically it is {genre}.",
                                  "It has the character of {genre} music.")).format(**fields))
    if facts.meter:
        middle.append(f"The {facts.meter} meter ({fields['meter_desc']}) gives it {meter_feel(facts)}.")
    if facts.dynamic_shape:
        middle.append(rng.choice(("The dynamics follow a {dynamics}, {dynamic_shape}.",
                                  "Its loudness changes in a {dynamics}, {dynamic_shape}.")).format(**fields))
    elif facts.dynamics:
        middle.append(rng.choice(("It is played at a {dynamics} dynamic level.", "The dynamics stay {dynamics} throughout.",
                                  "Dynamically it sits at a {dynamics} level.")).format(**fields))
    if facts.chords:
        middle.append(rng.choice(("The harmony moves through {chords}.", "The chords run {chords}.")).format(**fields))
    rng.shuffle(middle)  # the order of the middle sentences varies; the opening and the close do not
    sentences += middle
    if facts.key and facts.tempo:
        mood = _MOOD[facts.mode, facts.feel]
        sentences.append(rng.choice((f"Overall it feels {mood}.", f"The result is {mood}.", f"The mood is {mood}.")))
    return " ".join(sentences)


def _instruments_sentence(facts: Facts, rng: random.Random, fields: dict[str, Any]) -> str:
    """Instrumentation, melody, texture and drums: kept together because the later sentences refer back."""
    n = len(facts.instruments)
    if n == 0:
        return f"{facts.melody} carries the melody."
    if n == 1:
        return rng.choice(("It is a solo performance on {inst}.", "The only instrument is {inst}, giving a sparse texture.",
                           "The only instrument is {inst}.")).format(**fields)
    if facts.melody in facts.instruments:
        rest = join_names([i for i in facts.instruments if i != facts.melody])
        sentences = [rng.choice((f"{facts.melody} carries the melody over {rest}.",
                                 f"{facts.melody} leads, accompanied by {rest}."))]
    else:
        sentences = [rng.choice(("The ensemble is {inst}.", "It is scored for {inst}.",
                                 "The instrumentation is {inst}.")).format(**fields)]
        sentences += [f"{facts.melody} carries the melody."] if facts.melody else []
    sentences.append(f"Together they make {_TEXTURES[min(n, 5)]}.")
    if facts.drums:
        sentences.append(rng.choice(("Drums keep a steady pulse underneath.", "Drums drive the rhythm.")))
    return " ".join(sentences)


# ----------------------------------------------------------------------------- reasoning

_SCENARIOS = {
    ("major", "slow"): "a quiet morning, reading, or winding down in the evening",
    ("major", "moderate"): "cooking, a walk in the park, or relaxed background music in a café",
    ("major", "fairly fast"): "a sunny road trip, tidying up, or an upbeat commercial",
    ("major", "fast"): "a workout, a party, or a festive celebration",
    ("minor", "slow"): "a rainy afternoon, late-night reflection, or a sad scene in a film",
    ("minor", "moderate"): "a thoughtful commute, studying, or the quieter moments of a drama",
    ("minor", "fairly fast"): "a suspenseful film scene, a tense video-game level, or a brisk run",
    ("minor", "fast"): "a chase scene, an intense workout, or a video-game boss fight",
}


@dataclass(frozen=True)
class Reasoning:
    """One kind of reasoning question: phrasings, an answer built from several facts, and what it needs."""

    questions: Callable[[Facts], tuple[str, ...]]
    answer: Callable[[Facts, random.Random], str]
    when: Callable[[Facts], bool]


def _mood(f: Facts, rng: random.Random) -> str:
    colour = "bright and open" if f.mode == "major" else "darker and more inward"
    text = (f"It is in {f.key}, and the {f.mode} mode tends to sound {colour}; at about {f.bpm} BPM the pace is "
            f"{f.feel}. Together that makes it feel {_MOOD[f.mode, f.feel]}.")
    if len(f.instruments) == 1:
        text += f" A single {f.instruments[0]} keeps it intimate."
    elif f.drums:
        text += " The Drums add physical momentum."
    return text


def _scenario(f: Facts, rng: random.Random) -> str:
    text = (f"With its {_MOOD[f.mode, f.feel]} character ({f.key}, about {f.bpm} BPM), it would suit "
            f"{_SCENARIOS[f.mode, f.feel]}.")
    if f.dynamics:
        text += (f" The dynamics ({f.dynamics}) matter too: they decide whether it stays in the background or asks "
                 "for attention.")
    return text


def _dance(f: Facts, rng: random.Random) -> str:
    top, bottom = f.meter_parts
    quick = f.feel in ("fairly fast", "fast")
    if bottom == 8 and top in (6, 12):
        dance = "a jig or another lilting folk dance" if quick else "a gentle, rocking sway, like a barcarolle"
    elif bottom == 8 and top == 9:
        dance = "a slip jig"
    elif top == 3:
        dance = "a quick Viennese-style waltz" if quick else "a waltz or a minuet"
    elif top == 2:
        dance = "a polka or a march" if quick else "a stately processional march"
    elif top == 4:
        dance = ("swing, a quickstep or energetic pop dancing" if quick else
                 "a foxtrot or relaxed social dancing" if f.feel == "moderate" else "a slow dance")
    else:
        dance = "a free, contemporary style rather than a ballroom dance, since the bars are uneven"
    text = f"It is in {f.meter} ({meter_description(f)}) at about {f.bpm} BPM, so it suits {dance}."
    if f.drums:
        text += " The drum part makes the beat easy for dancers to follow."
    elif f.instruments:
        text += " Without drums, dancers have to follow the accents of the melody and bass."
    return text


def _play_along(f: Facts, rng: random.Random) -> str:
    pentatonic = [scale_notes(f.tonic, f.mode)[d] for d in _PENTATONIC[f.mode]]
    text = (f"Play in {f.key}: the scale is {', '.join(scale_notes(f.tonic, f.mode))}, and {f.tonic} is home, so phrases "
            f"resolve well there. For simpler lines, the {f.tonic} {f.mode} pentatonic ({', '.join(pentatonic)}) "
            "avoids clashes.")
    if f.tempo:
        text += f" Set a metronome to about {f.bpm} BPM" + (f" and count in {f.meter}." if f.meter else ".")
    elif f.meter:
        text += f" Count it in {f.meter}: {meter_description(f)}."
    if f.chords:
        text += f" Follow the changes ({join_names(f.chords[:6])}) and land on chord tones when a chord arrives."
    return text


def _double(f: Facts, rng: random.Random) -> str:
    # Without a melody label nobody knows which part carries the tune, so the advice stays general.
    choices, why = _DOUBLERS.get(instrument_family(f.melody) if f.melody else "", _GENERAL_DOUBLERS)
    pick = rng.choice([c for c in choices if c not in f.instruments and c != f.melody] or list(choices))
    if f.melody:
        text = f"{f.melody} carries the tune, so {pick} could double it in unison or an octave above: {why}."
    else:
        text = (f"The arrangement has {join_names(f.instruments)}; adding {pick} to double the tune in unison or an "
                f"octave above would work, because {why}.")
    if f.key:
        text += f" Keep the doubled line in {f.key} and let it drop out at phrase ends so it does not crowd the texture."
    return text


def _change(f: Facts, rng: random.Random) -> str:
    # The current key and tempo come first, so a key or tempo parser still reads this clip's values.
    text = f"Right now it is in {f.key} at about {f.bpm} BPM. "
    if _brighter(f):
        raise_tempo = f"raise the tempo to around {round(f.bpm * 1.25)} BPM."
        if f.mode == "minor":
            text += f"Move it to {f.tonic} major, which keeps the tonic but brightens the colour, and {raise_tempo}"
        else:
            text += raise_tempo.capitalize()
        if f.instruments:  # what to do about drums is only said when the instrumentation is known
            text += " Push the Drums forward in the mix." if f.drums else " A steady drum groove would add energy."
    else:
        text += (f"Slow it to around {round(f.bpm * 0.7)} BPM and try the parallel minor ({f.tonic} minor) "
                 f"for a more reflective colour.")
        if f.instruments:
            text += (" Drop the Drums or play them with brushes." if f.drums else
                     " Thin out the texture so fewer parts play at once.")
    return text


def _brighter(f: Facts) -> bool:
    return f.mode == "minor" or f.feel in ("slow", "moderate")


def _produce(f: Facts, rng: random.Random) -> str:
    text = f"To recreate it you need {join_names(f.instruments)}."
    grid = " ".join(filter(None, (f"at about {f.bpm} BPM" if f.tempo else "", f"in {f.meter}" if f.meter else "")))
    text += f" Set the session {grid}" + (f" and keep everything in {f.key}." if f.key else ".")
    if f.drums:
        text += " Program or record the Drums first so the other parts lock to them."
    if f.genre:
        text += f" Keep the arrangement idiomatic for {f.genre}: its typical voicings and rhythms matter more than effects."
    if f.dynamic_shape:
        text += f" Automate the overall volume for the {f.dynamics}: {_DYNAMIC_SHAPES[f.dynamics]}."
    elif f.dynamics:
        text += f" Mix to a {f.dynamics} overall level to match the original feel."
    return text


REASONING = (
    Reasoning(lambda f: ("What mood does this music convey, and why?",
                         "How might this piece make a listener feel? Explain what in the music creates that feeling.",
                         "What emotions does this excerpt evoke, and which musical features are responsible?",
                         "Would this suit a happy or a sad film scene? Explain."), _mood, _has("key", "tempo")),
    Reasoning(lambda f: ("When would be a good time to listen to this?", "What setting or activity would suit this music?",
                         "Where might you hear music like this, and why does it fit?",
                         "Suggest a listening scenario for this clip."), _scenario, _has("key", "tempo")),
    Reasoning(lambda f: ("Could you dance to this? What kind of dance would fit?",
                         "What style of dance would suit this music, and why?",
                         "If you were choreographing this clip, what kind of steps would match it?"),
              _dance, _has("meter", "tempo")),
    Reasoning(lambda f: ("I want to improvise over this. What scale should I use and how should I count it?",
                         "How could a musician play along with this clip?",
                         "What would I need to know to jam along with this piece?",
                         "Give me tips for playing along with this music."), _play_along, _has("key")),
    Reasoning(lambda f: ("Which other instrument could double the melody, and why would it work?",
                         "If you wanted to add an instrument to reinforce the tune, what would you pick?",
                         "Suggest an instrument to double the melody in this piece and explain the choice."),
              _double, lambda f: bool(f.melody) or any(instrument_family(i) not in ("percussion", "bass")
                                                       for i in f.instruments)),
    Reasoning(lambda f: ("How could this be rearranged to sound brighter and more upbeat?",
                         "What would you change to make this piece feel happier?",
                         "A producer wants a more cheerful version of this. What should change?") if _brighter(f) else
              ("How could this be rearranged to sound calmer?", "What would make this piece more relaxed?",
               "How would you turn this into a gentle, reflective version?"), _change, _has("key", "tempo")),
    Reasoning(lambda f: ("How would you produce a track that sounds like this?",
                         "What would you need to recreate this sound?",
                         "If you were recording a cover of this, how would you set it up?"),
              _produce, lambda f: bool(f.instruments) and bool(f.tempo or f.meter)),
)

TRANSCRIPTION_QUESTIONS = (
    "Transcribe the melody in ABC notation.", "Write the melody of this clip in ABC notation.",
    "Can you notate this tune in ABC format?", "Give me the ABC notation for the melody you hear.",
    "Transcribe this tune as ABC.", "Write down the melody in ABC.", "What is the ABC transcription of this melody?",
    "Notate the main melody using ABC notation.",
)


# ----------------------------------------------------------------------------- the generator


@dataclass
class TemplateGenerator:
    """Offline, seeded Q/A pairs from labels; the same seed and clip always give the same pairs.

    Each family draws from its own random stream (seed, clip id and family), so changing
    `mir_per_clip` leaves a clip's captions and reasoning as they were.
    """

    mir_per_clip: int = 6
    captions: int = 1
    reasoning: int = 1
    transcriptions: int = 1
    seed: int = 0

    def generate(self, clip: dict[str, Any]) -> list[dict[str, str]]:
        facts = Facts.from_labels(clip.get("labels") or {})
        if not facts.audible():
            return []

        def rng(family: str) -> random.Random:
            return random.Random(f"{self.seed}/{clip['clip_id']}/{family}")  # str seeds are stable across processes

        return [*self.mir_pairs(facts, rng("mir_qa")), *self.caption_pairs(facts, rng("captioning")),
                *self.reasoning_pairs(facts, rng("reasoning")), *self.transcription_pairs(facts, rng("transcription"))]

    def mir_pairs(self, facts: Facts, rng: random.Random) -> list[dict[str, str]]:
        fields = _fields(facts, rng)
        options = {fact: [(q.format(**fields), ask) for ask in asks if ask.when(facts) for q in ask.questions]
                   for fact, asks in MIR_ASKS.items()}
        options = {fact: choices for fact, choices in options.items() if choices}
        core, extra = [f for f in options if f in CORE_FACTS], [f for f in options if f not in CORE_FACTS]
        rng.shuffle(core)
        rng.shuffle(extra)
        order, pairs, used, turn = core + extra, [], set(), 0
        while len(pairs) < self.mir_per_clip and order:  # round robin over the facts, no question twice
            fact = order[turn % len(order)]
            fresh = [(q, ask) for q, ask in options[fact] if q not in used]
            if not fresh:
                order.remove(fact)
                continue
            question, ask = rng.choice(fresh)
            used.add(question)
            turn += 1
            pairs.append(_pair(question, rng.choice(ask.answers).format(**fields), "mir_qa"))
        return pairs

    def caption_pairs(self, facts: Facts, rng: random.Random) -> list[dict[str, str]]:
        if not any((facts.key, facts.tempo, facts.meter, facts.instruments, facts.genre, facts.melody)):
            return []  # too little to describe
        questions = rng.sample(CAPTION_QUESTIONS, min(self.captions, len(CAPTION_QUESTIONS)))
        return [_pair(q, caption(facts, rng), "captioning") for q in questions]

    def reasoning_pairs(self, facts: Facts, rng: random.Random) -> list[dict[str, str]]:
        usable = [r for r in REASONING if r.when(facts)]
        chosen = rng.sample(usable, min(self.reasoning, len(usable)))
        return [_pair(rng.choice(r.questions(facts)), r.answer(facts, rng), "reasoning") for r in chosen]

    def transcription_pairs(self, facts: Facts, rng: random.Random) -> list[dict[str, str]]:
        if not facts.abc:
            return []
        questions = list(TRANSCRIPTION_QUESTIONS)
        if facts.melody:
            questions += [f"Transcribe the {facts.melody} melody in ABC notation.",
                          f"Write the {facts.melody} part in ABC notation."]
        answer = strip_inaudible_abc(facts.abc)
        return [_pair(q, answer, "transcription") for q in rng.sample(questions, min(self.transcriptions, len(questions)))]


def _pair(question: str, answer: str, family: str) -> dict[str, str]:
    return {"question": question, "answer": answer, "family": family}


def read_clips(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, clip) for each clips.jsonl line; a bad line is a ClipsFormatError naming file:line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: clips file not found")
    clips, first_seen = [], {}
    with path.open() as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                clip = json.loads(line)
            except json.JSONDecodeError as err:
                raise ClipsFormatError(f"{path}:{number}: not valid JSON ({err.msg})") from None
            if not isinstance(clip, dict):
                raise ClipsFormatError(f"{path}:{number}: expected a JSON object")
            clip_id = clip.get("clip_id")
            if not isinstance(clip_id, str) or not clip_id:
                raise ClipsFormatError(f"{path}:{number}: missing or empty 'clip_id'")
            if not isinstance(clip.get("labels", {}), dict):
                raise ClipsFormatError(f"{path}:{number}: 'labels' must be an object")
            if clip_id in first_seen:
                raise ClipsFormatError(f"{path}:{number}: duplicate clip_id {clip_id!r} "
                                       f"(first on line {first_seen[clip_id]})")
            first_seen[clip_id] = number
            clips.append((number, clip))
    return clips
