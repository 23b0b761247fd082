"""ABC -> MIDI with abc2midi, and a verdict on whether the tune parsed.

    verdict = validate(abc)                    # runs abc2midi once (~5 ms)
    verdict.ok, verdict.reason                 # False, 'fatal: open-chord (line 6: Sustained notes beyond ...)'
    [m.kind for m in verdict.harmless]         # ['bar-length', 'tie-without-partner', ...]
    midi_bytes = to_midi(abc)                  # Standard MIDI File bytes; AbcError when abc2midi makes none
    score = to_score(abc)                      # symusic.Score (ticks, 480 per quarter)

abc2midi is the one symusic ships (symusic/bin/abc2midi, version 5.02; symusic's own Score.from_abc
runs it with -silent and hides its messages), or the Debian `abcmidi` one on PATH when symusic has
none. It is run in a subprocess on a temporary file, so its messages are captured exactly and calls
are thread-safe. abc2midi always exits 0 and mixes harmless and fatal messages under the same
"Error"/"Warning" words, so every message is classified with MESSAGE_TABLE (first match wins).

The table's principle: a message is fatal when abc2midi's MIDI does not hold the music as written:
no tune at all, notes merged into or lost in an unclosed chord, a quote left open that swallows the
line, a note length it cannot compute, or a K:, L: or M: value it could not read (pitches, durations
or the bar grid then come from a default, not from the tune). It is harmless when abc2midi dropped
or guessed something without pitch or duration (decorations, annotations, chord names, bowing marks,
stray characters, a tie or broken rhythm it could not apply, a repeat sign it had to guess) or made a
remark about bar lengths (check_bars judges those, and knows anacrusis). The rows were collected by
running every tune of music21's O'Neill, Ryan, Aird and Essen collections (12,762 tunes) and a set of
hand-broken tunes through abc2midi 5.02, and checked against the notes it wrote. A message no row
matches is fatal when abc2midi calls it an Error and harmless otherwise; Message.known says which.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from llark.abc.fields import AbcError

MIN_NOTES = 8  # a generated tune with fewer notes is not counted as a parse (ChatMusician-style metric)
TIMEOUT = 20.0  # seconds; abc2midi takes milliseconds, a hung process must not hang an evaluation

# (kind, fatal, pattern on the message text after "Error/Warning in line-char L-C : ", what it means)
MESSAGE_TABLE: tuple[tuple[str, bool, str, str], ...] = (
    # -- fatal: no tune, or the MIDI is not the written music --
    ("no-tune", True, r"No tune processed|No valid K: field found", "no X: or no readable K:, no MIDI"),
    ("unreadable-key", True, r"First K: field must specify key signature|Unknown mode",
     "the key signature is a default, not the tune's"),
    ("unreadable-meter", True, r"Invalid time signature ignored|Number not found for M: denominator|"
                               r"Expecting fraction in form A/B|No / found, assuming denominator",
     "an M: (or L:) value abc2midi could not read"),
    ("unreadable-length", True, r"Missing /|No digit at the start of L: field|invalid denominator|"
                                r"is not a power of 2|note length denominator is zero",
     "note lengths abc2midi cannot compute"),
    ("open-chord", True, r"Sustained notes beyond end of track|Too many notes in chord|Attempt to nest chords|"
                         r"Broken rhythm not allowed in chord|Grace notes not allowed in chord",
     "a [ never closed: following notes merged into one chord or dropped"),
    ("open-quote", True, r"Guitar chord name not properly closed", "a \" never closed: the rest of the line is lost"),
    ("broken-rhythm-overflow", True, r"Too many [<>]'s", "more than three > or <: notes are dropped"),
    # -- harmless: abc2midi's own bar check (check_bars judges bars, with anacrusis and repeats) --
    ("bar-length", False, r"Track \d+ Bar \d+ has .* time units while the time signature has", "abc2midi's bar check"),
    ("voice-length", False, r"Track \d+ is [\d.]+ quarter notes long not", "voices of different length (check_bars)"),
    # -- harmless: repeats and parts abc2midi had to guess --
    ("repeat-guess", False, r"Assuming repeat|replacing .*with double repeat|found \[\d+ or like before \|:|"
                            r"Missing :\| at end of tune|Expected end repeat not found|found another \|: after a \|:|"
                            r"found :: before \|:|Potentially ambiguous line",
     "a repeat sign abc2midi completed or reinterpreted"),
    ("part-order", False, r"Part not defined|in part specification|The P: is ignored", "P: names a missing part"),
    # -- harmless: symbols without pitch or duration that abc2midi dropped --
    ("tie-without-partner", False, r"Could not find note to be tied|Cannot find note before tie",
     "a tie between different pitches (a slur in old sources): both notes sound"),
    ("broken-rhythm-unequal", False, r"Cannot apply broken rhythm", "> between unequal notes: written lengths kept"),
    ("ignored-symbol", False, r"Ignoring reserved character|Malformed note : expecting a-g or A-G|"
                              r"Unrecognized character|in middle of line ignored|Chord already finished|"
                              r"\} without matching \{|Slur within slur|instruction !.*! ignored|"
                              r"Field not allowed in tune body",
     "a decoration, bowing mark, stray character or bracket dropped"),
    ("chord-symbol", False, r"Guitar chord does not start with|Unrecognized chord name|use %MIDI chordname",
     "an annotation in quotes, or a chord name abc2midi cannot voice"),
    ("ornament", False, r"Grace sequence exceeds host note|Intervening note needed between grace notes|"
                        r"No note found to follow grace notes|Rolls and trills not supported in chords|"
                        r"unequal notes in chord", "a grace, roll or chord-length detail simplified"),
    ("tuplet", False, r"nested tuples|Different length notes in tuple", "a tuplet detail simplified"),
    ("header-text", False, r"Ignoring text|whitespace in field declaration|malformed Q: field ignored|"
                           r"Hornpipe must be in|No M: in header|Ignoring string .* in K: field|"
                           r"First V: field occurs past body",
     "text in the header, an unreadable tempo, or a stress-model remark"),
    ("tune-boundary", False, r"Missing blank line before new tune", "a second X: tune follows: only the first is read"),
    ("info", False, r"^voice mapping:$|^\s*\d[\d\s]*$", "abc2midi's voice-mapping printout"),
)
_TABLE = tuple((kind, fatal, re.compile(pattern)) for kind, fatal, pattern, _ in MESSAGE_TABLE)
_MESSAGE = re.compile(r"(Error|Warning) in line-char (\d+)-(\d+) : (.*)")
_NOISE = re.compile(r"^\d+\.\d+ \w+ \d+ \d{4} abc2midi$|^writing MIDI file ")  # version banner, output notice


@dataclass(frozen=True)
class Message:
    level: str  # 'Error', 'Warning', or '' for a bare line
    line: int | None  # line of the tune text (1 = the X: line), as abc2midi counts
    column: int | None
    text: str
    kind: str  # MESSAGE_TABLE's kind, or 'unknown'
    fatal: bool
    known: bool = True  # False: no table row matched; `fatal` then follows the level
    raw: str = ""  # the line as abc2midi printed it

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{self.kind} ({where}{self.text})"


def classify(raw: str) -> Message:
    """One line of abc2midi output -> Message (kind and fatal flag from MESSAGE_TABLE).

        classify("Error in line-char 5-9 : Cannot apply broken rhythm. Notes not equal durations").fatal  # False
    """
    match = _MESSAGE.match(raw.strip())
    level, line, column, text = (match.group(1), int(match.group(2)), int(match.group(3)), match.group(4).strip()) \
        if match else ("", None, None, raw.strip())
    for kind, fatal, pattern in _TABLE:
        if pattern.search(text):
            return Message(level, line, column, text, kind, fatal, raw=raw.strip())
    return Message(level, line, column, text, "unknown", level == "Error", known=False, raw=raw.strip())


@lru_cache(maxsize=1)
def find_abc2midi() -> str:
    """Path of the abc2midi executable: symusic's bundled one, else `abc2midi` on PATH."""
    import symusic  # its package ships bin/abc2midi

    bundled = Path(symusic.__file__).resolve().parent / "bin" / ("abc2midi.exe" if os.name == "nt" else "abc2midi")
    if bundled.is_file():
        return str(bundled)
    found = shutil.which("abc2midi")
    if found is None:
        raise AbcError("no abc2midi: symusic ships none for this platform and none is on PATH "
                       "(Debian: apt-get install abcmidi)")
    return found


@dataclass(frozen=True)
class Run:
    """What one abc2midi call produced: the MIDI file's bytes (None when it wrote none) and its messages."""

    midi: bytes | None
    messages: tuple[Message, ...]


def run_abc2midi(abc: str, flags: tuple[str, ...] = ()) -> Run:
    """Run abc2midi on one tune (the first X: tune of `abc`); duplicate messages (abc2midi reports
    again on its second pass over repeats) are kept once.

        run = run_abc2midi(abc, ("-NGUI",))     # -NGUI: no accompaniment from chord symbols
    """
    with tempfile.TemporaryDirectory(prefix="llark-abc-") as folder:
        source, target = Path(folder) / "tune.abc", Path(folder) / "tune.mid"
        source.write_text(abc, encoding="utf-8")
        try:
            done = subprocess.run([find_abc2midi(), str(source), "-o", str(target), *flags], capture_output=True,
                                  text=True, errors="replace", timeout=TIMEOUT, cwd=folder)
            output = (done.stdout + "\n" + done.stderr).splitlines()
        except subprocess.TimeoutExpired:
            output = [f"Error in line-char 0-0 : abc2midi timed out after {TIMEOUT:g} s"]
        midi = target.read_bytes() if target.is_file() else None
    lines = [line for line in dict.fromkeys(output) if line.strip() and not _NOISE.search(line.strip())]
    return Run(midi, tuple(classify(line) for line in lines))


# ---- the verdict --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """Whether a tune parses: MIDI written, at least `min_notes` notes, no fatal message.

        v = validate(abc); v.ok; v.reason; v.notes; v.fatal; v.harmless; v.score (symusic.Score or None)
    """

    ok: bool
    reason: str  # '' when ok
    messages: tuple[Message, ...]
    notes: int  # notes in the MIDI (chord symbols do not add notes: abc2midi runs with -NGUI)
    midi: bytes | None = field(repr=False)

    @property
    def fatal(self) -> list[Message]:
        return [m for m in self.messages if m.fatal]

    @property
    def harmless(self) -> list[Message]:
        return [m for m in self.messages if not m.fatal]

    @property
    def score(self):
        """The MIDI as a symusic.Score in ticks (None without MIDI)."""
        return load_score(self.midi) if self.midi is not None else None


def validate(abc: str, min_notes: int = MIN_NOTES) -> Verdict:
    """Parse one tune with abc2midi and judge it (see the module docstring for the message table).

        validate("X:1\\nL:1/8\\nM:4/4\\nK:G\\nGABc dedB|dedB dedB|\\n").ok    # True
    """
    run = run_abc2midi(abc, ("-NGUI",))
    notes = sum(len(track.notes) for track in load_score(run.midi).tracks) if run.midi is not None else 0
    fatal = [m for m in run.messages if m.fatal]
    if run.midi is None:
        reason = "abc2midi wrote no MIDI" + (f": {fatal[0]}" if fatal else "")
    elif fatal:
        reason = "fatal: " + "; ".join(str(m) for m in fatal[:3])
    elif notes < min_notes:
        reason = f"{notes} notes (at least {min_notes} needed)"
    else:
        reason = ""
    return Verdict(not reason, reason, run.messages, notes, run.midi)


def load_score(midi: bytes):
    """symusic.Score (ticks) from Standard MIDI File bytes."""
    import symusic

    return symusic.Score.from_midi(midi)


def to_midi(abc: str, chords: bool = False, where: str = "tune") -> bytes:
    """Standard MIDI File bytes of one tune; chord symbols ("Am") become abc2midi's accompaniment only
    with `chords=True`. AbcError (with abc2midi's fatal messages) when it writes no MIDI.

        Path("tune.mid").write_bytes(to_midi(abc))
    """
    run = run_abc2midi(abc, () if chords else ("-NGUI",))
    if run.midi is None:
        problems = "; ".join(str(m) for m in run.messages if m.fatal) or "no message"
        raise AbcError(f"{where}: abc2midi wrote no MIDI ({problems})")
    return run.midi


def to_score(abc: str, chords: bool = False, where: str = "tune"):
    """symusic.Score (ticks, abc2midi's 480 per quarter) of one tune; see to_midi."""
    return load_score(to_midi(abc, chords, where))


class NoteEvent(NamedTuple):
    start: int  # ticks
    end: int
    pitch: int  # MIDI
    velocity: int
    track: int  # index among the score's tracks (one per voice; chord accompaniment adds tracks)


def score_notes(score) -> list[NoteEvent]:
    """Every note of a symusic.Score in ticks, sorted by start, pitch and track.

        notes = score_notes(to_score(abc)); [n.pitch for n in notes]
    """
    return sorted(NoteEvent(n.time, n.time + n.duration, n.pitch, n.velocity, index)
                  for index, track in enumerate(score.tracks) for n in track.notes)
