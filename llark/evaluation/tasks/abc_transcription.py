"""Melody transcription in ABC: note-level F1 after ABC -> MIDI (symusic's abc2midi), scored with
mir_eval.transcription on onsets and pitches (50 ms onset tolerance, offsets ignored).

Both tunes are rendered at their own Q: tempo (120 BPM of the L: unit when absent), so a transcription
with the right notes but another tempo marking scores low: the task asks for what was heard.
"""

from __future__ import annotations

import mir_eval
import numpy as np

from llark.abc import AbcError, extract_tune, to_score


def abc_notes(abc: str) -> tuple[np.ndarray, np.ndarray]:
    """(intervals [N, 2] seconds, pitches [N] Hz) of every note in the first ABC tune of `abc` (an
    answer without an X: line gets one). Only the written notes count: chord symbols ("Am") are not the
    melody the question asks for, so they are not sounded.
    Raises ValueError when abc2midi writes no MIDI or the tune has no notes."""
    try:
        score = to_score(extract_tune(abc), chords=False).to("second")
    except AbcError as err:
        raise ValueError(f"not parseable ABC ({err})") from None
    notes = [note for track in score.tracks for note in track.notes]
    if not notes:
        raise ValueError("the ABC holds no notes")
    intervals = np.array([[n.time, n.time + max(n.duration, 1e-3)] for n in notes])
    pitches = mir_eval.util.midi_to_hz(np.array([n.pitch for n in notes], dtype=float))
    return intervals, pitches


class AbcTranscriptionTask:
    name = "abc_transcription"
    constant = "X:1\nL:1/4\nK:C\nC D E F|G A B c|"

    def parse(self, answer: str) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            return abc_notes(answer)
        except ValueError:
            return None

    def parse_gold(self, gold):
        return abc_notes(str(gold))

    def metrics(self, predicted, gold) -> dict[str, float]:
        scores = []
        for p, g in zip(predicted, gold):
            if p is None:
                scores.append(0.0)
                continue
            _, _, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(g[0], g[1], p[0], p[1], offset_ratio=None)
            scores.append(f1)
        return {"note_f1": float(np.mean(scores))}
