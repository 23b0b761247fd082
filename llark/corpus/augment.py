"""Seeded audio augmentation that leaves every label true: EQ, reverb, additive noise and gain.

    rng = np.random.default_rng([seed, track_number])
    wave, applied = augment(wave, sample_rate=22050, rng=rng)   # same length, finite, |x| <= 1
    applied  # {"eq": [...], "reverb": {...}, "noise": {...}, "gain_db": -4.2}: what was done, for the record

Nothing here moves time or pitch (no stretching, no resampling), so beats, chords and key stay exact.
The aim is variety of recording conditions, so a model does not learn one soundfont's clean sound:
tone colour (shelves, peaks, band limits), rooms (decaying-noise impulse responses), noise floors
(white, pink, brown at an SNR) and level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft, signal


@dataclass(frozen=True)
class AugmentConfig:
    eq_probability: float = 0.6
    eq_gain_db: float = 9.0  # shelves and peaks cut or boost up to this much
    band_probability: float = 0.2  # a band limit (telephone, old radio, muffled)
    reverb_probability: float = 0.5
    reverb_seconds: tuple[float, float] = (0.2, 2.5)  # RT60 range
    reverb_wet: tuple[float, float] = (0.08, 0.45)
    noise_probability: float = 0.4
    noise_snr_db: tuple[float, float] = (12.0, 40.0)
    peak: tuple[float, float] = (0.25, 0.98)  # final peak level (the gain)


def _biquad(kind: str, frequency: float, gain_db: float, q: float, sample_rate: int) -> np.ndarray:
    """Second-order section (b0 b1 b2 a0 a1 a2) of the Audio EQ Cookbook shelf or peak filters."""
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * frequency / sample_rate
    alpha = np.sin(w) / (2 * q)
    cos = np.cos(w)
    if kind == "peak":
        b = [1 + alpha * a, -2 * cos, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cos, 1 - alpha / a]
    else:
        sign = 1 if kind == "low_shelf" else -1
        root = 2 * np.sqrt(a) * alpha
        b = [a * ((a + 1) - sign * (a - 1) * cos + root), sign * 2 * a * ((a - 1) - sign * (a + 1) * cos),
             a * ((a + 1) - sign * (a - 1) * cos - root)]
        den = [(a + 1) + sign * (a - 1) * cos + root, -sign * 2 * ((a - 1) + sign * (a + 1) * cos),
               (a + 1) + sign * (a - 1) * cos - root]
    return np.array(b + den) / den[0]


def equalise(wave: np.ndarray, sample_rate: int, rng: np.random.Generator, config: AugmentConfig):
    """One to three shelf/peak filters, sometimes a band limit; returns (wave, description)."""
    nyquist = sample_rate / 2
    sections, applied = [], []
    for _ in range(int(rng.integers(1, 4))):
        kind = str(rng.choice(["low_shelf", "high_shelf", "peak"]))
        low, high = {"low_shelf": (60, 400), "high_shelf": (2000, 8000), "peak": (150, 6000)}[kind]
        frequency = float(np.exp(rng.uniform(np.log(low), np.log(min(high, 0.4 * sample_rate)))))
        gain = float(rng.uniform(-config.eq_gain_db, config.eq_gain_db))
        q = float(rng.uniform(0.5, 2.5)) if kind == "peak" else 0.707
        sections.append(_biquad(kind, frequency, gain, q, sample_rate))
        applied.append({"type": kind, "hz": round(frequency, 1), "db": round(gain, 2)})
    if rng.random() < config.band_probability:
        low_cut = float(rng.uniform(80, 400))
        high_cut = float(min(rng.uniform(2500, 8000), 0.9 * nyquist))
        sections.extend(signal.butter(2, [low_cut, high_cut], btype="bandpass", fs=sample_rate, output="sos"))
        applied.append({"type": "band", "low_hz": round(low_cut, 1), "high_hz": round(high_cut, 1)})
    return signal.sosfilt(np.array(sections), wave), applied


def reverberate(wave: np.ndarray, sample_rate: int, rng: np.random.Generator, config: AugmentConfig):
    """Convolve with exponentially decaying noise (a synthetic room); the tail past the end is cut."""
    rt60 = float(rng.uniform(*config.reverb_seconds))
    wet = float(rng.uniform(*config.reverb_wet))
    predelay = int(rng.uniform(0.0, 0.03) * sample_rate)
    t = np.arange(int(rt60 * sample_rate)) / sample_rate
    impulse = rng.standard_normal(t.size) * np.exp(-6.91 * t / rt60)  # -60 dB at rt60
    impulse = np.concatenate([np.zeros(predelay), impulse])
    impulse /= np.sqrt(np.sum(impulse ** 2)) + 1e-12  # unit energy: the wet signal has the dry level
    reverb = signal.fftconvolve(wave, impulse)[: wave.size]
    return (1 - wet) * wave + wet * reverb, {"rt60": round(rt60, 3), "wet": round(wet, 3),
                                              "predelay_ms": round(1000 * predelay / sample_rate, 1)}


def add_noise(wave: np.ndarray, rng: np.random.Generator, config: AugmentConfig):
    """White, pink or brown noise at a signal-to-noise ratio drawn from the config's range."""
    colour = str(rng.choice(["white", "pink", "brown"]))
    snr = float(rng.uniform(*config.noise_snr_db))
    size = fft.next_fast_len(wave.size, real=True)  # a length with large prime factors makes the FFT crawl
    noise = rng.standard_normal(size)
    if colour != "white":  # shape the spectrum: 1/f power (pink) or 1/f^2 (brown)
        spectrum = fft.rfft(noise)
        f = np.maximum(np.arange(spectrum.size), 1.0)
        spectrum /= np.sqrt(f) if colour == "pink" else f
        noise = fft.irfft(spectrum, n=size)
    noise = noise[: wave.size]
    power = np.mean(wave ** 2)
    if power > 0:
        noise *= np.sqrt(power / (10 ** (snr / 10)) / (np.mean(noise ** 2) + 1e-20))
    else:
        noise *= 0.0
    return wave + noise, {"colour": colour, "snr_db": round(snr, 2)}


def augment(wave: np.ndarray, sample_rate: int, rng: np.random.Generator,
            config: AugmentConfig = AugmentConfig()) -> tuple[np.ndarray, dict]:
    """EQ, then room, then noise, then level; each step drawn from `rng` (same rng state, same output)."""
    if wave.ndim != 1:
        raise ValueError(f"augment expects mono audio [samples], got shape {wave.shape}")
    out = wave.astype(np.float64)
    applied: dict = {}
    if rng.random() < config.eq_probability:
        out, applied["eq"] = equalise(out, sample_rate, rng, config)
    if rng.random() < config.reverb_probability:
        out, applied["reverb"] = reverberate(out, sample_rate, rng, config)
    if rng.random() < config.noise_probability:
        out, applied["noise"] = add_noise(out, rng, config)
    peak = float(rng.uniform(*config.peak))
    top = float(np.max(np.abs(out))) if out.size else 0.0
    if top > 0:
        applied["gain_db"] = round(20 * np.log10(peak / top), 2)
        out = out * (peak / top)
    return out.astype(np.float32), applied
