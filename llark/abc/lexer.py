"""One line of ABC music cut into tokens, so that every reader (bars, transposition, normalisation)
agrees on what is a note and what is text.

    for token in tokenize('"Am"^c2>d [CEG]3/2 !trill!e |1'):
        token.kind, token.text          # ('string', '"Am"'), ('note', '^c2'), ('broken', '>'), ...

Joining the texts of all tokens gives the line back exactly. Kinds: comment, string (chord symbol or
annotation), decoration (!..! and +..+), field (inline [K:..]), barline (with an ending number:
'|1', ':|2', '[1'), tuplet, note, rest (z x; Z X multi-bar rests), chord_start, chord_end, grace_start,
grace_end, slur, tie, broken, overlay (&), space, continuation (a trailing backslash), other (a
decoration letter such as ~ H T u v, a spacer y, or a stray character).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

LENGTH = r"\d*/*\d*"
TOKEN = re.compile(rf"""
 (?P<comment>(?<!\\)%.*)
|(?P<string>"[^"]*"?)
|(?P<decoration>![^!\s]*!|\+[^+\s]*\+)
|(?P<field>\[[A-Za-z]:[^\]]*\]?)
|(?P<barline>(?:\[\|\]|\[\|:*|:*\|[\]|]*:*|::+)(?:\d+(?:[,-]\d+)*(?![\d/]))?|\[\d+(?:[,-]\d+)*)
|(?P<tuplet>\(\d(?::\d*)?(?::\d*)?)
|(?P<note>(?:\^\^|\^|__|_|=)?[A-Ga-g][,']*{LENGTH})
|(?P<rest>[zxZX]{LENGTH})
|(?P<chord_start>\[)
|(?P<chord_end>\]{LENGTH})
|(?P<grace_start>\{{/?)
|(?P<grace_end>\}})
|(?P<slur>[()])
|(?P<tie>-)
|(?P<broken>[<>]+)
|(?P<overlay>&+)
|(?P<continuation>\\\s*$)
|(?P<space>\s+)
|(?P<other>.)
""", re.VERBOSE)
NOTE = re.compile(r"(\^\^|\^|__|_|=)?([A-Ga-g])([,']*)(\d*)(/*)(\d*)")
REST = re.compile(r"([zxZX])(\d*)(/*)(\d*)")
ENDING = re.compile(r"(\d+(?:[,-]\d+)*)$")


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    start: int  # column in the line


def tokenize(line: str) -> list[Token]:
    """The tokens of one body line of music (see the module docstring for the kinds)."""
    return [Token(m.lastgroup, m.group(), m.start()) for m in TOKEN.finditer(line)]


def length_multiplier(digits: str, slashes: str, denominator: str) -> Fraction:
    """ABC length suffix -> multiplier of the unit: '' 1, '2' 2, '/' 1/2, '//' 1/4, '3/2' 3/2, '/4' 1/4."""
    value = Fraction(int(digits) if digits else 1)
    if slashes:
        value /= (int(denominator) if denominator else 2) * 2 ** (len(slashes) - 1)
    return value


@dataclass(frozen=True)
class Note:
    """A note token taken apart: accidental ('^', '=', '' for none), letter, octave marks, length."""

    accidental: str
    letter: str
    octave_marks: str
    length: Fraction
    length_text: str

    @property
    def octave(self) -> int:
        """Octave number with middle C's octave 4: C -> 4, c -> 5, c' -> 6, C, -> 3."""
        base = 5 if self.letter.islower() else 4
        return base + self.octave_marks.count("'") - self.octave_marks.count(",")


def parse_note(text: str) -> Note:
    match = NOTE.fullmatch(text)
    if not match:
        raise ValueError(f"not an ABC note: {text!r}")
    accidental, letter, marks, digits, slashes, denominator = match.groups()
    return Note(accidental or "", letter, marks, length_multiplier(digits, slashes, denominator),
                digits + slashes + denominator)


def rest_length(text: str) -> tuple[str, Fraction]:
    """('z', multiplier) of a rest token; for Z/X the multiplier counts bars."""
    letter, digits, slashes, denominator = REST.fullmatch(text).groups()
    return letter, length_multiplier(digits, slashes, denominator)


def chord_end_length(text: str) -> Fraction:
    """The multiplier written after a chord's closing bracket: ']3/2' -> 3/2."""
    match = re.fullmatch(r"\](\d*)(/*)(\d*)", text)
    return length_multiplier(*match.groups())


def ending_number(barline: str) -> str | None:
    """The ending a barline token opens ('|1' -> '1', ':|2' -> '2', '[1,3' -> '1,3'), else None."""
    match = ENDING.search(barline)
    return match.group(1) if match else None
