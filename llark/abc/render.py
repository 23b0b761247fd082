"""The bridge: ABC -> MIDI (abc2midi) -> audio with the corpus renderer (a General MIDI soundfont).

    wave = render_audio(abc, sample_rate=22050)                         # pretty_midi's TimGM6mb.sf2, piano
    wave = render_audio(abc, 44100, soundfont="FluidR3_GM.sf2", program=40, chords=True)

The tempo is the tune's Q: (abc2midi's default, 120 quarter notes a minute, without one). A tune with
a fatal abc2midi message is refused (AbcError): its audio would not be the written music.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from llark.abc.abc2midi import run_abc2midi
from llark.abc.fields import AbcError


def abc_to_pretty_midi(abc: str, chords: bool = False, program: int | None = None, where: str = "tune"):
    """pretty_midi.PrettyMIDI of one tune; `program` (0-127) replaces every pitched instrument's GM program.
    AbcError when abc2midi writes no MIDI or reports a fatal problem."""
    import pretty_midi

    run = run_abc2midi(abc, () if chords else ("-NGUI",))
    fatal = [str(m) for m in run.messages if m.fatal]
    if run.midi is None or fatal:
        raise AbcError(f"{where}: abc2midi could not render the tune ({'; '.join(fatal[:3]) or 'no MIDI written'})")
    midi = pretty_midi.PrettyMIDI(io.BytesIO(run.midi))
    if program is not None:
        if not 0 <= program <= 127:
            raise AbcError(f"{where}: GM program must be 0-127, got {program}")
        for instrument in midi.instruments:
            if not instrument.is_drum:
                instrument.program = program
    return midi


def render_audio(abc: str, sample_rate: int, soundfont: str | Path | None = None, program: int | None = None,
                 chords: bool = False, tail: float = 1.0, where: str = "tune") -> np.ndarray:
    """Mono float32 audio of one tune (last note's end plus `tail` seconds); not normalised, use
    llark.corpus.render.peak_normalise for that. Chord symbols sound only with `chords=True`."""
    from llark.corpus.render import render_midi

    midi = abc_to_pretty_midi(abc, chords, program, where)
    if not any(instrument.notes for instrument in midi.instruments):
        raise AbcError(f"{where}: the tune has no notes to render")
    return render_midi(midi, sample_rate, soundfont, tail=tail)
