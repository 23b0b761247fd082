"""Seeded generator of checkable music-theory multiple-choice questions in MusicTheoryBench's layout.

Six categories (intervals, chord qualities, key signatures, scales, meters, ABC reading), each with a
knowledge form (recall one fact) and a reasoning form (several steps: spell, invert, apply a key
signature, add up durations). Every answer is computed from the question's own material by the
functions below, never written by hand; distractors are distinct and checked wrong (a different
pitch, key, class or number), so each question has exactly one right option.

    records = generate_records(60, seed=0)     # dicts in the public layout, plus "category"
    records[0]["stem"], records[0]["options"], records[0]["answer"]

Question i depends only on (seed, i), so a longer set extends a shorter one. `llark.theory_bench`
loads these records like the real benchmark's.
"""

from __future__ import annotations

import random
import re
from fractions import Fraction
from typing import Any

from llark.corpus.theory import KEYS_24, LETTERS, Key, TheoryError, pitch_class, spell

INSTRUCTION = ("Read the following questions from the four options (A, B, C and D) given in each question. "
               "Choose the best option.")
SCORE_SENTENCE = "Use the example below to answer the question that follows."  # opens stems that use abc_score
CATEGORIES = ("intervals", "chord_qualities", "key_signatures", "scales", "meters", "abc_reading")
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh")

# ---- intervals ------------------------------------------------------------------------------------
_NUMBERS = ("unison", "second", "third", "fourth", "fifth", "sixth", "seventh", "octave")
_PERFECT = {0: 0, 3: 5, 4: 7, 7: 12}  # diatonic steps -> semitones of the perfect interval
_MAJOR = {1: 2, 2: 4, 5: 9, 6: 11}  # diatonic steps -> semitones of the major interval
INTERVAL_NAMES = ("minor second", "major second", "minor third", "major third", "perfect fourth",
                  "augmented fourth", "diminished fifth", "perfect fifth", "minor sixth", "major sixth",
                  "minor seventh", "major seventh", "perfect octave")
_QUALITY_SHIFT = {"perfect": 0, "major": 0, "minor": -1, "augmented": 1}  # diminished depends on the number


def single_accidental(name: str) -> bool:
    """True for a letter with at most one # or b (the spellings the questions use)."""
    return len(name) <= 2


def interval_name(lower: str, upper: str) -> str:
    """The ascending interval between two note names, from letter distance and semitones:
    ('C', 'Eb') -> 'minor third'; the same letter twice is an octave."""
    steps = (LETTERS.index(upper[0]) - LETTERS.index(lower[0])) % 7 or 7
    base = _PERFECT.get(steps, _MAJOR.get(steps))
    diff = ((pitch_class(upper) - pitch_class(lower)) - base + 6) % 12 - 6  # how far from perfect/major
    qualities = {0: "perfect", 1: "augmented", -1: "diminished"} if steps in _PERFECT else \
        {0: "major", -1: "minor", 1: "augmented", -2: "diminished"}
    if diff not in qualities:
        raise TheoryError(f"no simple interval name for {lower} -> {upper}")
    return f"{qualities[diff]} {_NUMBERS[steps]}"


def transpose(note: str, interval: str, up: bool = True) -> str:
    """The note `interval` ('major sixth') above (or below) `note`, spelled by letter: ('F#', 'minor third') -> 'A'."""
    quality, number = interval.split()
    steps = _NUMBERS.index(number)
    base = _PERFECT.get(steps, _MAJOR.get(steps))
    if quality == "diminished":
        semis = base - (1 if steps in _PERFECT else 2)
    else:
        semis = base + _QUALITY_SHIFT[quality]
    sign = 1 if up else -1
    letter = LETTERS[(LETTERS.index(note[0]) + sign * steps) % 7]
    return spell(letter, pitch_class(note) + sign * semis)


def other_spellings(note: str) -> list[str]:
    """Same letter with another single accidental: 'F#' -> ['F', 'Fb']."""
    return [note[0] + acc for acc in ("", "#", "b") if note[0] + acc != note]


def neighbour_notes(note: str) -> list[str]:
    """The letters a step either side, with the note's own accidental."""
    index = LETTERS.index(note[0])
    return [LETTERS[(index + d) % 7] + note[1:] for d in (-1, 1)]


def wrong_pitches(answer: str, candidates: list[str]) -> list[str]:
    """Candidates that sound different from `answer` (an enharmonic spelling would be a second right answer)."""
    return [c for c in candidates if single_accidental(c) and pitch_class(c) != pitch_class(answer)]


# ---- chords ---------------------------------------------------------------------------------------
CHORD_QUALITIES = {  # semitones of each stacked third above the root
    "major triad": (4, 7), "minor triad": (3, 7), "diminished triad": (3, 6), "augmented triad": (4, 8),
    "dominant seventh": (4, 7, 10), "major seventh": (4, 7, 11), "minor seventh": (3, 7, 10),
    "half-diminished seventh": (3, 6, 10), "diminished seventh": (3, 6, 9),
}


def spell_chord(root: str, quality: str) -> list[str]:
    """Root-position spelling, one letter every third: ('D', 'dominant seventh') -> ['D', 'F#', 'A', 'C']."""
    start = LETTERS.index(root[0])
    return [root] + [spell(LETTERS[(start + 2 * (k + 1)) % 7], pitch_class(root) + s)
                     for k, s in enumerate(CHORD_QUALITIES[quality])]


def single_accidental_chord(root: str, quality: str) -> bool:
    return all(single_accidental(n) for n in spell_chord(root, quality))


def chord_root(notes: list[str]) -> str:
    """The note from which the others stack in thirds by letter (any inversion): ['E', 'G', 'C'] -> 'C'."""
    letters = {LETTERS.index(n[0]): n for n in notes}
    for index, note in letters.items():
        if all((index + 2 * k) % 7 in letters for k in range(len(notes))):
            return note
    raise TheoryError(f"{notes} do not stack in thirds")


def chord_quality(notes: list[str]) -> str:
    """The quality of a chord from its notes in any order, measured above its root."""
    root = chord_root(notes)
    start = LETTERS.index(root[0])
    by_letter = {LETTERS.index(n[0]): n for n in notes}
    semis = tuple((pitch_class(by_letter[(start + 2 * k) % 7]) - pitch_class(root)) % 12 for k in range(1, len(notes)))
    for name, intervals in CHORD_QUALITIES.items():
        if intervals == semis:
            return name
    raise TheoryError(f"no chord quality for {notes}")


# ---- keys -----------------------------------------------------------------------------------------
def key_signature(key: Key) -> int:
    """Sharps (positive) or flats (negative) in the key signature, counted on the spelled scale."""
    scale = key.spelled_scale()
    return sum(n.count("#") for n in scale) - sum(n.count("b") for n in scale)


def signature_text(count: int) -> str:
    if count == 0:
        return "no sharps or flats"
    word = "sharp" if count > 0 else "flat"
    return f"{abs(count)} {word}{'s' if abs(count) > 1 else ''}"


def relative_key(key: Key) -> Key:
    """The key with the same signature and the other mode (its 6th degree, or its 3rd)."""
    scale = key.spelled_scale()
    return Key(scale[5], "minor") if key.mode == "major" else Key(scale[2], "major")


def key_with_signature(count: int, mode: str) -> Key | None:
    return next((k for k in KEYS_24 if k.mode == mode and key_signature(k) == count), None)


# ---- meters ---------------------------------------------------------------------------------------
METER_POOL = ("2/2", "2/4", "3/4", "4/4", "3/2", "6/8", "9/8", "12/8", "6/4")
_BEAT_WORDS = {2: "duple", 3: "triple", 4: "quadruple"}
METER_CLASSES = tuple(f"{kind} {word}" for kind in ("simple", "compound") for word in _BEAT_WORDS.values())
NOTE_VALUES = {"half": Fraction(1, 2), "quarter": Fraction(1, 4), "eighth": Fraction(1, 8), "sixteenth": Fraction(1, 16)}


def meter_class(label: str) -> str:
    """'6/8' -> 'compound duple': a numerator of 6, 9 or 12 groups its beats in threes."""
    numerator = int(label.split("/")[0])
    compound = numerator in (6, 9, 12)
    return f"{'compound' if compound else 'simple'} {_BEAT_WORDS[numerator // 3 if compound else numerator]}"


def notes_per_bars(label: str, bars: int, value: Fraction) -> Fraction:
    numerator, denominator = (int(x) for x in label.split("/"))
    return bars * Fraction(numerator, denominator) / value


# ---- ABC ------------------------------------------------------------------------------------------
_ABC_NOTE = re.compile(r"(?P<acc>\^|_|=)?(?P<letter>[A-Ga-g])(?P<octave>[,']*)(?P<num>\d*)(?P<slash>/?)(?P<den>\d*)")
_ABC_ACCIDENTAL = {"^": "#", "_": "b", "=": "", None: None}


def abc_key(field: str) -> Key:
    """A K: field as generated here: 'Bb' -> Bb major, 'F#m' -> F# minor."""
    return Key(field[:-1], "minor") if field.endswith("m") else Key(field, "major")


def abc_fields(abc: str) -> tuple[dict[str, str], str]:
    """(header fields, body) of a one-voice fragment: 'L:1/8\\nK:D\\nF2 A |]' -> ({'L': '1/8', 'K': 'D'}, 'F2 A |]')."""
    fields, body = {}, []
    for line in abc.splitlines():
        if re.match(r"^[A-Za-z]:", line):
            fields[line[0]] = line[2:].strip()
        else:
            body.append(line)
    return fields, "\n".join(body)


def abc_notes(abc: str) -> list[tuple[str, Fraction]]:
    """(sounding note name, length in whole notes) of each note of a fragment, applying the K: signature.

    Explicit accidentals (^ _ =) override the signature; the fragments generated here never rely on
    an accidental carrying on through the bar, so that ABC rule is not modelled.
    """
    fields, body = abc_fields(abc)
    unit = Fraction(fields.get("L", "1/8"))
    signature = {n[0]: n[1:] for n in abc_key(fields.get("K", "C")).spelled_scale()}
    notes = []
    for m in _ABC_NOTE.finditer(body):
        letter = m["letter"].upper()
        accidental = _ABC_ACCIDENTAL[m["acc"]]
        name = letter + (signature[letter] if accidental is None else accidental)
        length = Fraction(int(m["num"] or 1), int(m["den"] or 2) if m["slash"] else 1)
        notes.append((name, length * unit))
    return notes


def abc_token(name: str, length: str = "", explicit: bool = True, high: bool = False) -> str:
    """An ABC note: ('F#', '2') -> '^F2'; `explicit=False` leaves the accidental to the key signature."""
    accidental = {"#": "^", "b": "_", "": "="}[name[1:]] if explicit else ""
    return accidental + (name[0].lower() if high else name[0]) + length


# ---- question makers: (rng, reasoning) -> stem, answer, wrong candidates, abc_score, analysis ---------
def _intervals(rng: random.Random, reasoning: bool) -> dict[str, Any]:
    while True:
        note = rng.choice(["C", "D", "E", "F", "G", "A", "B", "Bb", "Eb", "Ab", "F#", "C#"])
        interval = rng.choice(INTERVAL_NAMES)
        up = rng.random() < 0.5 if reasoning else True
        other = transpose(note, interval, up)
        if single_accidental(other):
            break
    if not reasoning:
        name = interval_name(note, other)
        number = name.split()[1]
        near = [n for n in INTERVAL_NAMES if n != name and (n.split()[1] == number or abs(
            INTERVAL_NAMES.index(n) - INTERVAL_NAMES.index(name)) <= 3)]
        return {"stem": f"What is the interval from {note} up to {other}?", "answer": name, "wrong": near,
                "analysis": f"{note} up to {other}: {name}."}
    lower, upper = (note, other) if up else (other, note)
    if interval_name(lower, upper) != interval:
        raise TheoryError(f"transpose({note}, {interval}) gave {other}")
    candidates = other_spellings(other) + neighbour_notes(other) + [other[0] + a for a in ("#", "b")]
    direction = "above" if up else "below"
    return {"stem": f"Which note is a {interval} {direction} {note}?", "answer": other,
            "wrong": wrong_pitches(other, candidates),
            "analysis": f"From {lower} up to {upper} is a {interval_name(lower, upper)}."}


def _chord_qualities(rng: random.Random, reasoning: bool) -> dict[str, Any]:
    symmetric = ("augmented triad", "diminished seventh")  # their root cannot be told from an inversion
    qualities = [q for q in CHORD_QUALITIES if not (reasoning and q in symmetric)]
    while True:
        notes = spell_chord(rng.choice(["C", "D", "E", "F", "G", "A", "B", "Bb", "Eb", "F#"]), rng.choice(qualities))
        if all(single_accidental(n) for n in notes):
            break
    same_size = [q for q in CHORD_QUALITIES if len(CHORD_QUALITIES[q]) == len(notes) - 1]
    if not reasoning:
        answer = chord_quality(notes)
        return {"stem": f"Which chord is spelled {'-'.join(notes)} (root position)?", "answer": answer,
                "wrong": [q for q in same_size if q != answer], "analysis": f"Above {notes[0]}: {answer}."}
    rotation = rng.randrange(1, len(notes))
    voiced = notes[rotation:] + notes[:rotation]
    root, quality = chord_root(voiced), chord_quality(voiced)
    pcs = {pitch_class(n) for n in voiced}
    wrong = [f"{r} {q}" for r in voiced for q in same_size
             if (r, q) != (root, quality) and single_accidental_chord(r, q) and
             {pitch_class(n) for n in spell_chord(r, q)} != pcs]
    return {"stem": f"The notes {'-'.join(voiced)} (lowest first) form which chord?", "answer": f"{root} {quality}",
            "wrong": wrong, "analysis": f"Stacked in thirds from {root}: {'-'.join(spell_chord(root, quality))}."}


def _key_signatures(rng: random.Random, reasoning: bool) -> dict[str, Any]:
    if not reasoning:
        key = rng.choice(KEYS_24)
        count = key_signature(key)
        near = [c for c in (-count, count + 1, count - 1, count + 2, count - 2) if c != count and -7 <= c <= 7]
        return {"stem": f"How many sharps or flats are in the key signature of {key.name}?",
                "answer": signature_text(count), "wrong": [signature_text(c) for c in near],
                "analysis": f"The {key.name} scale is {' '.join(key.spelled_scale())}."}
    count, mode = rng.randint(-5, 5), rng.choice(("major", "minor"))
    key = key_with_signature(count, mode)
    answer = relative_key(key)
    others = [relative_key(k) for c in (count + 1, count - 1, count + 2, count - 2)
              if (k := key_with_signature(c, mode)) is not None]
    wrong = [Key(key.tonic, answer.mode)] + others
    return {"stem": f"A key signature has {signature_text(count)}. What is the relative {answer.mode} of the "
                    f"{mode} key with this signature?", "answer": answer.name,
            "wrong": [k.name for k in wrong if k != answer],
            "analysis": f"{signature_text(count)} is {key.name}; its relative {answer.mode} is {answer.name}."}


def _scales(rng: random.Random, reasoning: bool) -> dict[str, Any]:
    key = rng.choice(KEYS_24)
    scale = key.spelled_scale()
    scale_name = f"{key.tonic} {'major' if key.mode == 'major' else 'natural minor'}"
    if not reasoning:
        degree = rng.randint(2, 7)
        answer = scale[degree - 1]
        candidates = [n for n in scale if n != answer] + other_spellings(answer)
        return {"stem": f"What is the {_ORDINALS[degree - 1]} degree of the {scale_name} scale?", "answer": answer,
                "wrong": wrong_pitches(answer, candidates), "analysis": f"{scale_name}: {' '.join(scale)}."}
    shuffled = scale[:]
    rng.shuffle(shuffled)
    same_mode = [k for k in KEYS_24 if k.mode == key.mode]
    # nearest signatures first: the keys a reader would confuse with the right one
    nearest = sorted(same_mode, key=lambda k: (abs(key_signature(k) - key_signature(key)), k.tonic))
    wrong = [k for k in nearest if set(k.spelled_scale()) != set(scale)][:5]
    mode_word = "major" if key.mode == "major" else "natural minor"
    return {"stem": f"Which {mode_word} scale consists of exactly these notes: {', '.join(shuffled)}?",
            "answer": key.name, "wrong": [k.name for k in wrong], "analysis": f"{key.name}: {' '.join(scale)}."}


def _meters(rng: random.Random, reasoning: bool) -> dict[str, Any]:
    label = rng.choice(METER_POOL)
    if not reasoning:
        answer = meter_class(label)
        return {"stem": f"How is the time signature {label} classified?", "answer": answer,
                "wrong": [c for c in METER_CLASSES if c != answer],
                "analysis": f"{label}: {answer}."}
    bars = rng.randint(2, 6)
    values = [v for v in NOTE_VALUES if notes_per_bars(label, bars, NOTE_VALUES[v]).denominator == 1
              and notes_per_bars(label, bars, NOTE_VALUES[v]) <= 96]
    value = rng.choice(values)
    answer = int(notes_per_bars(label, bars, NOTE_VALUES[value]))
    numerator = int(label.split("/")[0])
    near = [answer + d for d in (1, -1, 2, -2)] + [answer * 2, answer // 2, bars * numerator]
    return {"stem": f"In {label} time, how many {value} notes fill {bars} bars?", "answer": str(answer),
            "wrong": [str(n) for n in near if n > 0 and n != answer],
            "analysis": f"A bar of {label} lasts {Fraction(label)} whole note; {bars} bars hold {answer} {value} notes."}


def _abc_reading(rng: random.Random, reasoning: bool) -> dict[str, Any]:
    if not reasoning:
        note = rng.choice([letter + acc for letter in LETTERS for acc in ("", "#", "b")])
        abc = f"L:1/4\nM:4/4\nK:C\n{abc_token(note, '4', high=rng.random() < 0.5)} |]"
        (answer, _), = abc_notes(abc)
        candidates = other_spellings(answer) + neighbour_notes(answer)
        return {"stem": f"{SCORE_SENTENCE} Which note is written in the example?", "abc_score": abc, "answer": answer,
                "wrong": wrong_pitches(answer, candidates), "analysis": f"The note is {answer}."}
    if rng.random() < 0.5:
        key = rng.choice([k for k in KEYS_24 if key_signature(k) != 0])
        field = key.tonic + ("m" if key.mode == "minor" else "")
        letters = [rng.choice(LETTERS) for _ in range(4)]
        position = rng.randrange(4)
        altered = [n[0] for n in key.spelled_scale() if len(n) > 1]
        letters[position] = rng.choice(altered)  # a note the signature changes: the point of the question
        body = " ".join(abc_token(letter, rng.choice(["", "2"]), explicit=False, high=rng.random() < 0.5)
                        for letter in letters)
        abc = f"L:1/8\nM:4/4\nK:{field}\n{body} |]"
        answer = abc_notes(abc)[position][0]
        candidates = other_spellings(answer) + neighbour_notes(answer)
        return {"stem": f"{SCORE_SENTENCE} Which note sounds as the {_ORDINALS[position]} note of the example?",
                "abc_score": abc, "answer": answer, "wrong": wrong_pitches(answer, candidates),
                "analysis": f"K:{field} is {key.name} ({signature_text(key_signature(key))})."}
    tokens = [abc_token(rng.choice(LETTERS), rng.choice(["", "2", "3", "4", "/2", "3/2", "6"]), explicit=False)
              for _ in range(rng.randint(3, 6))]
    abc = f"L:1/8\nK:C\n{' '.join(tokens)} |]"  # no M: (free meter), so one long bar is well-formed
    total = sum(length for _, length in abc_notes(abc)) * 4
    if total.denominator != 1:  # complete the last beat so the answer is a whole number
        missing = (1 - total % 1) / 4 / Fraction(1, 8)
        abc = abc.replace(" |]", f" {abc_token(rng.choice(LETTERS), str(missing).replace('1/', '/'), explicit=False)} |]")
        total = sum(length for _, length in abc_notes(abc)) * 4
    answer = int(total)
    near = [answer + d for d in (1, -1, 2, -2)] + [answer * 2, len(abc_notes(abc))]
    return {"stem": f"{SCORE_SENTENCE} How many quarter-note beats does the example last?", "abc_score": abc,
            "answer": str(answer), "wrong": [str(n) for n in near if n > 0 and n != answer],
            "analysis": f"With L:1/8 the lengths add up to {answer} quarter notes."}


_MAKERS = {"intervals": _intervals, "chord_qualities": _chord_qualities, "key_signatures": _key_signatures,
           "scales": _scales, "meters": _meters, "abc_reading": _abc_reading}


def subject_of(index: int) -> str:
    """Two of every three rounds through the categories are knowledge, one is reasoning
    (MusicTheoryBench is 269 knowledge / 98 reasoning, about 73 / 27 %)."""
    return "reasoning" if (index // len(CATEGORIES)) % 3 == 2 else "knowledge"


def generate_record(index: int, seed: int) -> dict[str, Any]:
    """Question `index` of the set with `seed`, as a public-layout record with a `category`."""
    rng = random.Random(f"{seed}:{index}")  # a string seed hashes the same way in every run
    category, subject = CATEGORIES[index % len(CATEGORIES)], subject_of(index)
    made = _MAKERS[category](rng, subject == "reasoning")
    wrong = [w for w in dict.fromkeys(made["wrong"]) if w != made["answer"]]
    if len(wrong) < 3:
        raise RuntimeError(f"question {index} ({category}) has only {len(wrong)} distractors: {made}")
    texts = [made["answer"], *rng.sample(wrong, 3)]
    rng.shuffle(texts)
    letters = "ABCD"
    return {"id": index, "instruction": INSTRUCTION, "stem": made["stem"], "options": dict(zip(letters, texts)),
            "subject": subject, "answer": letters[texts.index(made["answer"])], "split": "test",
            "abc_score": made.get("abc_score", ""), "analysis": made["analysis"], "category": category}


def generate_records(count: int, seed: int = 0, dev: int = 0) -> list[dict[str, Any]]:
    """`count` records; the first `dev` are marked split 'dev' (the few-shot examples)."""
    if not 0 <= dev <= count:
        raise ValueError(f"dev must be between 0 and count ({count}), got {dev}")
    records = [generate_record(i, seed) for i in range(count)]
    for record in records[:dev]:
        record["split"] = "dev"
    return records
