"""ABC tools for the symbolic branch: read, check, normalise, transpose and render ABC tunes.

    from llark import abc
    tune = abc.parse_tune(text)                 # header fields, body, bars per voice, repeats, endings
    tune.key, tune.meter, tune.bar_counts, tune.repeats
    verdict = abc.validate(text)                # abc2midi: ok / reason / classified messages / notes / MIDI
    check = abc.check_bars(tune)                # bar lengths (anacrusis, repeats, endings, voices, [M:] changes)
    clean = abc.normalise(text)                 # X:1, L:, M:, K: + body, comments and metadata dropped
    up = abc.transpose(text, 5)                 # K:, notes, accidentals, octave marks, chord symbols
    midi = abc.to_midi(text)                    # Standard MIDI File bytes
    wave = abc.render_audio(text, 22050)        # ABC -> MIDI -> audio with the corpus renderer

Modules: fields (header/body, fields, keys, meters), lexer (tokens of a music line), bars (bars and
the bar check), abc2midi (running it, the message table, validate), normalise, transpose, render.
Text-only functions raise AbcError (a ValueError) naming the tune (`where`) and the problem.
"""

from llark.abc.abc2midi import (
    MESSAGE_TABLE, MIN_NOTES, Message, NoteEvent, Verdict, classify, find_abc2midi, run_abc2midi, score_notes,
    to_midi, to_score, validate,
)
from llark.abc.bars import Bar, BarCheck, BarInfo, BarProblem, Tune, check_bars, measure_bar, parse_tune
from llark.abc.fields import (
    AbcError, KeySpec, extract_tune, first_field, header_fields, parse_fraction, parse_key, parse_meter, parse_unit,
    split_header_body, split_tunes,
)
from llark.abc.normalise import key_text, normalise
from llark.abc.render import abc_to_pretty_midi, render_audio
from llark.abc.transpose import key_shift, transpose

__all__ = [
    "MESSAGE_TABLE", "MIN_NOTES", "AbcError", "Bar", "BarCheck", "BarInfo", "BarProblem", "KeySpec", "Message",
    "NoteEvent", "Tune", "Verdict", "abc_to_pretty_midi", "check_bars", "classify", "extract_tune", "find_abc2midi",
    "first_field", "header_fields", "key_shift", "key_text", "measure_bar", "normalise", "parse_fraction", "parse_key",
    "parse_meter", "parse_tune", "parse_unit", "render_audio", "run_abc2midi", "score_notes", "split_header_body",
    "split_tunes", "to_midi", "to_score", "transpose", "validate",
]
