"""Instrument names -> instrument classes, for answers, gold labels and General MIDI names alike.

One definition for the instruments task: both sides are mapped to the classes below (a class
groups the General MIDI programs and everyday names of one instrument); F1 is computed on sets of
classes. "guitar" covers acoustic and electric guitars, "bass" every bass (bass guitar, upright,
contrabass), "strings" the ensemble sounds; single orchestral instruments keep their own class.
Mentions in a clause that negates them ("no drums", "without a bass") are dropped, as LLark did.

    instrument_classes("Piano and fretless bass, no drums")   -> {"piano", "bass"}
    instrument_class("Electric Bass (finger)")                -> "bass"
"""

from __future__ import annotations

import re
from functools import lru_cache

# class: (General MIDI programs, everyday names as regular expressions). Longer names win, so
# "bass drum" is drums and "bass clarinet" a clarinet, not a bass.
CLASSES: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = {
    "piano": ((0, 1, 2, 3), (r"pianos?", r"grand pianos?", r"honky[- ]tonk piano", r"pianoforte")),
    "electric piano": ((4, 5), (r"electric pianos?", r"e-pianos?", r"rhodes", r"wurlitzer", r"electric piano \d")),
    "harpsichord": ((6,), (r"harpsichords?",)),
    "clavinet": ((7,), (r"clavinets?", r"clav")),
    "mallets": ((8, 9, 10, 11, 12, 13), (r"celesta", r"glockenspiel", r"music box", r"vibraphones?", r"vibes",
                                          r"marimbas?", r"xylophones?", r"mallets?")),
    "bells": ((14, 112), (r"tubular bells", r"bells", r"chimes", r"tinkle bell")),
    "dulcimer": ((15,), (r"dulcimers?",)),
    "organ": ((16, 17, 18, 19, 20), (r"organs?", r"hammond", r"church organ", r"pipe organ", r"reed organ")),
    "accordion": ((21, 23), (r"accordions?", r"squeezebox", r"concertina")),
    "harmonica": ((22,), (r"harmonicas?", r"mouth organ", r"harp harmonica")),
    "guitar": (tuple(range(24, 32)), (r"guitars?", r"acoustic guitars?", r"electric guitars?", r"nylon[- ]string guitar",
                                       r"steel[- ]string guitar", r"classical guitar", r"distortion guitar",
                                       r"overdriven guitar", r"jazz guitar", r"guitar harmonics")),
    "bass": ((32, 33, 34, 35, 36, 37, 38, 39, 43), (r"bass", r"bass guitars?", r"electric bass", r"acoustic bass",
                                                   r"double bass", r"upright bass", r"contrabass", r"fretless bass",
                                                   r"slap bass", r"synth bass", r"bassline", r"bass line")),
    "violin": ((40, 110), (r"violins?", r"fiddles?")),
    "viola": ((41,), (r"violas?",)),
    "cello": ((42,), (r"cellos?", r"violoncellos?")),
    "strings": ((44, 45, 48, 49, 50, 51), (r"strings", r"string section", r"string ensemble", r"string orchestra",
                                           r"pizzicato strings", r"tremolo strings", r"synth strings")),
    "harp": ((46,), (r"harps?", r"orchestral harp")),
    "timpani": ((47,), (r"timpani", r"kettle ?drums?")),
    "voice": ((52, 53, 54), (r"voices?", r"vocals?", r"choir", r"singers?", r"singing", r"choir aahs", r"voice oohs")),
    "trumpet": ((56, 59), (r"trumpets?", r"muted trumpet", r"cornets?", r"flugelhorn")),
    "trombone": ((57,), (r"trombones?",)),
    "tuba": ((58,), (r"tubas?", r"sousaphone")),
    "french horn": ((60,), (r"french horns?", r"horns?")),
    "brass": ((61, 62, 63), (r"brass", r"brass section", r"synth brass", r"horn section")),
    "saxophone": ((64, 65, 66, 67), (r"saxophones?", r"sax", r"saxes", r"alto sax", r"tenor sax", r"soprano sax",
                                     r"baritone sax")),
    "oboe": ((68,), (r"oboes?",)),
    "english horn": ((69,), (r"english horn", r"cor anglais")),
    "bassoon": ((70,), (r"bassoons?",)),
    "clarinet": ((71,), (r"clarinets?", r"bass clarinet")),
    "flute": ((72, 73, 75, 77), (r"flutes?", r"piccolos?", r"pan ?flutes?", r"shakuhachi", r"tin whistle", r"fife")),
    "recorder": ((74,), (r"recorders?",)),
    "whistle": ((76, 78, 79), (r"whistl(e|es|ing)", r"ocarinas?", r"blown bottle")),
    "synth lead": (tuple(range(80, 88)), (r"synth leads?", r"lead \d", r"lead synth", r"square lead", r"saw lead")),
    "synth pad": (tuple(range(88, 96)), (r"synth pads?", r"pads?", r"pad \d")),
    "synth effects": (tuple(range(96, 104)), (r"fx \d", r"synth effects")),
    "synthesizer": ((), (r"synths?", r"synthesi[sz]ers?")),
    "sitar": ((104,), (r"sitars?",)),
    "banjo": ((105,), (r"banjos?",)),
    "plucked strings": ((106, 107, 108), (r"shamisen", r"koto", r"kalimba", r"mbira", r"thumb piano")),
    "bagpipes": ((109,), (r"bag ?pipes?",)),
    "shehnai": ((111,), (r"shehnai", r"shanai")),
    "steel drums": ((114,), (r"steel drums?", r"steelpan", r"steel pan")),
    "percussion": ((113, 115, 119), (r"percussion", r"agogo", r"woodblocks?", r"shakers?", r"tambourines?",
                                     r"congas?", r"bongos?", r"cowbells?", r"reverse cymbal")),
    "drums": ((116, 117, 118), (r"drums?", r"drum ?kit", r"drum set", r"drumset", r"kit", r"bass drum", r"kick drum",
                                r"snare( drum)?", r"hi-?hats?", r"cymbals?", r"toms?", r"taiko( drum)?",
                                r"melodic tom", r"synth drum")),
    "sound effects": (tuple(range(120, 128)), (r"sound effects", r"helicopter", r"gunshot", r"applause", r"seashore",
                                               r"bird tweet", r"telephone ring", r"breath noise", r"guitar fret noise")),
    "orchestra hit": ((55,), (r"orchestra hits?",)),
}
DRUM_KIT_NAME = "Drums"  # the corpus's name for the General MIDI percussion channel

_NEGATION = re.compile(r"\b(no|not|without|absent|lacks?|lacking|none|neither|nor)\b|n't\b", re.IGNORECASE)
_CLAUSE = re.compile(r"[.;!?\n]+|,|\bbut\b|\bwhile\b|\bthough\b", re.IGNORECASE)
_NAMES = sorted(((pattern, name) for name, (_, patterns) in CLASSES.items() for pattern in patterns),
                key=lambda item: -len(item[0]))
_NAME_PATTERN = re.compile("|".join(rf"(?P<c{i}>\b{p}\b)" for i, (p, _) in enumerate(_NAMES)), re.IGNORECASE)


@lru_cache(maxsize=1)
def _gm_names() -> dict[str, str]:
    from pretty_midi import program_to_instrument_name

    table = {}
    for name, (programs, _) in CLASSES.items():
        for program in programs:
            table[program_to_instrument_name(program).lower()] = name
    table[DRUM_KIT_NAME.lower()] = "drums"
    return table


def instrument_class(name: str) -> str:
    """The class of one instrument name (a General MIDI name or an everyday one); unknown names
    are their own class, lower-cased, so they still count in F1."""
    lowered = name.strip().lower()
    if lowered in _gm_names():
        return _gm_names()[lowered]
    found = instrument_classes(name, drop_negated=False)
    return min(found) if len(found) == 1 else lowered


def instrument_classes(text: str, drop_negated: bool = True) -> set[str]:
    """Classes of every instrument a free-text answer names, except in clauses that negate them."""
    classes: set[str] = set()
    for clause in _CLAUSE.split(text):
        if drop_negated and _NEGATION.search(clause):
            continue
        for match in _NAME_PATTERN.finditer(clause):  # alternatives are tried longest first
            index = int(next(k for k, v in match.groupdict().items() if v is not None)[1:])
            classes.add(_NAMES[index][1])
    return classes
