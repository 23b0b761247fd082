"""One canonical text per tune, in the shape ChatMusician-style data uses: `X:1`, the musical header
fields in a fixed order, `K:` last, then the body.

    clean = normalise(abc)                    # 'X:1\\nL:1/8\\nM:6/8\\nK:Em\\nB|E2E GFE|...\\n'
    normalise(abc, keep=("T", "R"))           # also keep the title and rhythm, right after X:
    normalise(clean) == clean                 # idempotent

The choices, and why:
- Only the first tune, up to the first blank line after K: (a blank line ends a tune in ABC, and
  abc2midi stops there too); text before X: is dropped; X: becomes 1.
- Header: X:1, the fields named in `keep` (in that order), then L:, M:, Q:, P:, V: (every voice, in
  order), m: (macros change notes), K:. Everything else (T:, C:, O:, R:, N:, Z:, S:, B:, D:, H:, A:,
  F:, G:, I:, U:, W:, %% directives) is metadata or layout: ChatMusician's answers start X:1, L:, M:,
  K:, and a text-to-ABC prompt states the metadata in words. (abc2midi swings equal note pairs when
  R: says hornpipe; without R: it plays them as written: the notes are the same, the playback is
  straight.) A missing L: is written out with ABC's
  default (1/16 below 3/4, else 1/8) so every tune states its unit; a missing M: stays missing (free
  meter). Field values lose extra spaces; K: is written short ('G', 'Em', 'Ador', 'Dmix', settings
  such as clef= kept after a space).
- Body: comments and %% lines dropped; field lines other than K:, L:, M:, Q:, P:, V: dropped (lyrics,
  notes, section titles), and likewise inline fields ([K:..] kept, [I:..] [N:..] dropped); a line
  ending in a backslash is joined to the next one; runs of blanks become one space (blanks separate
  beams, so they stay); trailing blanks and empty lines go; backquotes (beam spacers, no sound) go.
  Line breaks of the music, chord symbols, annotations and decorations are kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from llark.abc.fields import (
    FIELD_LINE, AbcError, KeySpec, default_unit, header_fields, parse_key, parse_meter, split_header_body,
    strip_comment,
)
from llark.abc.lexer import tokenize

HEADER_ORDER = ("L", "M", "Q", "P", "V", "m", "K")
BODY_FIELDS = frozenset("KLMQPV")
MODE_SHORT = {"major": "", "minor": "m", "dorian": "dor", "phrygian": "phr", "lydian": "lyd",
              "mixolydian": "mix", "locrian": "loc"}


def key_text(key: KeySpec) -> str:
    """Short K: value: KeySpec('E', 'minor') -> 'Em'; settings and accidentals follow after a space."""
    if key.tonic is None:
        return key.rest
    return key.tonic + MODE_SHORT[key.mode] + (" " + " ".join(key.rest.split()) if key.rest else "")


def _compact(value: str) -> str:
    return " ".join(value.split())


def _field_value(letter: str, value: str, where: str) -> str:
    value = _compact(strip_comment(value))
    if letter == "K":
        return key_text(parse_key(value, f"{where}: K:"))
    if letter in "LM":
        return value.replace(" ", "")
    return value


def _header(header: str, keep: Sequence[str], where: str) -> list[str]:
    fields = header_fields(header)
    lines = ["X:1"]
    for letter in keep:
        lines += [f"{letter}:{_compact(v)}" for v in fields.get(letter, [])]
    meter_value = fields.get("M", [None])[0]
    if "L" not in fields:
        try:
            meter = parse_meter(meter_value) if meter_value is not None else None
        except AbcError as err:
            raise AbcError(f"{where}: {err}") from None
        unit = default_unit(meter)
        fields["L"] = [f"{unit.numerator}/{unit.denominator}"]
    for letter in HEADER_ORDER:
        values = fields.get(letter, [])
        if letter in "LMQK":
            values = values[:1]  # a repeated L:, M:, Q: or K: in the header: the first one rules
        lines += [f"{letter}:{_field_value(letter, v, where)}" for v in values]
    return lines


def _music(line: str, where: str) -> str:
    """A music line with inline non-musical fields and backquotes dropped, blanks collapsed."""
    out = []
    for token in tokenize(line):
        if token.kind == "comment" or token.text == "`":
            continue
        if token.kind == "field":
            letter = token.text[1]
            if letter not in BODY_FIELDS:
                continue
            value = token.text[3:-1] if token.text.endswith("]") else token.text[3:]
            out.append(f"[{letter}:{_field_value(letter, value, where)}]")
        elif token.kind == "space":
            out.append(" ")
        else:
            out.append(token.text)
    return re.sub(r" {2,}", " ", "".join(out)).strip()


def _body(body: str, where: str) -> list[str]:
    lines: list[str] = []
    joining = False  # the previous music line ended with a backslash
    for raw in body.splitlines():
        if not raw.strip():
            break  # a blank line ends the tune
        if raw.startswith("%"):
            continue
        field_line = FIELD_LINE.match(raw)
        if field_line:
            joining = False
            if field_line.group(1) in BODY_FIELDS:
                lines.append(f"{field_line.group(1)}:{_field_value(field_line.group(1), field_line.group(2), where)}")
            continue
        text = strip_comment(raw).rstrip()
        continued = text.endswith("\\")
        music = _music(text[:-1] if continued else text, where)
        if joining and lines:
            lines[-1] = re.sub(r" {2,}", " ", lines[-1] + (" " if text[:1].isspace() else "") + music).strip()
        elif music:
            lines.append(music)
        joining = continued
    return [line for line in lines if line]


def normalise(abc: str, keep: Sequence[str] = (), where: str = "tune") -> str:
    """The canonical text of the first tune in `abc` (see the module docstring for every choice).

        normalise("X:7\\nT:Kesh\\nM: 6/8\\nK: G major % home\\nGAG GAB|\\\\\\nABA ABd:|\\n")
        # 'X:1\\nL:1/8\\nM:6/8\\nK:G\\nGAG GAB|ABA ABd:|\\n'
    """
    unknown = [letter for letter in keep if not re.fullmatch(r"[A-Za-z]", letter)]
    if unknown:
        raise AbcError(f"{where}: keep names field letters, got {unknown}")
    header, body = split_header_body(abc, where)
    return "\n".join(_header(header, [k for k in keep if k not in HEADER_ORDER and k != "X"], where)
                     + _body(body, where)) + "\n"
