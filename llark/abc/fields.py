"""ABC text structure: tunes in a file, header and body, information fields, keys, meters, note lengths.

    header, body = split_header_body(abc)        # header: X: .. K: lines; body: the music after K:
    fields = header_fields(header)               # {'X': ['1'], 'T': ['The Kesh'], 'M': ['6/8'], ...}
    key = parse_key("Ador")                      # KeySpec(tonic='A', mode='dorian', ...)
    key.signature                                # {'F': 1}: A dorian has G major's one sharp
    parse_meter("C|"), parse_unit("1/8")         # Fraction(2, 2), Fraction(1, 8)

Everything here reads text only (no abc2midi). Errors are AbcError with a message naming the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

FIELD_LINE = re.compile(r"([A-Za-z]):(.*)")
TUNE_START = re.compile(r"^X:", re.MULTILINE)
LETTERS = "CDEFGAB"
NATURAL = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
ORDER_OF_SHARPS = "FCGDAEB"
# A mode's tonic sits this many semitones above the tonic of the major scale that shares its signature.
MODE_OFFSETS = {"major": 0, "dorian": 2, "phrygian": 4, "lydian": 5, "mixolydian": 7, "minor": 9, "locrian": 11}
MODE_DEGREES = {"major": 0, "dorian": 1, "phrygian": 2, "lydian": 3, "mixolydian": 4, "minor": 5, "locrian": 6}
MODE_NAMES = {"": "major", "maj": "major", "ion": "major", "m": "minor", "min": "minor", "aeo": "minor",
              "dor": "dorian", "phr": "phrygian", "lyd": "lydian", "mix": "mixolydian", "loc": "locrian"}
# Information fields that carry no music: dropped by normalise, skipped by the bar reader.
MUSICAL_FIELDS = frozenset("KLMQPV")


class AbcError(ValueError):
    """ABC text that cannot be read; the message names the tune (when known) and the problem."""


def split_tunes(text: str) -> list[tuple[str, str]]:
    """(X number, tune text) for each tune of a multi-tune ABC file; text before the first X: is dropped.

        for number, tune in split_tunes(Path("book1.abc").read_text()): ...
    """
    tunes, current = [], None
    for line in text.splitlines():
        if line.startswith("X:"):
            current = [line]
            tunes.append(current)
        elif current is not None:
            current.append(line)
    return [(lines[0][2:].strip(), "\n".join(lines).strip() + "\n") for lines in tunes]


def extract_tune(text: str) -> str:
    """The first tune in free text (a model's answer): from its X: line up to the next X: line. Text
    without an X: line is taken whole, with `X:1` put in front (abc2midi needs X: to start a tune).

        extract_tune("Here you go:\\nX:1\\nK:G\\nGABc|")   # 'X:1\\nK:G\\nGABc|\\n'
    """
    starts = [m.start() for m in TUNE_START.finditer(text)]
    if not starts:
        return "X:1\n" + text.strip() + "\n"
    end = starts[1] if len(starts) > 1 else len(text)
    return text[starts[0]:end].strip() + "\n"


def split_header_body(abc: str, where: str = "tune") -> tuple[str, str]:
    """(header, body) of one tune: the header runs from X: (or the first line) through the first K:
    line; the body is everything after it. AbcError when no K: line ends the header.

        header, body = split_header_body("X:1\\nM:2/4\\nK:G\\nGA Bc|\\n")   # ('X:1\\nM:2/4\\nK:G', 'GA Bc|')
    """
    lines = abc.strip("\n").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("X:")), 0)
    for i in range(start, len(lines)):
        if lines[i].startswith("K:"):
            return "\n".join(lines[start:i + 1]), "\n".join(lines[i + 1:])
    raise AbcError(f"{where}: no K: field ends the header")


def strip_comment(line: str) -> str:
    """The line without its `%` comment (a `\\%` is an escaped percent sign, kept)."""
    match = re.search(r"(?<!\\)%", line)
    return line[:match.start()] if match else line


def header_fields(header: str) -> dict[str, list[str]]:
    """Field letter -> its values in order (T: and others may repeat), comments and blanks removed.

        header_fields("X:1\\nT:A\\nT:B\\nK:G")   # {'X': ['1'], 'T': ['A', 'B'], 'K': ['G']}
    """
    fields: dict[str, list[str]] = {}
    previous = None
    for line in header.splitlines():
        if line.startswith("+:") and previous:  # field continuation (ABC 2.1): appended to the last value
            fields[previous][-1] += " " + strip_comment(line[2:]).strip()
            continue
        match = FIELD_LINE.match(line)
        if match:
            previous = match.group(1)
            fields.setdefault(previous, []).append(strip_comment(match.group(2)).strip())
    return fields


def first_field(abc: str, letter: str) -> str | None:
    """The first value of header field `letter` in a tune, or None.  first_field(abc, "M") -> '6/8'"""
    header, _ = split_header_body(abc)
    values = header_fields(header).get(letter)
    return values[0] if values else None


# ---- note lengths and meters --------------------------------------------------------------------
def parse_fraction(text: str, what: str) -> Fraction:
    """'3/4' -> Fraction(3, 4); AbcError naming `what` (e.g. 'L:') for anything else."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or int(match.group(2)) == 0:
        raise AbcError(f"{what} is not a fraction: {text!r}")
    return Fraction(int(match.group(1)), int(match.group(2)))


def parse_unit(value: str) -> Fraction:
    """L: value -> the unit note length as a fraction of a whole note.  parse_unit("1/8") -> 1/8"""
    return parse_fraction(value, "L:")


def parse_meter(value: str) -> Fraction | None:
    """M: value -> the bar length in whole notes; None for free meter ('none' or empty).

        parse_meter("6/8") -> 3/4;  parse_meter("C") -> 1;  parse_meter("C|") -> 1;  parse_meter("2+3/8") -> 5/8
    """
    text = value.strip().replace(" ", "")
    if text.lower() in ("", "none"):
        return None
    if text in ("C", "C|"):
        return Fraction(1)
    match = re.fullmatch(r"\(?(\d+(?:\+\d+)*)\)?/(\d+)", text)
    if not match or int(match.group(2)) == 0:
        raise AbcError(f"M: is not a meter: {value!r}")
    return Fraction(sum(int(n) for n in match.group(1).split("+")), int(match.group(2)))


def default_unit(meter: Fraction | None) -> Fraction:
    """ABC's default L: 1/16 when the meter is below 3/4, else 1/8 (also for free or absent meters)."""
    return Fraction(1, 16) if meter is not None and meter < Fraction(3, 4) else Fraction(1, 8)


# ---- keys ---------------------------------------------------------------------------------------
def fifths_of_major(tonic: str) -> int:
    """Position of a major key on the circle of fifths: C 0, G 1, F -1, F# 6, Gb -6, C# 7."""
    position = (NATURAL[tonic[0]] * 7) % 12  # the natural letter's position mod 12: C0 G1 D2 A3 E4 B5 F11
    position = position - 12 if position > 5 else position  # F -> -1
    return position + 7 * (tonic.count("#") - tonic.count("b"))


def signature_of(fifths: int) -> dict[str, int]:
    """Letter -> alteration of a key signature with `fifths` sharps (negative: flats)."""
    if fifths >= 0:
        return {letter: 1 for letter in ORDER_OF_SHARPS[:fifths]}
    return {letter: -1 for letter in ORDER_OF_SHARPS[::-1][:-fifths]}


@dataclass(frozen=True)
class KeySpec:
    """A K: value: tonic ('F#'; None for K:none, bagpipe keys, or a clef-only change), mode, explicit
    accidentals (K:D ^g, or only those with `exp`), and the rest (clef=..., ...) kept verbatim."""

    tonic: str | None
    mode: str = "major"
    rest: str = ""
    extra: tuple[tuple[str, int], ...] = field(default=())  # (letter, alteration) from K:D ^g
    explicit: bool = False  # `exp`: the signature is exactly `extra`
    bagpipe: bool = False  # K:HP or K:Hp: no tonic named, played with F# and C# (abc2midi does so)

    @property
    def fifths(self) -> int:
        """Sharps (+) or flats (-) of the mode's signature; 0 without a tonic."""
        return fifths_of_major(self.parent_major()) if self.tonic else 0

    def parent_major(self) -> str:
        """The major key that shares this mode's signature, on the right letter (A dorian -> 'G')."""
        if self.tonic is None:
            raise AbcError("a key without a tonic has no parent major")
        letter = LETTERS[(LETTERS.index(self.tonic[0]) - MODE_DEGREES[self.mode]) % 7]
        return spell(letter, (pitch_class(self.tonic) - MODE_OFFSETS[self.mode]) % 12)

    @property
    def signature(self) -> dict[str, int]:
        """Letter (upper case) -> alteration in semitones for every altered letter."""
        if self.bagpipe:
            return {"F": 1, "C": 1}
        signature = {} if self.explicit or self.tonic is None else signature_of(self.fifths)
        signature.update(dict(self.extra))
        return {letter: alteration for letter, alteration in signature.items() if alteration}

    @property
    def pc(self) -> int | None:
        return pitch_class(self.tonic) if self.tonic else None


def pitch_class(name: str) -> int:
    """'F#' -> 6, 'Bb' -> 10."""
    return (NATURAL[name[0]] + name.count("#") - name.count("b")) % 12


def spell(letter: str, pc: int) -> str:
    """Pitch class `pc` written on `letter`: ('E', 5) -> 'E#', ('C', 11) -> 'Cb'."""
    offset = (pc - NATURAL[letter] + 6) % 12 - 6
    return letter + ("#" * offset if offset > 0 else "b" * -offset)


KEY_ACCIDENTAL = re.compile(r"(\^\^|\^|__|_|=)([A-Ga-g])")
ACCIDENTAL_VALUE = {"^^": 2, "^": 1, "=": 0, "_": -1, "__": -2}
MODE_WORD = re.compile(r"\s*([A-Za-z]+)(?![A-Za-z=])")  # a word, but not the name of a clef=... setting


def parse_key(value: str, where: str = "K:") -> KeySpec:
    """K: value -> KeySpec: 'G', 'Gm', 'E Minor', 'Ador', 'D mix clef=bass', 'D exp ^f ^c'; 'none', the
    bagpipe keys 'HP'/'Hp' (F# and C#) and settings-only values ('clef=bass') name no tonic. AbcError
    for an unknown mode (K:Bn).

        parse_key("F#m clef=treble")   # KeySpec(tonic='F#', mode='minor', rest='clef=treble')
    """
    text = value.strip()
    first = text.split(None, 1)[0] if text else ""
    if first in ("HP", "Hp"):
        return KeySpec(None, "major", text, bagpipe=True)
    if not text or first.lower() == "none" or "=" in first:
        return KeySpec(None, "major", text)
    tonic = re.match(r"([A-G][#b]?)", text)
    if not tonic:
        raise AbcError(f"{where}{value}: no tonic")
    rest, mode = text[tonic.end():], "major"
    word = MODE_WORD.match(rest)
    if word and word.group(1).lower() != "exp":
        name = word.group(1).lower()
        mode = MODE_NAMES.get(name if name == "m" else name[:3]) if len(name) >= 3 or name == "m" else None
        if mode is None:
            raise AbcError(f"{where}{value}: unknown mode {word.group(1)!r}")
        rest = rest[word.end():]
    words = rest.split()
    extra = tuple((m.group(2).upper(), ACCIDENTAL_VALUE[m.group(1)]) for w in words
                  if (m := KEY_ACCIDENTAL.fullmatch(w)))
    return KeySpec(tonic.group(1), mode, rest.strip(), extra, explicit="exp" in (w.lower() for w in words))
