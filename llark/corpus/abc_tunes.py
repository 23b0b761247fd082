"""Real tunes from music21's shipped ABC collections, cut to whole bars and labelled from their headers.

    sources = list_tunes(["oneills1850", "ryansMammoth", "airdsAirs"])    # every tune, in a stable order
    piece = tune_piece(sources[12], seed=0, seconds=30.0)                  # raises TuneError when unusable
    chosen, rejected = choose_tunes(sources, count=200, seed=0)            # collections taking turns
    piece.labels["abc"]                                                    # exactly the bars that sound

A tune is read as: header (K: with mode, M:, L:, Q:, T:, R:) and body split into bars. Repeats are
played once, with the last ending (first endings are dropped); a tune that is too short is played
again from the top when its last bar completes the pickup. The bar durations are computed from the
ABC text, the downbeat grid is anchored at the end of the pickup, and the excerpt keeps the longest
run of bars on that grid that fits the target length. The excerpt's ABC (header + those bars, chord
symbols and annotations removed) is parsed with symusic's embedded abc2midi, and every bar that
starts with a note is checked to start on its downbeat in the parse: labels and audio agree.
Only major and minor keys (not modes) and the meters 2/4, 3/4, 4/4 (C) and 6/8 are used.
"""

from __future__ import annotations

import re
import zlib
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from llark.abc import AbcError, BarInfo, measure_bar, parse_fraction, run_abc2midi, split_tunes
from llark.corpus.generate import (
    DYNAMICS, Part, Piece, bass_part, drum_part, harmonise, harmony_part, pick, piece_labels, to_midi, velocity,
)
from llark.corpus.theory import METERS, TICKS_PER_QUARTER, Key, Meter, TheoryError, ticks_to_seconds

# The printed sources are out of copyright; the ABC encodings ship with music21 "with the permission of
# the encoders" (music21/corpus/license.txt), so both facts go into each track's licence.
PUBLIC_DOMAIN = ("public domain source ({book}, {year}); ABC encoding as shipped in music21's corpus, "
                 "distributed with the encoder's permission (music21 corpus/license.txt)")
COLLECTIONS = {  # music21 corpus folder -> track-id prefix, licence, provenance
    "oneills1850": ("oneills1850", PUBLIC_DOMAIN.format(book="O'Neill's Music of Ireland", year=1903),
                    "O'Neill's Music of Ireland (1850 tunes), music21 corpus"),
    "ryansMammoth": ("ryansmammoth", PUBLIC_DOMAIN.format(book="Ryan's Mammoth Collection", year=1883),
                     "Ryan's Mammoth Collection, music21 corpus"),
    "airdsAirs": ("airdsairs", PUBLIC_DOMAIN.format(book="Aird's Selection of Airs", year="1778-1803"),
                  "Aird's Selection of Airs, music21 corpus"),
    "essenFolksong": ("essen", "non-commercial research use only (Essen Folksong Collection, as shipped in music21's corpus)",
                      "Essen Folksong Collection, music21 corpus"),
}
DEFAULT_COLLECTIONS = ("oneills1850", "ryansMammoth", "airdsAirs")
GENRES = {"reel": "reel", "jig": "jig", "double jig": "jig", "single jig": "jig", "hornpipe": "hornpipe",
          "strathspey": "strathspey", "clog": "clog", "air": "air", "highland fling": "fling", "fling": "fling",
          "waltz": "waltz", "polka": "polka", "march": "march", "slide": "slide", "quickstep": "march"}
MELODY_PROGRAMS = (40, 110, 73, 72, 78, 74, 21, 23, 22, 71, 68, 0, 6, 105, 15, 24, 25, 11, 12, 13, 56, 65, 64,
                   75, 79, 109, 80, 4, 16, 19, 107, 108, 46)
ACCOMPANIMENT = {"textures": ("strum", "arpeggio", "block", "pad", "waltz"),
                 "harmony": (25, 24, 0, 21, 46, 48, 4, 15, 105, 6, 19, 89),
                 "bass_patterns": ("root5", "beats", "oom", "whole"), "bass": (32, 43, 33, 35), "kits": (0, 8, 40)}


class TuneError(ValueError):
    """A tune that cannot be used; the message names the file, the tune and the problem."""


@dataclass(frozen=True)
class TuneSource:
    collection: str  # music21 corpus folder
    path: str  # the .abc file
    number: str  # its X: field
    index: int  # position in the collection (stable: sorted files, then file order)
    text: str

    @property
    def track_id(self) -> str:
        return f"{COLLECTIONS[self.collection][0]}-{self.index:04d}"

    @property
    def where(self) -> str:
        return f"{Path(self.path).parent.name}/{Path(self.path).name} X:{self.number}"


def list_tunes(collections=DEFAULT_COLLECTIONS) -> list[TuneSource]:
    """Every tune of the named music21 corpus collections, in a stable order."""
    import music21  # imported here: building the path list is the only use, and the import is slow

    unknown = set(collections) - set(COLLECTIONS)
    if unknown:
        raise ValueError(f"unknown ABC collections {sorted(unknown)} (known: {sorted(COLLECTIONS)})")
    paths = music21.corpus.getPaths(fileExtensions=["abc"])
    sources = []
    for collection in collections:
        files = sorted(str(p) for p in paths if Path(p).parent.name == collection)
        index = 0
        for path in files:
            for number, text in split_tunes(Path(path).read_text(encoding="utf-8", errors="replace")):
                sources.append(TuneSource(collection, path, number, index, text))
                index += 1
    return sources


def seeded_queues(sources: list[TuneSource], seed: int) -> list[deque]:
    """One queue per collection (in first-seen order), each a seeded shuffle of its tunes."""
    queues = []
    for collection in dict.fromkeys(s.collection for s in sources):
        members = [s for s in sources if s.collection == collection]
        order = np.random.default_rng([seed, zlib.crc32(collection.encode())]).permutation(len(members))
        queues.append(deque(members[i] for i in order))
    return queues


def choose_tunes(sources: list[TuneSource], count: int, seed: int, seconds: float = 30.0,
                 known: set[str] = frozenset(), progress: bool = False):
    """`count` usable tunes: the collections take turns, and a turn lasts until one of its tunes yields a
    piece, so every collection gets its share however many of its tunes are skipped.

    Returns (chosen, rejected): chosen is [(source, piece)] (piece None for track ids in `known`, which
    count as usable without a check: finished work), rejected is [(source, reason)]."""
    from tqdm import tqdm

    queues, chosen, rejected = seeded_queues(sources, seed), [], []
    with tqdm(total=count, desc="choosing tunes", unit="tune", disable=not progress) as bar:
        while len(chosen) < count and queues:
            for queue in list(queues):
                while queue and len(chosen) < count:
                    source = queue.popleft()
                    if source.track_id in known:
                        chosen.append((source, None))
                        break
                    try:
                        chosen.append((source, tune_piece(source, seed, seconds)))
                        break
                    except Exception as err:  # TuneError, or anything abc2midi or the parse raised: recorded
                        rejected.append((source, f"{type(err).__name__}: {err}"))
                        bar.set_postfix(skipped=len(rejected))
                bar.n = len(chosen)
                bar.refresh()
                if not queue:
                    queues.remove(queue)
    return chosen, rejected


# ---- header -------------------------------------------------------------------------------------
MODES = {"": "major", "maj": "major", "major": "major", "ion": "major", "ionian": "major",
         "m": "minor", "min": "minor", "minor": "minor", "aeo": "minor", "aeolian": "minor"}


def parse_key_field(value: str) -> Key:
    """'Gm', 'E Minor', 'F#', 'Bb maj' -> Key; modes other than major/minor raise TheoryError."""
    words = [w for w in value.split() if "=" not in w]  # drop clef=..., octave=... settings
    match = re.fullmatch(r"([A-G][#b]?)(.*)", words[0]) if words else None
    if not match:
        raise TheoryError(f"no tonic in K:{value}")
    mode_words = [match.group(2)] + words[1:]
    mode = "".join(mode_words).strip().lower()
    if mode not in MODES:
        raise TheoryError(f"unsupported key K:{value} (only major and minor keys are labelled)")
    return Key(match.group(1), MODES[mode])


@dataclass
class Tune:
    source: TuneSource
    title: str
    key: Key
    key_text: str
    meter: Meter
    unit: Fraction  # L:, as a fraction of a whole note
    header_tempo: float | None  # Q: converted to the meter's beats per minute
    genre: str
    bars: list[str]  # the bars in playing order (repeats once, last ending)


def read_tune(source: TuneSource) -> Tune:
    """Header and linearised bars of one tune; TuneError for anything unsupported or malformed."""
    fields: dict[str, str] = {}
    lines = source.text.splitlines()
    body_start = None
    for i, line in enumerate(lines):
        match = re.match(r"([A-Za-z]):(.*)", line)
        if match and match.group(1) not in fields:
            fields[match.group(1)] = match.group(2).split("%")[0].strip()
        if match and match.group(1) == "K":
            body_start = i + 1
            break
    if body_start is None:
        raise TuneError(f"{source.where}: no K: field ends the header")
    try:
        key = parse_key_field(fields["K"])
        meter_text = fields.get("M", "").replace(" ", "")
        meter_text = {"C": "4/4"}.get(meter_text, meter_text)
        if meter_text not in METERS:
            raise TheoryError(f"unsupported meter M:{fields.get('M', '(none)')}")
        meter = METERS[meter_text]
        unit = parse_fraction(fields["L"], "L:") if "L" in fields else Fraction(1, 16 if meter.numerator / meter.denominator < 0.75 else 8)
    except (TheoryError, AbcError) as err:
        raise TuneError(f"{source.where}: {err}") from None
    tempo = None
    q = re.search(r"(\d+)\s*/\s*(\d+)\s*=\s*(\d+)", fields.get("Q", ""))
    if q:  # Q:1/4=96 counts quarters; the label counts the meter's beat (the dotted quarter in 6/8)
        beat = Fraction(meter.beat_ticks, 4 * TICKS_PER_QUARTER)
        tempo = float(int(q.group(3)) * Fraction(int(q.group(1)), int(q.group(2))) / beat)
    rhythm = fields.get("R", "").strip().lower()
    bars = linear_bars(source, lines[body_start:])
    return Tune(source, fields.get("T", ""), key, fields["K"], meter, unit, tempo, GENRES.get(rhythm, "folk"), bars)


# ---- body ---------------------------------------------------------------------------------------
BARLINE = re.compile(r"(\[\|\]|\[\|:*|:*\|[\]|]*:*|::+)(\d+(?:[,-]\d+)*)?|\[(\d+(?:[,-]\d+)*)")


@dataclass
class _Bar:
    content: str
    ending: bool  # opens a numbered ending (|1, :|2, [2)
    repeat_end: bool = False  # closed by :| (leads back to the start of the repeat)
    section_end: bool = False  # closed by ||, |], or a repeat sign


def _scan_bars(text: str) -> list[_Bar]:
    bars, position, ending = [], 0, False
    for match in BARLINE.finditer(text + " |"):
        content = text[position:match.start()].strip()
        position = match.end()
        barline, number, bracket = match.groups()
        if bracket is not None:  # '[2' opens an ending
            if content:
                bars.append(_Bar(content, ending))
            ending = True
            continue
        repeat_end = barline.startswith(":")  # :|  ::  :|]
        if content:
            bars.append(_Bar(content, ending, repeat_end, "||" in barline or "]" in barline or ":" in barline))
            ending = False
        elif bars and repeat_end:
            bars[-1].repeat_end = bars[-1].section_end = True
        if number is not None:
            ending = True
    return bars


def _ending_close(bars: list[_Bar], start: int) -> int | None:
    """Index of the bar whose `:|` closes the ending opened at `start`, if it does so within 4 bars."""
    for j in range(start, min(start + 4, len(bars))):
        if bars[j].repeat_end:
            return j
        if bars[j].section_end or (j > start and bars[j].ending):
            return None
    return None


def linear_bars(source: TuneSource, body: list[str]) -> list[str]:
    """The body's bars in playing order: repeats played once, endings that lead back (`:|`) dropped."""
    kept = []
    for line in body:
        line = line.split("%")[0].rstrip()
        if re.match(r"[A-Za-z]:", line):
            if line[0] in "KMLVUm":
                raise TuneError(f"{source.where}: a {line[0]}: field inside the tune (key, meter, length or voice change)")
            continue  # lyrics, notes, part names: not music
        kept.append(line[:-1] if line.endswith("\\") else line)
    text = re.sub(r'"[^"]*"', "", " ".join(kept))  # chord symbols and annotations: we harmonise ourselves
    if match := re.search(r"\[[A-Za-z]:[^\]]*\]", text):
        raise TuneError(f"{source.where}: inline field {match.group()} (changes inside a tune are not used)")
    text = re.sub(r"![^!\s]*!", "", text).replace("!", " ")  # !decorations!; a lone ! is an old line break
    # Marks without sound that abc2midi rejects or ignores (bowing u/v, fingering k, `), and the
    # fermata H and segno/coda S/O, which abc2midi would lengthen or jump on: a rendered bar must keep its length.
    text = re.sub(r"[uvkHSOV`]", "", text)
    bars = _scan_bars(text)
    linear, i = [], 0
    while i < len(bars):
        close = _ending_close(bars, i) if bars[i].ending else None
        if close is not None:
            i = close + 1
            continue
        linear.append(bars[i].content)
        i += 1
    if not linear:
        raise TuneError(f"{source.where}: the tune has no bars")
    return linear


# ---- bar durations ------------------------------------------------------------------------------
def bar_durations(bar: str, meter: Meter, where: str) -> BarInfo:
    """Duration (in L units) and first onset of one bar's ABC text: notes, rests, chords, tuplets; grace
    notes, decorations and slurs take no time, and broken rhythm (>, <) keeps the sum of its pair.
    llark.abc's bar reader in strict mode: a symbol the excerpt cannot carry is a TuneError."""
    try:
        return measure_bar(bar, compound=meter.compound, where=where, strict=True)
    except AbcError as err:
        raise TuneError(str(err)) from None


# ---- excerpt ------------------------------------------------------------------------------------
@dataclass
class Excerpt:
    abc: str  # header + the rendered bars
    pickup_ticks: int
    music_ticks: int
    bar_starts: list[int]  # ticks of written bars that open with a struck note (checked against the parse)
    first_onset: int  # tick of the first struck note


def make_excerpt(tune: Tune, tempo: float, seconds: float, min_seconds: float) -> Excerpt:
    """The longest run of whole bars on the downbeat grid that lasts at most `seconds` at `tempo`."""
    where, meter, bar = tune.source.where, tune.meter, tune.meter.bar_ticks
    per_unit = tune.unit * 4 * TICKS_PER_QUARTER  # ticks per L unit
    infos = [bar_durations(text, meter, where) for text in tune.bars]
    exact = [info.duration * per_unit for info in infos]
    if any(t.denominator != 1 or t == 0 for t in exact):
        raise TuneError(f"{where}: a bar is empty or its length is off the {TICKS_PER_QUARTER}-ticks-per-quarter grid")
    ticks = [int(t) for t in exact]
    pickup = ticks[0] if ticks[0] < bar else 0
    if ticks[0] > bar and ticks[0] % bar:
        raise TuneError(f"{where}: the first bar is longer than the meter and not a whole number of bars")
    bars, full = list(tune.bars), sum(ticks)
    if full % bar == 0 and ticks_to_seconds(full, meter, tempo) < seconds:  # play it again from the top
        passes = min(4, int(seconds // ticks_to_seconds(full, meter, tempo)) + 1)
        bars, ticks, infos = bars * passes, ticks * passes, infos * passes
    limit = seconds * meter.quarter_bpm(tempo) * TICKS_PER_QUARTER / 60.0  # the target length in ticks
    position, cut, off_grid = 0, 0, False
    for k, length in enumerate(ticks):
        position += length
        on_grid = position >= pickup and (position - pickup) % bar == 0
        if (not on_grid and off_grid) or position > limit + 1e-6:
            break  # past the target, or two barlines in a row off the grid: the bars stopped adding up
        off_grid = not on_grid
        if on_grid and position > pickup:
            cut = k + 1
    music = sum(ticks[:cut])
    if cut == 0 or ticks_to_seconds(music, meter, tempo) < min_seconds:
        raise TuneError(f"{where}: only {ticks_to_seconds(music, meter, tempo):.1f} s of regular whole bars "
                        f"at {tempo:g} BPM (need {min_seconds:g} s)")
    starts = np.cumsum([0] + ticks[:cut - 1]).tolist()
    opening = [s for k, s in enumerate(starts) if infos[k].first_note == 0 and not (k and infos[k - 1].tied_out)]
    first = next(s + infos[k].first_note * per_unit for k, s in enumerate(starts) if infos[k].first_note is not None)
    return Excerpt(excerpt_abc(tune, bars[:cut], tempo), pickup, music, opening, round(first))


def excerpt_abc(tune: Tune, bars: list[str], tempo: float) -> str:
    beat = "3/8" if tune.meter.compound else "1/4"
    header = ["X:1", f"T:{tune.title}" if tune.title else None, f"M:{tune.meter.label}",
              f"L:{tune.unit.numerator}/{tune.unit.denominator}", f"Q:{beat}={tempo:g}", f"K:{tune.key_text}"]
    bars = bars[:-1] + [re.sub(r"-[\s)]*$", "", bars[-1])]  # a tie out of the last bar has nowhere to go
    lines = [" | ".join(bars[i:i + 4]) for i in range(0, len(bars), 4)]
    return "\n".join([h for h in header if h] + [" |\n".join(lines) + " |]"]) + "\n"


def abc_notes(abc: str, where: str) -> tuple[list[tuple[int, int, int, int]], int]:
    """(notes as (start tick, end tick, pitch, velocity) at 480 ticks per quarter, sorted; abc2midi's
    ticks per quarter) of a one-voice tune, from abc2midi run as symusic runs it (-silent). Any message
    abc2midi calls an error refuses the tune: the corpus wants tunes it reads without complaint."""
    import symusic

    run = run_abc2midi(abc, ("-silent",))
    errors = [m.raw for m in run.messages if "error" in m.raw.lower()]
    if run.midi is None or errors:
        reasons = "; ".join(errors[:2]) or "no MIDI written"
        raise TuneError(f"{where}: abc2midi could not parse the tune ({reasons})")
    score = symusic.Score.from_midi(run.midi)
    tracks = [t for t in score.tracks if len(t.notes)]
    if len(tracks) != 1:
        raise TuneError(f"{where}: abc2midi produced {len(tracks)} voices; one melody was expected")
    scale = Fraction(TICKS_PER_QUARTER, score.ticks_per_quarter)
    notes = sorted((int(n.time * scale), int((n.time + n.duration) * scale), n.pitch, n.velocity)
                   for n in tracks[0].notes)
    return notes, score.ticks_per_quarter


def parse_excerpt(excerpt: Excerpt, where: str) -> list[tuple[int, int, int, int]]:
    """The excerpt's notes (start tick, end tick, pitch, velocity), checked against the bar grid:
    every bar that opens with a note must have an onset on its first tick in abc2midi's parse."""
    notes, _ = abc_notes(excerpt.abc, where)
    shift = notes[0][0] - excerpt.first_onset  # abc2midi starts notes one tick late
    if shift not in (0, 1):
        raise TuneError(f"{where}: the first note sounds at tick {notes[0][0]}, the bar parse says {excerpt.first_onset}")
    onsets = {n[0] - shift for n in notes}
    missing = [s for s in excerpt.bar_starts if s not in onsets]
    if missing or notes[-1][0] - shift >= excerpt.music_ticks:
        raise TuneError(f"{where}: abc2midi's timing disagrees with the bar parse (no onset at ticks {missing[:3]}, "
                        f"last onset {notes[-1][0] - shift} of {excerpt.music_ticks})")
    return [(on - shift, min(off - shift, excerpt.music_ticks), pitch, vel) for on, off, pitch, vel in notes]


def check_final_note(tune: Tune) -> None:
    """The header's key must be the tune's home: a tune whose last note is not the tonic is most often a
    mode written with its parent key signature (A dorian as K:G), or ends on a D.C.; its key is unknown."""
    notes, _ = abc_notes(excerpt_abc(tune, tune.bars, 120.0), tune.source.where)
    final = notes[-1][2] % 12
    if final != tune.key.pc:
        raise TuneError(f"{tune.source.where}: the tune ends on pitch class {final}, not on the tonic of "
                        f"K:{tune.key_text} (a mode or a D.C. ending; its key is not labelled)")


# ---- the piece ----------------------------------------------------------------------------------
def tune_piece(source: TuneSource, seed: int, seconds: float = 30.0, accompany: float = 0.6,
               min_seconds: float | None = None) -> Piece:
    """A labelled piece from one tune: the melody on a chosen instrument, often with accompaniment.
    Tunes with fewer than `min_seconds` (default 0.4 * seconds) of regular bars are refused."""
    min_seconds = 0.4 * seconds if min_seconds is None else min_seconds
    rng = np.random.default_rng([seed, zlib.crc32(source.track_id.encode()), 7])
    tune = read_tune(source)
    drawn = int(rng.integers(50, 201))  # drawn even when unused, so later choices do not depend on Q:
    header = tune.header_tempo  # used when it is a whole number of beats per minute in range (labels stay exact)
    tempo = header if header and header.is_integer() and 50 <= header <= 200 else float(drawn)
    excerpt = make_excerpt(tune, tempo, seconds, min_seconds)
    melody = parse_excerpt(excerpt, source.where)
    check_final_note(tune)
    meter, total, dynamics = tune.meter, excerpt.music_ticks, pick(rng, tuple(DYNAMICS))
    parts = [Part(pick(rng, MELODY_PROGRAMS), "melody", notes=[
        (on, off, pitch, velocity(dynamics, on / total, "melody", (vel - 90) // 2, rng), 0.0)
        for on, off, pitch, vel in melody])]
    bar_starts = list(range(excerpt.pickup_ticks, total, meter.bar_ticks))
    chords = None
    if rng.random() < accompany and bar_starts:
        events = [(on, off, pitch, vel, 0.0) for on, off, pitch, vel in melody]
        chords = harmonise(events, bar_starts, meter.bar_ticks, tune.key)
        parts.append(harmony_part(pick(rng, ACCOMPANIMENT["textures"]), pick(rng, ACCOMPANIMENT["harmony"]),
                                  chords, bar_starts, meter, dynamics, total, rng))
        if rng.random() < 0.7:
            parts.append(bass_part(pick(rng, ACCOMPANIMENT["bass_patterns"]), pick(rng, ACCOMPANIMENT["bass"]),
                                   chords, bar_starts, meter, tune.key, dynamics, total, rng))
        if rng.random() < 0.35:
            parts.append(drum_part(pick(rng, ACCOMPANIMENT["kits"]), bar_starts, meter, dynamics, total, rng))
    labels = piece_labels(parts, tune.key, meter, tempo, excerpt.pickup_ticks, total, chords, bar_starts)
    labels.update(genre=tune.genre, dynamics=dynamics, abc=excerpt.abc)
    return Piece(to_midi(parts, meter, tempo, excerpt.pickup_ticks), labels, ticks_to_seconds(total, meter, tempo),
                 title=tune.title)
