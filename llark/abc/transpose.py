"""Transposition of ABC text by semitones: every K: field, note and chord symbol is rewritten.

    up = transpose(abc, 2)             # K:G -> K:A, ^c -> ^d, "Em" -> "F#m", G, -> A,
    down = transpose(up, -2)           # sounds as `abc` again (the same MIDI pitches)

How: the new key is the transposed tonic spelled with the fewest accidentals (the old key's side of
the circle of fifths on a tie), so every letter moves by the same number of letter steps and the new
key signature gives each moved letter exactly the transposed pitch. Notes without an accidental are
therefore written without one, and notes with one get the transposed accidental; abc2midi's rule that
an accidental holds for the same letter until the bar line carries over unchanged, because the letter
mapping is one to one. Octave marks are rewritten from the moved letter's octave. Chord symbols ("Am",
"G7/B", "Bbmaj7") move with the same letter mapping (an enharmonic spelling when that would need a
double accidental); annotations ("^text", "D.C.") and decorations are left alone.

Bagpipe keys (K:HP, K:Hp: F# and C#, as abc2midi plays them) move to the major key with that
signature (K:Hp up 2 -> K:E). Not supported (AbcError): K:none for shifts that are not whole octaves,
as there is no key signature to carry the shift; and an explicit accidental that would need more than
a double sharp or flat.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llark.abc.fields import (
    ACCIDENTAL_VALUE, FIELD_LINE, KEY_ACCIDENTAL, LETTERS, NATURAL, AbcError, KeySpec, parse_key, spell,
    split_header_body,
)
from llark.abc.lexer import parse_note, tokenize

ACCIDENTAL_TEXT = {2: "^^", 1: "^", 0: "=", -1: "_", -2: "__"}
CHORD_SYMBOL = re.compile(r'"([A-G])([#b]?)((?:maj|min|dim|aug|sus|add|m|M|\+|o|°|ø|[0-9]|[#b]|\(|\)|-|,)*)'
                          r'(?:/([A-G])([#b]?))?"')


@dataclass(frozen=True)
class Shift:
    """How one key moves: letters move `steps` letter positions (diatonic steps, octaves included),
    pitches move `semitones`; `key` is the new key."""

    semitones: int
    steps: int
    key: KeySpec

    def alteration_change(self, letter: str) -> int:
        """Semitones the accidental of `letter` changes by when it moves (same for every octave)."""
        index = LETTERS.index(letter.upper()) + self.steps
        moved = NATURAL[LETTERS[index % 7]] + 12 * (index // 7)
        return NATURAL[letter.upper()] + self.semitones - moved

    def letter(self, letter: str) -> str:
        return LETTERS[(LETTERS.index(letter.upper()) + self.steps) % 7]


def _steps(old_letter: str, new_letter: str, semitones: int) -> int:
    """Letter steps (octaves included) from old to new tonic letter nearest to `semitones` * 7/12."""
    d = (LETTERS.index(new_letter) - LETTERS.index(old_letter)) % 7
    return d + 7 * round((semitones * 7 / 12 - d) / 7)


def key_shift(key: KeySpec, semitones: int, where: str = "K:") -> Shift:
    """The Shift for a key: the transposed tonic on the letter that gives the simplest signature under
    which every moved letter keeps its pitch relation. AbcError for keys without a tonic (K:none, HP)."""
    if key.bagpipe and semitones % 12:
        # Bagpipe music moved off the pipes' scale: written in the major key with the same signature (D).
        return key_shift(KeySpec("D", "major"), semitones, where)
    if key.tonic is None:
        if semitones % 12:
            raise AbcError(f"{where}{key.rest or 'none'}: a tune without a key signature cannot be transposed "
                           f"by {semitones} semitones")
        return Shift(semitones, 7 * (semitones // 12), key)
    pc = (key.pc + semitones) % 12
    candidates = []
    for letter in LETTERS:
        tonic = spell(letter, pc)
        if len(tonic) > 2:
            continue  # no double sharp or flat in a key's name
        steps = _steps(key.tonic[0], letter, semitones)
        shift = Shift(semitones, steps, KeySpec(tonic, key.mode, key.rest, (), key.explicit))
        extra = tuple((shift.letter(l), a + shift.alteration_change(l)) for l, a in key.extra)
        shift = Shift(semitones, steps, KeySpec(tonic, key.mode, key.rest, extra, key.explicit))
        new = shift.key
        if all(-2 <= a <= 2 for _, a in extra) and _signature_maps(key, shift):
            same_side = (new.fifths >= 0) == (key.fifths >= 0)
            candidates.append((abs(new.fifths), not same_side, shift))
    if not candidates:
        raise AbcError(f"{where}{key.tonic}: no key spelling carries a shift of {semitones} semitones")
    return min(candidates, key=lambda c: c[:2])[2]


def _signature_maps(old: KeySpec, shift: Shift) -> bool:
    """Does the new signature give every moved letter its old alteration plus the change?"""
    before, after = old.signature, shift.key.signature
    return all(after.get(shift.letter(l), 0) == before.get(l, 0) + shift.alteration_change(l) for l in LETTERS)


def _key_value(value: str, shift: Shift) -> str:
    """A K: value with its tonic and explicit accidentals (K:D ^g) rewritten, everything else kept."""
    if shift.key.tonic is None:
        return value
    match = re.match(r"(\s*)([A-G][#b]?)(.*)", value, re.DOTALL)
    if match is None:  # K:HP moved to another key: the key's own name replaces it
        return shift.key.tonic
    tail = " ".join(KEY_ACCIDENTAL.sub(lambda m: _moved_accidental(m, shift), word)
                    if KEY_ACCIDENTAL.fullmatch(word) else word for word in match.group(3).split(" "))
    return match.group(1) + shift.key.tonic + tail


def _moved_accidental(match: re.Match, shift: Shift) -> str:
    letter = match.group(2)
    alteration = ACCIDENTAL_VALUE[match.group(1)] + shift.alteration_change(letter)
    if alteration not in ACCIDENTAL_TEXT:
        raise AbcError(f"K: accidental {match.group()} moved by {shift.semitones} semitones needs a triple accidental")
    new = shift.letter(letter)
    return ACCIDENTAL_TEXT[alteration] + (new.lower() if letter.islower() else new)


def _note(text: str, shift: Shift, where: str) -> str:
    note = parse_note(text)
    index = note.octave * 7 + LETTERS.index(note.letter.upper()) + shift.steps
    octave, letter = divmod(index, 7)
    accidental = ""
    if note.accidental:
        alteration = ACCIDENTAL_VALUE[note.accidental] + shift.alteration_change(note.letter)
        if alteration not in ACCIDENTAL_TEXT:
            raise AbcError(f"{where}: {text} moved by {shift.semitones} semitones needs a triple accidental")
        accidental = ACCIDENTAL_TEXT[alteration]
    name = LETTERS[letter]
    marks = "'" * (octave - 5) if octave >= 5 else "," * (4 - octave)
    return accidental + (name.lower() if octave >= 5 else name) + marks + note.length_text


def _chord_root(letter: str, accidental: str, shift: Shift) -> str:
    alteration = accidental.count("#") - accidental.count("b") + shift.alteration_change(letter)
    new = shift.letter(letter)
    if abs(alteration) > 1:  # "B#" up a tone would be "C##": write the pitch's plain name ("D") instead
        names = [spell(other, (NATURAL[new] + alteration) % 12) for other in LETTERS]
        plain = [name for name in names if len(name) == 1]
        return plain[0] if plain else next(n for n in names if n == n[0] + ("#" if alteration > 0 else "b"))
    return new + ("#" if alteration > 0 else "b" if alteration < 0 else "")


def _chord_symbol(text: str, shift: Shift) -> str:
    match = CHORD_SYMBOL.fullmatch(text)
    if not match:
        return text  # an annotation, or a chord name we do not read: text stays text
    root, accidental, quality, bass, bass_accidental = match.groups()
    out = _chord_root(root, accidental, shift) + quality
    if bass:
        out += "/" + _chord_root(bass, bass_accidental, shift)
    return f'"{out}"'


class _Transposer:
    """Walks a tune's body: the shift in force per voice (a K: change or a new voice starts a new one)."""

    def __init__(self, header_key: KeySpec, semitones: int, where: str):
        self.header_key, self.semitones, self.where = header_key, semitones, where
        self.shifts = {"": key_shift(header_key, semitones, f"{where}: K:")}
        self.voice = ""  # the voice before any V: of the body

    @property
    def shift(self) -> Shift:
        return self.shifts[self.voice]

    def field(self, letter: str, value: str) -> str:
        """A K: or V: value (body line or inline field): K: is rewritten, V: switches the voice."""
        if letter == "V":
            name = value.split()[0] if value.split() else self.voice
            if name not in self.shifts:  # a new voice starts in the header's key
                self.shifts[name] = key_shift(self.header_key, self.semitones, f"{self.where}: K:")
            self.voice = name
            return value
        key = parse_key(value, f"{self.where}: K:")
        if key.tonic is None and key.rest.split()[:1] not in (["none"], ["HP"], ["Hp"]):
            return value  # a clef or octave change: the key stays
        self.shifts[self.voice] = key_shift(key, self.semitones, f"{self.where}: K:")
        return _key_value(value, self.shift)

    def music_line(self, line: str) -> str:
        out = []
        for token in tokenize(line):
            if token.kind == "note":
                out.append(_note(token.text, self.shift, self.where))
            elif token.kind == "string":
                out.append(_chord_symbol(token.text, self.shift))
            elif token.kind == "field" and token.text[1] in "KV":
                value = token.text[3:-1] if token.text.endswith("]") else token.text[3:]
                out.append(f"[{token.text[1]}:{self.field(token.text[1], value)}]")
            else:
                out.append(token.text)
        return "".join(out)


def _split_comment(value: str) -> tuple[str, str]:
    """(value, '% comment' or '') of a field value."""
    comment = re.search(r"(?<!\\)%.*$", value)
    return (value[:comment.start()], comment.group()) if comment else (value, "")


def transpose(abc: str, semitones: int, where: str = "tune") -> str:
    """The tune moved by `semitones` (any integer; 12 is an octave). Header fields other than K: and
    all non-music text (comments, lyrics, annotations, decorations) are kept as written.

        transpose('X:1\\nL:1/8\\nK:D\\nd2 ^c=c "A7"B,|\\n', 3)   # 'X:1\\nL:1/8\\nK:F\\nf2 =e_e "C7"D|\\n'
    """
    header, body = split_header_body(abc, where)
    header_lines = header.splitlines()
    key_value, comment = _split_comment(header_lines[-1][2:])
    walker = _Transposer(parse_key(key_value, f"{where}: K:"), semitones, where)
    header_lines[-1] = "K:" + _key_value(key_value, walker.shift) + comment
    lines = []
    for line in body.splitlines():
        field_line = FIELD_LINE.match(line)
        if line.startswith("%") or (field_line and field_line.group(1) not in "KV"):
            lines.append(line)  # comments, lyrics, titles, parts: text
        elif field_line:
            value, comment = _split_comment(field_line.group(2))
            lines.append(f"{field_line.group(1)}:{walker.field(field_line.group(1), value)}{comment}")
        else:
            lines.append(walker.music_line(line))
    before = abc.strip("\n").splitlines()
    start = next((i for i, line in enumerate(before) if line.startswith("X:")), 0)  # text before X: stays
    return "\n".join(before[:start] + header_lines + lines) + ("\n" if abc.endswith("\n") else "")
