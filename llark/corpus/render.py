"""MIDI to audio with a General MIDI soundfont (tinysoundfont): mono float32 at a chosen sample rate.

    wave = render_midi(piece.midi, sample_rate=22050)                         # pretty_midi's TimGM6mb.sf2
    wave = render_midi(piece.midi, 44100, soundfont="FluidR3_GM.sf2", tail=1.0)
    wave = render_midi(piece.midi, 22050, formant_semitones=2)   # the same notes, every timbre's formants 2 lower

Events are applied at exact sample positions (note-offs before note-ons at the same sample, so a
repeated pitch is re-struck, not cut), on a fresh synthesizer per call: the same score always renders
to the same samples. Each pitched instrument gets its own channel; drums play on channel 10 with the
instrument's program as the drum kit (bank 128).

`formant_semitones=k` plays every pitched note k semitones higher on a synthesizer running at 2^(k/12) times
the sample rate, and keeps its samples as if at the sample rate: the pitches and the times come out as written,
and every instrument's spectral envelope (its formants) k semitones lower, its attacks and decays 2^(k/12) times
longer, as if another set of samples had been recorded. Drums are not transposed (their pitch picks the drum), so
the kit sounds k semitones lower. An augmentation for models that should hear an instrument in any soundfont.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile
import tinysoundfont

DRUM_CHANNEL = 9
DEFAULT_SOUNDFONT = Path(pretty_midi.__file__).resolve().parent / "TimGM6mb.sf2"


class RenderError(RuntimeError):
    """A score that cannot be rendered with the given soundfont; the message says why."""


@lru_cache(maxsize=4)
def _soundfont_bytes(path: str) -> bytes:
    # Read once per process; every render still gets a fresh synthesizer (no carried-over voices).
    return Path(path).read_bytes()


def _assign_channels(midi: pretty_midi.PrettyMIDI) -> list[int]:
    channels, free = [], [c for c in range(16) if c != DRUM_CHANNEL]
    for instrument in midi.instruments:
        if instrument.is_drum:
            channels.append(DRUM_CHANNEL)
        elif free:
            channels.append(free.pop(0))
        else:
            raise RenderError(f"more than 15 pitched instruments ({len(midi.instruments)}); GM has 15 melodic channels")
    return channels


def _select_programs(synth: tinysoundfont.Synth, sfid: int, midi: pretty_midi.PrettyMIDI, channels: list[int],
                     soundfont: Path, tuning_cents: float) -> None:
    drum_kits = {i.program for i in midi.instruments if i.is_drum}
    if len(drum_kits) > 1:
        raise RenderError(f"drum parts use different kits {sorted(drum_kits)}; one percussion channel holds one kit")
    for instrument, channel in zip(midi.instruments, channels):
        if instrument.is_drum:
            kit = instrument.program if synth.sfpreset_name(sfid, 128, instrument.program) else 0
            synth.program_select(channel, sfid, 128, kit, is_drums=True)  # kit 0 where the soundfont lacks it
            continue
        if synth.sfpreset_name(sfid, 0, instrument.program) is None:
            raise RenderError(f"{soundfont}: no preset for GM program {instrument.program} "
                              f"({pretty_midi.program_to_instrument_name(instrument.program)})")
        synth.program_select(channel, sfid, 0, instrument.program)
        if tuning_cents:
            synth.set_tuning(channel, tuning_cents / 100.0)


def render_midi(midi: pretty_midi.PrettyMIDI, sample_rate: int, soundfont: str | Path | None = None,
                tail: float = 1.0, duration: float | None = None, tuning_cents: float = 0.0,
                formant_semitones: int = 0) -> np.ndarray:
    """Mono float32 audio of `midi`: `duration` seconds, or the last note's end plus `tail` (release);
    `formant_semitones` shifts every timbre's formants down by that many semitones (module docstring)."""
    soundfont = Path(soundfont) if soundfont else DEFAULT_SOUNDFONT
    if not soundfont.is_file():
        raise RenderError(f"{soundfont}: soundfont file not found")
    if duration is None:
        duration = midi.get_end_time() + tail
    total = max(1, math.ceil(duration * sample_rate))

    # The synthesizer's clock runs 2^(k/12) fast and its notes k semitones high: heard at sample_rate, the
    # pitches are as written and the samples' spectra k semitones lower.
    synth = tinysoundfont.Synth(samplerate=int(round(sample_rate * 2.0 ** (formant_semitones / 12.0))))
    try:
        sfid = synth.sfload(_soundfont_bytes(str(soundfont)))
    except Exception as err:  # tinysoundfont raises a bare Exception for unreadable files
        raise RenderError(f"{soundfont}: not a readable soundfont ({err})") from None
    channels = _assign_channels(midi)
    _select_programs(synth, sfid, midi, channels, soundfont, tuning_cents)

    events = []  # (sample, 0 = off / 1 = on, channel, pitch, velocity)
    for instrument, channel in zip(midi.instruments, channels):
        shift = 0 if instrument.is_drum else formant_semitones
        for note in instrument.notes:  # a note shifted past MIDI's 0-127 is clipped there
            pitch = min(127, max(0, note.pitch + shift))
            events.append((round(note.start * sample_rate), 1, channel, pitch, note.velocity))
            events.append((round(note.end * sample_rate), 0, channel, pitch, 0))
    events.sort()

    buffer = memoryview(bytearray(total * 2 * 4))  # stereo float32, filled in place between events
    position = 0
    for sample, kind, channel, pitch, vel in events:
        sample = min(sample, total)
        if sample > position:
            synth.generate_simple(sample - position, buffer=buffer[position * 8: sample * 8])
            position = sample
        if kind:
            synth.noteon(channel, pitch, vel)
        else:
            synth.noteoff(channel, pitch)
    if total > position:
        synth.generate_simple(total - position, buffer=buffer[position * 8: total * 8])
    stereo = np.frombuffer(buffer, dtype=np.float32).reshape(-1, 2)
    wave = (stereo[:, 0] + stereo[:, 1]) * np.float32(0.5)  # stereo.mean(axis=1), bit for bit, in a fifth of the time
    if not np.isfinite(wave).all():
        raise RenderError(f"{soundfont}: the synthesizer produced NaN or inf samples")
    return wave.astype(np.float32)


def peak_normalise(wave: np.ndarray, peak: float = 0.9) -> np.ndarray:
    """Scale so the largest sample is `peak` (silence stays silence)."""
    top = float(np.max(np.abs(wave))) if wave.size else 0.0
    return (wave * (peak / top)).astype(np.float32) if top > 0 else wave.astype(np.float32)


def flac_bytes(wave: np.ndarray, sample_rate: int) -> bytes:
    """16-bit FLAC of a mono wave (clipped to [-1, 1]): how the corpus and rendered manifests store audio."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(wave, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()
