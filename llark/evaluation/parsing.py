"""Parsers from free-text answers to values, robust to phrasing.

    parse_key("It's in F sharp minor")      -> "F# minor"
    parse_key("B♭ major, I think")          -> "Bb major"
    parse_tempo("about 120 BPM")            -> 120.0
    parse_meter("a waltz in three-four")    -> "3/4"
    parse_letter("Answer: (C) because ...") -> "C"
"""

from __future__ import annotations

import re

_SPELLED_SHARP = re.compile(r"\b([A-Ga-g])[\s-]+sharp\b", re.IGNORECASE)
_SPELLED_FLAT = re.compile(r"\b([A-Ga-g])[\s-]+flat\b", re.IGNORECASE)
_KEY = re.compile(r"(?<![A-Za-z#])(?P<tonic>[A-Ga-g])(?P<acc>[#b]?)\s*:?\s*(?P<mode>(?i:major|minor|maj|min)|m)?(?![A-Za-z#0-9])")
# Tonics that mir_eval's key scoring rejects (it raises, stopping an evaluation): their enharmonic names.
_OFF_THE_TABLE = {"Cb": "B", "Fb": "E", "E#": "F", "B#": "C"}
_BARE_TONIC_CONTEXT = re.compile(r"(?:key of|key:|key is|in)\s*$", re.IGNORECASE)


def parse_key(answer: str) -> str | None:
    """The first key the answer states, as "<tonic> major|minor" with # or b (Cb, Fb, E#, B# respelled).

    Accepts "F# minor", "F sharp minor", "F♯m", "B flat major", "Bb maj", "key: D:minor". A lower-case
    tonic needs a spelled-out mode ("f# minor"), and "a minor"/"a major" needs a capital A, since "a"
    is mostly an article. A capital tonic right after "key of"/"in" with no mode is read as major.
    """
    text = answer.replace("♯", "#").replace("♭", "b")
    text = _SPELLED_FLAT.sub(r"\1b", _SPELLED_SHARP.sub(r"\1#", text))
    for match in _KEY.finditer(text):
        tonic, accidental, mode = match.group("tonic"), match.group("acc"), (match.group("mode") or "").lower()
        if tonic.islower() and (mode not in ("major", "minor") or tonic == "a"):
            continue
        if not mode:
            if not _BARE_TONIC_CONTEXT.search(text[: match.start()]):
                continue
            mode = "major"
        spelled = f"{tonic.upper()}{accidental}"
        spelled = _OFF_THE_TABLE.get(spelled, spelled)
        return f"{spelled} {'minor' if mode in ('minor', 'min', 'm') else 'major'}"
    return None


_NUMBER = re.compile(r"(?<![\d/])(\d{2,3}(?:\.\d+)?)(?![\d/])")
_BPM_AFTER = re.compile(r"(\d{2,3}(?:\.\d+)?)\s*(?:bpm|beats per minute|beats a minute|b\.p\.m)", re.IGNORECASE)


def parse_tempo(answer: str) -> float | None:
    """A number stated as BPM, else the first plausible number (20-400) in the answer."""
    span = tempo_span(answer)
    return None if span is None else float(answer[span[0] : span[1]])


def tempo_span(answer: str) -> tuple[int, int] | None:
    """Where the number parse_tempo reads lies in the answer: "In 3/4 at 112 BPM." -> (11, 14)."""
    stated = _BPM_AFTER.search(answer)
    if stated:
        return stated.span(1)
    for match in _NUMBER.finditer(answer):
        if 20 <= float(match.group(1)) <= 400:
            return match.span(1)
    return None


_METER_WORDS = {"two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "nine": "9",
                "twelve": "12", "eight": "8"}
_METER_NUMERIC = re.compile(r"\b(\d{1,2})\s*/\s*(\d{1,2})\b")
_METER_SPELLED = re.compile(r"\b(two|three|four|five|six|seven|nine|twelve)[\s-]+(two|four|eight)\b", re.IGNORECASE)
_METER_NAMES = {"common time": "4/4", "cut time": "2/2", "alla breve": "2/2"}


def parse_meter(answer: str) -> str | None:
    """"6/8", "six-eight", "3 / 4 time", "common time" -> "n/d"."""
    numeric = _METER_NUMERIC.search(answer)
    if numeric and int(numeric.group(1)) >= 2 and numeric.group(2) in ("2", "4", "8", "16"):
        return f"{int(numeric.group(1))}/{int(numeric.group(2))}"
    spelled = _METER_SPELLED.search(answer)
    if spelled:
        return f"{_METER_WORDS[spelled.group(1).lower()]}/{_METER_WORDS[spelled.group(2).lower()]}"
    lowered = answer.lower()
    for name, meter in _METER_NAMES.items():
        if name in lowered:
            return meter
    return None


_LETTER = [
    re.compile(r"\b(?i:answer)\s*(?:(?i:is)|:)?\s*\(?([A-D]|[a-d](?=[).:,]|\s*$))(?![A-Za-z])"),
    re.compile(r"^\s*\(?([A-D])[\).:]?(?:\s|$)"),
    re.compile(r"\(([A-D])\)"),
    re.compile(r"\boption\s+([A-D])\b", re.IGNORECASE),
]


def parse_letter(answer: str, letters: str = "ABCD") -> str | None:
    """The chosen option letter of a multiple-choice answer."""
    for pattern in _LETTER:
        match = pattern.search(answer)
        if match and match.group(1).upper() in letters:
            return match.group(1).upper()
    return None
