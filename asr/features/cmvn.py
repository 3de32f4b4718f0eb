"""Cepstral mean and variance normalisation with Kaldi-format statistics.

Stats for one speaker are a (2, D + 1) float64 matrix: row 0 holds the sum of
the feature vectors and, in the last column, the frame count; row 1 holds the
sum of squares (last column 0). This is the layout of Kaldi's ``cmvn.ark``.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

#: Variance floor, in feature units squared.
VAR_FLOOR = 1e-10
#: Fewest speech frames (0.1 s) that speech-only statistics are taken from;
#: with fewer, an utterance's statistics come from all its frames.
MIN_SPEECH_FRAMES = 10


def accumulate_stats(feats: Iterable[np.ndarray]) -> np.ndarray:
    """CMVN stats of a set of (T, D) feature matrices → (2, D + 1) float64."""
    stats = None
    for x in feats:
        x = x.astype(np.float64)
        if stats is None:
            stats = np.zeros((2, x.shape[1] + 1))
        stats[0, :-1] += x.sum(axis=0)
        stats[1, :-1] += (x * x).sum(axis=0)
        stats[0, -1] += x.shape[0]
    if stats is None or stats[0, -1] <= 0:
        raise ValueError("no frames to accumulate CMVN statistics from")
    return stats


def enough_speech(speech: np.ndarray) -> bool:
    """Whether a (T,) bool speech mask marks at least ``MIN_SPEECH_FRAMES`` frames."""
    return int(speech.sum()) >= MIN_SPEECH_FRAMES


def speech_stats(feats: np.ndarray, speech: np.ndarray | None) -> np.ndarray:
    """CMVN stats (2, D + 1) of one utterance's (T, D) features over its speech frames
    (``speech``: (T,) bool), or over all frames when ``speech`` is None or marks
    fewer than ``MIN_SPEECH_FRAMES``."""
    if speech is not None and enough_speech(speech):
        feats = feats[speech]
    return accumulate_stats([feats])


def check_stats(stats: np.ndarray) -> None:
    """Raise ValueError unless ``stats`` is a usable (2, D + 1) stats matrix."""
    if stats.ndim != 2 or stats.shape[0] != 2 or stats.shape[1] < 2:
        raise ValueError(f"CMVN stats must have shape (2, D + 1), got {stats.shape}")
    if not np.all(np.isfinite(stats)):
        raise ValueError("CMVN stats are not finite")
    if stats[0, -1] <= 0:
        raise ValueError(f"CMVN stats have a frame count of {stats[0, -1]:g}")


def apply_cmvn(feats: np.ndarray, stats: np.ndarray, norm_vars: bool = True) -> np.ndarray:
    """Normalise (T, D) features with (2, D + 1) stats; returns float32 (T, D)."""
    if stats.shape != (2, feats.shape[1] + 1):
        raise ValueError(f"CMVN stats shape {stats.shape} does not fit features of dim {feats.shape[1]}")
    count = stats[0, -1]
    mean = stats[0, :-1] / count
    out = feats - mean
    if norm_vars:
        var = np.maximum(stats[1, :-1] / count - mean * mean, VAR_FLOOR)
        out = out / np.sqrt(var)
    return out.astype(np.float32)
