"""Bars of an ABC tune, per voice, with their lengths, and the bar-length check.

    tune = parse_tune(abc)                     # header fields, body, bars per voice, repeats
    tune.bar_counts, tune.repeats              # {'1': 16}, 2
    check = check_bars(tune)                   # or check_bars(abc)
    check.ok, [str(p) for p in check.problems] # 'voice 1, bar 5 (body line 2): 5/8 where M: gives 3/4: ...'

Lengths are exact fractions of a whole note. Chord symbols, decorations, grace notes, slurs and spacers
take no time; broken rhythm (a>b) keeps the sum of its pair; tuplets use ABC's default q (2 for 3 and
6; 3 for 2, 4, 8; 3 in compound meters else 2 for 5, 7, 9); a chord lasts as long as its first note
times the length after ']'; Z4 is four bars of rest; in a bar with voice overlay (&) the first layer
counts. Inline and body fields change the meter ([M:3/4]), unit ([L:1/16]) and voice ([V:2], V:2).

The check allows what real tunes do: a short first bar (anacrusis, also at the start of each section
after |:, ::, :|, || or |]), a short last bar of a section (the pickup's compensation before |:,
:|, ::, ||, |], a numbered ending, or the end), and a short first bar of a numbered ending when it
completes the bar that leads into the endings ('B2A2A2 [1 Bd|...:|[2 Bd|'). Every other bar must fill
its meter exactly; free meter (M:none) is not checked. Multi-voice tunes are checked voice by voice,
and voices must last equally long.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from fractions import Fraction

from llark.abc.fields import (
    AbcError, FIELD_LINE, KeySpec, default_unit, header_fields, parse_key, parse_meter, parse_unit,
    split_header_body, strip_comment,
)
from llark.abc.lexer import Token, chord_end_length, ending_number, parse_note, rest_length, tokenize

STRICT_OTHER = set(".~LMPTJRy$*")  # marks the corpus reader accepts without complaint (no time)


@dataclass
class BarInfo:
    duration: Fraction  # in units of the multiplier (L units in the corpus reader, whole notes in the tune reader)
    first_note: Fraction | None  # offset of the first struck note or chord (None: only rests)
    tied_out: bool  # the last note is tied into the next bar


class Measure:
    """Adds up one bar's tokens. `strict` refuses anything the corpus excerpts cannot carry (stray
    characters, overlays, multi-bar rests) instead of skipping it as abc2midi does."""

    def __init__(self, unit: Fraction, compound: bool, where: str, strict: bool = False):
        self.unit, self.compound, self.where, self.strict = unit, compound, where, strict
        self.total, self.first, self.tied = Fraction(0), None, False
        self.layer, self.rest_bars, self.sounding = 0, 0, False
        self.tuplet_left, self.tuplet_factor = 0, Fraction(1)
        self.in_chord, self.chord_length, self.in_grace = False, None, False

    def _add(self, length: Fraction, struck: bool) -> None:
        if self.layer:  # a voice overlay: its own timeline, not this bar's length
            return
        if struck and self.first is None:
            self.first = self.total
        self.total += length * self.unit * (self.tuplet_factor if self.tuplet_left else 1)
        self.tuplet_left, self.tied, self.sounding = max(0, self.tuplet_left - 1), False, True

    def _refuse(self, token: Token, bar: str) -> None:
        if token.text == "+":  # a +decoration+ without its closing +
            raise AbcError(f"{self.where}: unclosed '+' in bar {bar!r}")
        raise AbcError(f"{self.where}: unsupported ABC symbol {token.text[0]!r} in bar {bar!r}")

    def feed(self, token: Token, bar: str = "") -> None:
        kind = token.kind
        if kind == "note":
            note = parse_note(token.text)
            if self.in_chord:
                self.chord_length = note.length if self.chord_length is None else self.chord_length
            elif not self.in_grace:
                self._add(note.length, True)
        elif kind == "rest":
            letter, length = rest_length(token.text)
            if letter in "ZX":  # a multi-bar rest: counted in bars, its length set by the meter
                if self.strict:
                    self._refuse(token, bar)
                self.rest_bars += int(length)
                self.sounding = True
            elif self.in_chord:
                self.chord_length = length if self.chord_length is None else self.chord_length
            elif not self.in_grace:
                self._add(length, False)
        elif kind == "chord_start":
            self.in_chord, self.chord_length = True, None
        elif kind == "chord_end":
            if self.in_chord and self.chord_length is not None:
                self.in_chord = False
                self._add(self.chord_length * chord_end_length(token.text), True)
            elif self.strict:
                raise AbcError(f"{self.where}: malformed chord in bar {bar!r}")
            self.in_chord = False
        elif kind == "tuplet":
            self._tuplet(token.text)
        elif kind in ("grace_start", "grace_end"):
            self.in_grace = kind == "grace_start"
        elif kind == "tie":
            self.tied = True
        elif kind == "overlay":
            if self.strict:
                self._refuse(token, bar)
            self.layer += len(token.text)
        elif self.strict and (kind in ("string", "field", "barline", "comment", "continuation")
                              or kind == "other" and token.text not in STRICT_OTHER):
            self._refuse(token, bar)

    def _tuplet(self, text: str) -> None:
        parts = text[1:].split(":") + ["", ""]
        p = int(parts[0])
        q = int(parts[1]) if parts[1] else (3 if p in (2, 4, 8) else 2 if p in (3, 6) or not self.compound else 3)
        self.tuplet_left, self.tuplet_factor = int(parts[2]) if parts[2] else p, Fraction(q, p)

    def info(self, bar: str = "") -> BarInfo:
        if self.strict and self.in_chord:
            raise AbcError(f"{self.where}: malformed chord in bar {bar!r}")
        if self.strict and self.in_grace:
            raise AbcError(f"{self.where}: unclosed '{{' in bar {bar!r}")
        return BarInfo(self.total, self.first, self.tied)


def measure_bar(bar: str, unit: Fraction = Fraction(1), compound: bool = False, where: str = "tune",
                strict: bool = False) -> BarInfo:
    """Length (in units of `unit`), first onset and tie-out of one bar's ABC text.

        measure_bar("(3ABc d>e f2").duration   # Fraction(6): a triplet of 3 in 2, a broken pair keeps 2
    """
    measure = Measure(unit, compound, where, strict)
    for token in tokenize(bar):
        measure.feed(token, bar)
    return measure.info(bar)


# ---- the tune -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bar:
    voice: str
    index: int  # 0-based position in its voice, in written order
    text: str  # the music between the two barlines
    duration: Fraction  # whole notes (a multi-bar rest: its bars times the meter)
    meter: Fraction | None  # the meter in force, in whole notes per bar (None: free meter)
    line: int  # body line (1 = the line after K:) where the bar starts
    opens: str  # the barline before it ('' at the start of its voice)
    closes: str  # the barline after it ('' when the music stops without one)
    ending: str | None  # the numbered ending it belongs to ('1', '2', '1,3'), None elsewhere
    rest_bars: int = 0  # Z4: 4
    final: bool = False  # the last bar of its voice

    @property
    def starts_section(self) -> bool:
        """First bar of its voice, or after |:, ::, :|, || or |] (not the first bar of an ending)."""
        if not self.opens:
            return True
        return ending_number(self.opens) is None and _is_section_line(self.opens)

    @property
    def ends_section(self) -> bool:
        """Last bar before |:, :|, ::, ||, |], the end of the music, or a numbered ending."""
        return self.final or _is_section_line(self.closes) or ending_number(self.closes) is not None


def is_compound(meter_text: str) -> bool:
    """6/8, 9/8, 12/8, 6/4 ...: the beat is dotted (tuplets of 5, 7, 9 then default to q = 3). Read from
    the written M: text, since the bar length alone cannot tell 6/8 from 3/4."""
    match = re.fullmatch(r"(\d+)/(\d+)", meter_text.strip().replace(" ", ""))
    return match is not None and int(match.group(1)) % 3 == 0 and int(match.group(1)) > 3


def _is_section_line(barline: str) -> bool:
    """A repeat sign, a double or a thick barline: where sections begin and end."""
    return ":" in barline or "||" in barline or "]" in barline or "[|" in barline


@dataclass(frozen=True)
class Tune:
    """One tune as text: header fields, body, and its bars per voice (in order of first appearance).

        tune = parse_tune(abc); tune.key.tonic, tune.meter, tune.bar_counts, tune.repeats
    """

    header: str
    body: str
    fields: dict[str, list[str]]
    voices: dict[str, list[Bar]]
    barlines: dict[str, list[str]]  # voice -> every barline token in order
    where: str = "tune"

    def field(self, letter: str, default: str | None = None) -> str | None:
        values = self.fields.get(letter)
        return values[0] if values else default

    @property
    def title(self) -> str:
        return self.field("T", "")

    @property
    def key(self) -> KeySpec:
        return parse_key(self.field("K", ""), f"{self.where}: K:")

    @property
    def meter(self) -> Fraction | None:
        """The header meter in whole notes per bar (None: free or absent)."""
        return parse_meter(self.field("M", "none"))

    @property
    def unit(self) -> Fraction:
        value = self.field("L")
        return parse_unit(value) if value else default_unit(self.meter)

    @property
    def bar_counts(self) -> dict[str, int]:
        """Written bars per voice (a multi-bar rest counts its bars; repeats are not unrolled)."""
        return {voice: sum(bar.rest_bars or 1 for bar in bars) for voice, bars in self.voices.items()}

    @property
    def repeats(self) -> int:
        """Repeated sections: the :| (or ::) signs of the first voice."""
        return sum(1 for b in self._first_barlines() if b.lstrip("[").startswith(":"))

    @property
    def endings(self) -> int:
        """Numbered endings (|1, :|2, [3 ...) of the first voice."""
        return sum(1 for b in self._first_barlines() if ending_number(b) is not None)

    def _first_barlines(self) -> list[str]:
        return next(iter(self.barlines.values()), [])

    @property
    def text(self) -> str:
        return self.header + "\n" + self.body + "\n"

    def notes(self, chords: bool = False) -> list:
        """The tune's notes from abc2midi (NoteEvent: start, end ticks at 480 per quarter, pitch,
        velocity, track); AbcError when abc2midi writes no MIDI."""
        from llark.abc.abc2midi import score_notes, to_score

        return score_notes(to_score(self.text, chords, self.where))


@dataclass
class _Voice:
    """A voice being read: its meter, unit, bars so far and the bar in progress."""

    name: str
    meter: Fraction | None
    unit: Fraction
    compound: bool
    where: str
    bars: list[Bar] = field(default_factory=list)
    barlines: list[str] = field(default_factory=list)
    opens: str = ""
    ending: str | None = None
    measure: Measure | None = None
    text: list[str] = field(default_factory=list)
    line: int = 0
    named: bool = False  # a V: field of the body has chosen this voice

    def feed(self, token: Token, line: int) -> None:
        if self.measure is None:
            self.measure = Measure(self.unit, self.compound, self.where)
            self.text, self.line = [], line
        self.measure.feed(token)
        if token.kind not in ("comment", "continuation"):
            self.text.append(token.text)

    def close(self, barline: str) -> None:
        """End the bar in progress at `barline` ('' at the end of the music)."""
        measure = self.measure
        if measure is not None and measure.sounding:
            rest_bars = measure.rest_bars
            duration = rest_bars * self.meter if rest_bars and self.meter else measure.total
            self.bars.append(Bar(self.name, len(self.bars), " ".join("".join(self.text).split()), duration,
                                 self.meter, self.line, self.opens, barline, self.ending, rest_bars))
            self.opens = barline
        else:  # barlines in a row ('| :|', '| [2'): they close the last bar and open the next together
            if self.bars and barline:
                self.bars[-1] = replace(self.bars[-1], closes=self.bars[-1].closes + barline)
            self.opens += barline
        if barline:
            self.barlines.append(barline)
            number = ending_number(barline)
            if number is not None:
                self.ending = number
            elif ":" in barline or "||" in barline or "]" in barline:
                self.ending = None
        self.measure, self.text = None, []


def parse_tune(abc: str, where: str = "tune") -> Tune:
    """Header fields and bars per voice of one tune (the text up to the first blank line after K:).

        tune = parse_tune("X:1\\nM:6/8\\nL:1/8\\nK:Em\\nB|E2E GFE:|\\n")
        tune.bar_counts   # {'1': 2}
    """
    header, body = split_header_body(abc, where)
    fields = header_fields(header)
    try:
        meter = parse_meter(fields.get("M", ["none"])[0])
        unit = parse_unit(fields["L"][0]) if "L" in fields else default_unit(meter)
    except AbcError as err:
        raise AbcError(f"{where}: {err}") from None
    declared = [value.split()[0] for value in fields.get("V", []) if value.split()]
    voices: dict[str, _Voice] = {}
    compound = is_compound(fields.get("M", ["none"])[0])
    current = _voice(voices, declared[0] if declared else "1", meter, unit, compound, where)
    body_lines = body.splitlines()
    end = next((i for i, line in enumerate(body_lines) if not line.strip()), len(body_lines))  # a blank line: the end
    for number, line in enumerate(body_lines[:end], start=1):
        if line.startswith("%"):
            continue
        field_line = FIELD_LINE.match(line)
        if field_line:
            current = _field(field_line.group(1), strip_comment(field_line.group(2)).strip(), current, voices,
                             (meter, unit, compound), where, number)
            continue
        for token in tokenize(line):
            if token.kind == "barline":
                current.close(token.text)
            elif token.kind == "field":
                current = _field(token.text[1], token.text[3:].rstrip("]").strip(), current, voices, (meter, unit, compound),
                                 where, number)
            elif token.kind not in ("space", "comment", "continuation") or current.measure is not None:
                current.feed(token, number)
    for voice in voices.values():
        voice.close("")
        if voice.bars:
            voice.bars[-1] = replace(voice.bars[-1], final=True)
    return Tune(header, "\n".join(body_lines[:end]), fields, {name: v.bars for name, v in voices.items()},
                {name: v.barlines for name, v in voices.items()}, where)


def _voice(voices: dict[str, _Voice], name: str, meter: Fraction | None, unit: Fraction, compound: bool,
           where: str) -> _Voice:
    if name not in voices:
        voices[name] = _Voice(name, meter, unit, compound, where)
    return voices[name]


def _field(letter: str, value: str, current: _Voice, voices: dict[str, _Voice], defaults: tuple, where: str,
           line: int) -> _Voice:
    """Apply a body or inline field to the current voice; returns the voice that reads on (a new voice
    starts from the header's meter and unit, `defaults`)."""
    try:
        if letter == "M":
            current.meter, current.compound = parse_meter(value), is_compound(value)
            if current.measure is not None and not current.measure.sounding:
                current.measure.compound = current.compound
        elif letter == "L":
            current.unit = parse_unit(value)
            if current.measure is not None:
                current.measure.unit = current.unit
        elif letter == "V" and value.split():
            name = value.split()[0]
            if len(voices) == 1 and not current.named and name not in voices:
                # The first V: of the body names the voice read so far (abc2midi joins that music to it).
                voices[name] = voices.pop(current.name)
                current.name = name
                current.bars = [replace(bar, voice=name) for bar in current.bars]
                current.named = True
                return current
            voice = _voice(voices, name, *defaults, where)
            voice.named = True
            return voice
    except AbcError as err:
        raise AbcError(f"{where}: body line {line}: {err}") from None
    return current


# ---- the check ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BarProblem:
    bar: Bar
    expected: Fraction

    def __str__(self) -> str:
        b = self.bar
        return (f"voice {b.voice}, bar {b.index + 1} (body line {b.line}): {b.duration} of a whole note where "
                f"M: gives {self.expected}: {b.text!r}")


@dataclass(frozen=True)
class BarCheck:
    problems: list[BarProblem]  # bars that do not fill their meter where no rule allows it
    bars: dict[str, int]  # bars per voice
    lengths: dict[str, Fraction]  # total written length per voice, in whole notes
    checked: int  # bars measured against a meter (free-meter bars are not)

    @property
    def voices_agree(self) -> bool:
        return len(set(self.lengths.values())) <= 1

    @property
    def ok(self) -> bool:
        return not self.problems and self.voices_agree

    @property
    def consistency(self) -> float:
        """Share of checked bars that are fine (1.0 when nothing could be checked)."""
        return 1.0 - len(self.problems) / self.checked if self.checked else 1.0

    def describe(self) -> str:
        lines = [str(p) for p in self.problems]
        if not self.voices_agree:
            lines.append("voices differ in length: " + ", ".join(f"{v} {n}" for v, n in self.lengths.items()))
        return "\n".join(lines) or "all bars fill their meter"


def check_bars(tune: Tune | str) -> BarCheck:
    """Bars that do not fill their meter, per voice (see the module docstring for what is allowed).

        check_bars("X:1\\nM:2/4\\nL:1/8\\nK:G\\nG|AB cd|e3|\\n").ok    # True: a pickup and its complement
    """
    tune = parse_tune(tune) if isinstance(tune, str) else tune
    problems, checked = [], 0
    for bars in tune.voices.values():
        lead = None  # the bar before the current group of numbered endings
        for previous, bar in zip([None, *bars], bars):
            if bar.ending is not None and (previous is None or previous.ending is None):
                lead = previous
            if bar.meter is None:
                continue
            checked += 1
            if bar.rest_bars or bar.duration == bar.meter:
                continue
            if bar.duration < bar.meter and (bar.starts_section or bar.ends_section):
                continue  # an anacrusis, or the bar that completes it before a repeat or the end
            if bar.duration < bar.meter and ending_number(bar.opens) and lead is not None \
                    and lead.duration + bar.duration == bar.meter:
                continue  # '... A2A2 [1 Bd | ...': each ending completes the bar that leads into the endings
            problems.append(BarProblem(bar, bar.meter))
    lengths = {voice: sum((b.duration for b in bars), Fraction(0)) for voice, bars in tune.voices.items()}
    return BarCheck(problems, tune.bar_counts, lengths, checked)
