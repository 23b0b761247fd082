"""ABC tools: fields, the abc2midi verdict and its message table, bar checks, normalisation,
transposition round trips through MIDI, and the audio bridge.

    python -m pytest tests/test_abc.py -q
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from llark import abc
from llark.abc import (
    MESSAGE_TABLE, AbcError, check_bars, classify, extract_tune, first_field, header_fields, measure_bar, normalise,
    parse_key, parse_meter, parse_tune, render_audio, score_notes, split_header_body, split_tunes, to_midi, to_score,
    transpose, validate,
)


def corpus_tune(collection: str, filename: str, number: str) -> str:
    """One tune of music21's shipped ABC corpus (public-domain O'Neill and Ryan collections)."""
    import music21

    path = Path(music21.__file__).resolve().parent / "corpus" / collection / filename
    return dict(split_tunes(path.read_text(encoding="utf-8", errors="replace")))[number]


# Real tunes that play correctly although abc2midi prints "Error" lines for them: a tie between
# different notes (an old slur), a roll before a slur, broken rhythm on unequal notes, repeats it has
# to guess, a grace note squeezed between notes, plus its own bar warnings (it ignores anacrusis).
REAL_FINE = {
    "friars-hill": (("oneills1850", "0001-0050.abc", "10"),
                    {"ignored-symbol", "repeat-guess", "tie-without-partner", "bar-length"}),
    "sunrise": (("oneills1850", "1625-1700.abc", "1684"),
                {"broken-rhythm-unequal", "tie-without-partner", "bar-length"}),
    "kenmure": (("ryansMammoth", "KenmuresOnAndAwaJig.abc", "1"),
                {"broken-rhythm-unequal", "ignored-symbol", "bar-length"}),
    "planxty-crofton": (("oneills1850", "0626-0700.abc", "697"), {"ornament", "repeat-guess", "bar-length"}),
}
HEAD = "X:1\nL:1/8\nM:4/4\nK:G\n"
GOOD = HEAD + "GABc dedB|dedB dedB|\n"
# name -> (tune, ok, fatal kinds expected among the messages)
VERDICTS = {
    "plain": (GOOD, True, set()),
    "chords and decorations": (HEAD + '"G"GABc !trill!dedB|"D7"dedB {c}dedB|]\n', True, set()),
    "broken rhythm on unequal notes (abc2midi: Error)": (HEAD + "GABc d<e<dB|dedB dedB|\n", True, set()),
    "stray characters (abc2midi: Error)": (HEAD + "GABc d2dB|=20\ndedB dedB|\n", True, set()),
    "no K:": ("X:1\nL:1/8\nM:4/4\nGABc dedB|dedB dedB|\n", False, {"no-tune"}),
    "no X: (chatter)": ("I cannot write ABC, sorry.", False, {"no-tune"}),
    "unknown key": ("X:1\nL:1/8\nM:4/4\nK:Q\nGABc dedB|dedB dedB|\n", False, {"unreadable-key"}),
    "unreadable meter": ("X:1\nL:1/8\nM:5/0\nK:G\nGABc dedB|dedB dedB|\n", False, {"unreadable-meter"}),
    "unreadable unit": ("X:1\nL:1/0\nM:4/4\nK:G\nGABc dedB|dedB dedB|\n", False, {"unreadable-length"}),
    "impossible note length": (HEAD + "GA/3Bc d//ed/B|dedB dedB|\n", False, {"unreadable-length"}),
    "unclosed chord": (HEAD + "GABc [dedB|dedB dedB|\n", False, {"open-chord"}),
    "unclosed quote": (HEAD + 'GABc "Am dedB|dedB dedB|\n', False, {"open-quote"}),
    "four >": (HEAD + "GABc d>>>>eB|dedB dedB|\n", False, {"broken-rhythm-overflow"}),
    "too few notes": (HEAD + "GAB|\n", False, set()),
}


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_validator_verdicts_on_good_and_broken_tunes(name):
    abc, ok, fatal = VERDICTS[name]
    verdict = validate(abc)
    assert verdict.ok == ok, (name, verdict.reason)
    assert {m.kind for m in verdict.fatal} >= fatal
    assert not [m for m in verdict.messages if not m.known]  # every message found a row of the table
    if ok:
        assert verdict.reason == "" and verdict.notes >= 8 and verdict.midi.startswith(b"MThd")
    else:
        assert verdict.reason


@pytest.mark.parametrize("name", sorted(REAL_FINE))
def test_real_corpus_tunes_that_abc2midi_complains_about_are_fine(name):
    where, kinds = REAL_FINE[name]
    abc = corpus_tune(*where)
    verdict = validate(abc)
    assert verdict.ok, verdict.reason
    assert {m.kind for m in verdict.messages} == kinds
    assert any(m.level == "Error" for m in verdict.messages)  # abc2midi says "Error"; the table knows better
    check = check_bars(abc)
    assert check.ok, check.describe()


def test_a_real_broken_corpus_tune_is_fatal():
    # Ryan's Camp-Meeting Jig No. 2 writes '[|]', which abc2midi reads as a chord that never closes.
    verdict = validate(corpus_tune("ryansMammoth", "CampMeetingJigNo2.abc", "1"))
    assert not verdict.ok and {m.kind for m in verdict.fatal} == {"open-chord"}


def test_message_table_classifies_real_abc2midi_lines():
    harmless = classify("Error in line-char 10-53 : Cannot apply broken rhythm. Notes not equal durations")
    assert (harmless.kind, harmless.fatal, harmless.level, harmless.line, harmless.column) == \
        ("broken-rhythm-unequal", False, "Error", 10, 53)
    assert classify("Warning in line-char 14-55 : Track 0 Bar 15 has 9/4 time units while the time signature "
                    "has 2").kind == "bar-length"
    fatal = classify("Error in line-char 6-20 : Sustained notes beyond end of track")
    assert fatal.fatal and fatal.kind == "open-chord"
    unknown_error = classify("Error in line-char 1-0 : Something new")
    unknown_warning = classify("Warning in line-char 1-0 : Something new")
    assert (unknown_error.fatal, unknown_error.known, unknown_warning.fatal) == (True, False, False)
    assert classify("voice mapping:").kind == "info"
    kinds = [row[0] for row in MESSAGE_TABLE]
    assert len(kinds) == len(set(kinds)) and all(len(row) == 4 for row in MESSAGE_TABLE)


# ---- fields and the parsed tune -----------------------------------------------------------------
JIG = """X:3
T:Test Jig
T:second title
R:jig
M:6/8
L:1/8
Q:3/8=100
K:Em % the key
B|"Em"E2E GFE|"D"D2D FED|E2E GAB|1 dBA GF:|2 dBA GFE||
|:g2e gfe|d2B dBA|g2e gfe|dBA GFE:|
"""


def test_fields_header_body_and_the_parsed_tune():
    header, body = split_header_body("Here it is:\n" + JIG)
    assert header.startswith("X:3") and header.endswith("K:Em % the key") and body.startswith("B|")
    fields = header_fields(header)
    assert fields["T"] == ["Test Jig", "second title"] and fields["K"] == ["Em"] and first_field(JIG, "Q") == "3/8=100"
    tune = parse_tune(JIG)
    assert (tune.title, tune.key.tonic, tune.key.mode, tune.meter, tune.unit) == ("Test Jig", "E", "minor",
                                                                                   Fraction(3, 4), Fraction(1, 8))
    assert tune.bar_counts == {"1": 10} and tune.repeats == 2 and tune.endings == 2
    assert [b.ending for b in tune.voices["1"][3:6]] == [None, "1", "2"]
    notes = tune.notes()
    assert len(notes) == (1 + 15 + 5) + (1 + 15 + 6) + 2 * 21 and notes[0].pitch == 71  # repeats played out
    assert extract_tune("Sure:\nX:2\nK:G\nGA|\nX:3\nK:D\n") == "X:2\nK:G\nGA|\n"
    assert extract_tune("L:1/8\nK:G\nGA|") == "X:1\nL:1/8\nK:G\nGA|\n"
    with pytest.raises(AbcError, match="no K: field"):
        split_header_body("X:1\nT:nothing\n")


def test_keys_and_meters():
    assert parse_key("Ador").signature == {"F": 1} and parse_key("E Minor").fifths == 1
    assert parse_key("Bb mix clef=bass").rest == "clef=bass" and parse_key("Bbmix").fifths == -3
    assert parse_key("D exp ^f ^c").signature == {"F": 1, "C": 1} and parse_key("none").tonic is None
    with pytest.raises(AbcError, match="unknown mode 'n'"):
        parse_key("Bn")
    assert parse_meter("C|") == 1 and parse_meter("2+3/8") == Fraction(5, 8) and parse_meter("none") is None


# ---- bar checks ---------------------------------------------------------------------------------
def bars_ok(body: str, meter: str = "6/8") -> bool:
    return check_bars(f"X:1\nM:{meter}\nL:1/8\nK:G\n{body}\n").ok


def test_bar_lengths_of_single_bars():
    assert measure_bar("(3ABc d>e f2").duration == 6  # a triplet of 3 in 2; a broken pair keeps its sum
    assert measure_bar("{ag}[CEG]2 z A/B/ !trill!c \"Am\"d").duration == 6
    assert measure_bar("(3:2:2G4c2 d2").duration == 6 and measure_bar("z2 A2-").tied_out  # (p:q:r: r notes


@pytest.mark.parametrize("body, ok", [
    ("B|E2E GFE|D2D FED|E2E GAB|dBA GF:|", True),  # anacrusis and its compensation before :|
    ("|:B|E2E GFE|D2D FED:|\n|:g|g2e gfe|dBA G2:|", True),  # a pickup for each section
    ("B|E2E GFE|D2D FED|1 dBA GF:|2 dBA GFE||", True),  # first ending completes the pickup
    ("E2E GFE|D2D FED|E2E GA|dBA GFE|]", False),  # one eighth missing in the middle
    ("E2E GFE|D2D FED A|E2E GAB|dBA GFE|]", False),  # one eighth too many
    ("E2E GFE|D2 FED|E2E GAB|dBA GFE|", False),  # a short bar that opens no section
    ("E2E GFE|Z2|D2D FED|", True),  # a multi-bar rest counts as whole bars
    ("E2E GFE|[M:9/8]D2D FED FED|[M:6/8][L:1/16]D4D2 F2E2D2|", True),  # inline meter and unit changes
    ("E2E GFE|D2D FED FED|", False),  # ... and the same bar without the meter change
])
def test_bar_check_understands_anacrusis_repeats_endings_and_meter_changes(body, ok):
    assert bars_ok(body) == ok


def test_bar_check_reports_the_wrong_bar_and_endings_that_complete_the_lead_bar():
    check = check_bars("X:1\nM:2/4\nL:1/8\nK:G\nG|AB cd|e3 f|ga b|c2 A2|]\n")
    assert not check.ok and len(check.problems) == 1
    problem = check.problems[0]
    assert (problem.bar.index, problem.bar.duration, problem.expected, problem.bar.text) == (3, Fraction(3, 8),
                                                                                          Fraction(1, 2), "ga b")
    assert "voice 1, bar 4" in str(problem) and check.consistency == pytest.approx(1 - 1 / 5)
    # Aird's style: the bar before the endings is short, each ending opens with the missing notes.
    assert bars_ok("G2|D3 E G3 A|B2 A2A2\n[1 Bd|e2e2 ge dB|G2 E2E2:|\n[2 Bd|e2ge d2 ed|G2 E2E2|]", "4/4")
    assert check_bars("X:1\nM:none\nL:1/8\nK:G\nGABcdefg|ab|\n").checked == 0


MULTI = """X:1
M:4/4
L:1/4
V:1
V:2 clef=bass
K:C
V:1
z c d e|f g a b|[M:3/4]c' b a|g3|]
V:2
C,4|G,4|[M:3/4]C,3|{VOICE2}|]
"""


def test_bar_check_per_voice_in_multi_voice_tunes():
    good = MULTI.replace("{VOICE2}", "C,3")
    check = check_bars(good)
    assert check.ok and check.bars == {"1": 4, "2": 4} and check.lengths == {"1": Fraction(7, 2), "2": Fraction(7, 2)}
    wrong = check_bars(MULTI.replace("{VOICE2}", "C,2 D,2"))  # a 4/4 bar where voice 2 is in 3/4
    assert [(p.bar.voice, p.bar.index) for p in wrong.problems] == [("2", 3)] and not wrong.voices_agree
    short = check_bars(MULTI.replace("{VOICE2}", "C,2"))  # a short last bar is allowed, but voices then differ
    assert not short.problems and not short.voices_agree and "voices differ" in short.describe()
    inline = "X:1\nM:2/4\nL:1/8\nK:G\n[V:1] GA Bc|d4|]\n[V:2] G,4|B,2 D2|]\n"
    assert check_bars(inline).ok and parse_tune(inline).bar_counts == {"1": 2, "2": 2}


# ---- normalise ----------------------------------------------------------------------------------
MESSY = """Some text before the tune
X: 12
T:Title
R:reel
Z:someone
M: C|
Q:1/4=120
%%MIDI program 40
K: A dorian  clef=treble % comment
% a comment line
"Am"A2  B`c [I:foo] dedB|[K: G]GABc   dedB|\\
cdef gabc|
W:words after the tune
|:abc d4 % end
"""


def test_normalise_fixes_order_whitespace_continuations_and_drops_metadata():
    clean = normalise(MESSY)
    assert clean == ('X:1\nL:1/8\nM:C|\nQ:1/4=120\nK:Ador clef=treble\n"Am"A2 Bc dedB|[K:G]GABc dedB|cdef gabc|\n'
                     "|:abc d4\n")
    assert normalise(MESSY, keep=("T", "R")).startswith("X:1\nT:Title\nR:reel\nL:1/8\n")
    assert normalise("X:1\nM:2/4\nK:G\nGA|\n\nX:2\nK:D\nD|\n") == "X:1\nL:1/16\nM:2/4\nK:G\nGA|\n"


@pytest.mark.parametrize("abc", [MESSY, JIG, MULTI.replace("{VOICE2}", "C,3")]
                         + [corpus_tune(*where) for where, _ in REAL_FINE.values()])
def test_normalise_is_idempotent_and_keeps_the_notes(abc):
    clean = normalise(abc)
    assert normalise(clean) == clean
    assert score_notes(to_score(clean)) == score_notes(to_score(abc))


# ---- transpose ----------------------------------------------------------------------------------
def test_transpose_rewrites_keys_accidentals_octaves_and_chord_symbols():
    abc = 'X:1\nL:1/8\nK:D\n"D"d2 ^c=c "A7/C#"B,c\'|[K:Bb]"Gm"_e=B "^Segno" !D.C.! "D.C."|\nK:Ador\nA2|\n'
    up = transpose(abc, 3)
    assert up == 'X:1\nL:1/8\nK:F\n"F"f2 =e_e "C7/E"De\'|[K:Db]"Bbm"_g=d "^Segno" !D.C.! "D.C."|\nK:Cdor\nc2|\n'
    assert transpose("X:1\nK:G\nB,c|\n", 1) == "X:1\nK:Ab\nCd|\n"  # B, moves up an octave mark; Db is in the key
    assert transpose("X:1\nK:Em clef=bass\nE|\n", -2) == "X:1\nK:Dm clef=bass\nD|\n"
    assert transpose("X:1\nK:F#\nF|\n", 12) == "X:1\nK:F#\nf|\n"
    assert transpose("X:1\nK:none\nAB|\n", -12) == "X:1\nK:none\nA,B,|\n"
    bagpipe = "X:1\nL:1/8\nK:Hp\nGABc defg|\n"  # abc2midi plays K:Hp with F# and C#
    assert transpose(bagpipe, 2) == "X:1\nL:1/8\nK:E\nABcd efga|\n"
    assert midi_pitches(transpose(bagpipe, 2)) == [(t, p + 2) for t, p in midi_pitches(bagpipe)]
    with pytest.raises(AbcError, match="cannot be transposed by 1"):
        transpose("X:1\nK:none\nAB|\n", 1)


def midi_pitches(abc: str) -> list[tuple[int, int]]:
    return [(n.start, n.pitch) for n in score_notes(to_score(abc))]


@pytest.mark.parametrize("name", ["planxty-crofton", "kenmure"])
def test_transpose_round_trips_over_all_twelve_shifts(name):
    abc = corpus_tune(*REAL_FINE[name][0])
    original = midi_pitches(abc)
    for semitones in range(-6, 6):
        moved = transpose(abc, semitones)
        assert midi_pitches(moved) == [(t, p + semitones) for t, p in original], semitones
        assert midi_pitches(transpose(moved, -semitones)) == original, semitones
        assert check_bars(moved).ok and validate(moved).ok


# ---- MIDI and audio -----------------------------------------------------------------------------
def test_to_midi_and_the_audio_bridge():
    assert to_midi(GOOD).startswith(b"MThd")
    with pytest.raises(AbcError, match="wrote no MIDI"):
        to_midi("X:1\nGAB|\n")
    tune = 'X:1\nL:1/8\nM:4/4\nQ:1/4=120\nK:G\n"G"GABc dedB|"D"dedB dedB|\n'
    wave = render_audio(tune, 8000)
    assert wave.dtype == np.float32 and wave.shape == (8000 * 5,) and np.abs(wave).max() > 0  # 4 s + 1 s tail
    with_chords = render_audio(tune, 8000, chords=True, program=40, tail=0.5)
    assert with_chords.shape == (8000 * 9 // 2,) and not np.allclose(with_chords[:8000 * 4], wave[:8000 * 4])
    with pytest.raises(AbcError, match="open-chord"):
        render_audio(HEAD + "GABc [dedB|dedB dedB|\n", 8000)


def test_tuplets_of_five_in_compound_meters_take_three_eighths():
    # 6/8 reduces to 3/4 as a fraction; the written meter decides that (5 fits 5 notes in the time of 3.
    six_eight = abc.parse_tune("X:1\nM:6/8\nL:1/8\nK:D\n(5ABcde f|d6|\n").voices["1"]
    three_four = abc.parse_tune("X:1\nM:3/4\nL:1/8\nK:D\n(5ABcde f|d6|\n").voices["1"]
    assert [bar.duration for bar in six_eight] == [Fraction(1, 2), Fraction(3, 4)]
    assert three_four[0].duration == Fraction(1, 4) + Fraction(1, 8)  # q = 2 outside compound meters
