"""Cutting a long recording at its pauses, and finding the stretches with no speech.

An energy detector on 25 ms frames every 10 ms (the features' framing):
a frame is speech when its log energy is at least ``SPEECH_ABOVE_FLOOR_DB``
above the recording's noise floor (its ``FLOOR_PERCENTILE``-th percentile)
and within ``SPEECH_BELOW_PEAK_DB`` of its loudest frame; a recording whose
loudest frame is below ``SILENCE_DBFS`` holds no speech at all. Segments
are at most ``max_seconds`` long and end in the middle of the longest pause
(a run of non-speech frames) in the second half of the allowed span, so no
word is cut unless a stretch of speech has no pause at all (then the
quietest frame is the cut). Segments without a speech frame are not
decoded: a silent file gives an empty transcript.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Longest segment decoded at once (seconds).
MAX_SEGMENT_S = 30.0
FRAME_S, SHIFT_S = 0.025, 0.010
FLOOR_PERCENTILE = 10
SPEECH_ABOVE_FLOOR_DB = 12.0
SPEECH_BELOW_PEAK_DB = 45.0
#: Loudest frame below this (dB re full scale, samples in [-1, 1]) means no speech.
SILENCE_DBFS = -60.0
_EPS = 1e-12


@dataclass(frozen=True)
class Segment:
    """Frames [start, end) of a recording, and whether any of them is speech."""

    start: int
    end: int
    has_speech: bool


def frame_energy_db(samples: np.ndarray, rate: int) -> np.ndarray:
    """Log energy (dBFS) of 25 ms frames every 10 ms: (F,), F = number of feature frames."""
    win, hop = int(round(FRAME_S * rate)), int(round(SHIFT_S * rate))
    if len(samples) < win:
        return np.full(0, -np.inf)
    num = 1 + (len(samples) - win) // hop
    power = np.square(samples.astype(np.float64))
    csum = np.concatenate([[0.0], np.cumsum(power)])
    starts = np.arange(num) * hop
    mean = (csum[starts + win] - csum[starts]) / win
    return 10.0 * np.log10(mean + _EPS)


def speech_mask(energy_db: np.ndarray) -> np.ndarray:
    """(F,) bool: the frames the detector takes for speech."""
    if len(energy_db) == 0 or energy_db.max() < SILENCE_DBFS:
        return np.zeros(len(energy_db), dtype=bool)
    floor = np.percentile(energy_db, FLOOR_PERCENTILE)
    threshold = max(floor + SPEECH_ABOVE_FLOOR_DB, energy_db.max() - SPEECH_BELOW_PEAK_DB, SILENCE_DBFS)
    return energy_db >= threshold


def _cut(mask: np.ndarray, energy_db: np.ndarray, lo: int, hi: int) -> int:
    """The frame in [lo, hi) to cut at: the middle of the longest pause, else the quietest frame."""
    best_len, best_mid, run = 0, -1, 0
    for t in range(lo, hi):
        run = run + 1 if not mask[t] else 0
        if run > best_len:
            best_len, best_mid = run, t - run // 2
    if best_len > 0:
        return best_mid
    return lo + int(np.argmin(energy_db[lo:hi]))


def segment_frames(energy_db: np.ndarray, num_frames: int, max_seconds: float = MAX_SEGMENT_S,
                   speech: np.ndarray | None = None) -> list[Segment]:
    """Split ``num_frames`` feature frames into segments of at most ``max_seconds``.

    Args:
        energy_db: (F,) frame energies (:func:`frame_energy_db`); F may differ
            from ``num_frames`` by a frame or two (padded / cut here).
        speech: (num_frames,) bool speech frames from a voice activity
            detector; None uses the energy detector (:func:`speech_mask`).
    """
    max_frames = max(2, int(max_seconds / SHIFT_S))
    energy = np.resize(energy_db, num_frames) if len(energy_db) else np.full(num_frames, -np.inf)
    mask = speech_mask(energy) if speech is None else np.asarray(speech, dtype=bool)
    segments, start = [], 0
    while start < num_frames:
        end = num_frames if num_frames - start <= max_frames else \
            _cut(mask, energy, start + max_frames // 2, start + max_frames)
        end = max(end, start + 1)
        segments.append(Segment(start, end, bool(mask[start:end].any())))
        start = end
    return segments
