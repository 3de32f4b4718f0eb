"""State priors for the hybrid model: p(s) from the training targets.

The decoder scores frame t, pdf s with ``acwt * (log p(s | x_t) - log p(s))``,
a scaled pseudo log-likelihood.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from asr.errors import ModelError
from asr.io import atomic_path

#: Pseudo-count added to every pdf, so an unseen pdf gets a finite prior.
PRIOR_SMOOTHING = 1.0


def estimate_log_priors(targets: Iterable[np.ndarray], num_pdfs: int) -> np.ndarray:
    """Log relative frequency of each pdf in the targets → (num_pdfs,) float32."""
    counts = np.full(num_pdfs, PRIOR_SMOOTHING)
    for y in targets:
        counts += np.bincount(y, minlength=num_pdfs)[:num_pdfs]
    return np.log(counts / counts.sum()).astype(np.float32)


def save_log_priors(path: Path, log_priors: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.savetxt(tmp, log_priors, fmt="%.6f")


def load_log_priors(path: Path, num_pdfs: int) -> np.ndarray:
    if not Path(path).is_file():
        raise ModelError(f"{path}: state priors not found")
    try:
        priors = np.loadtxt(path, dtype=np.float32, ndmin=1)
    except ValueError as exc:
        raise ModelError(f"{path}: malformed state priors ({exc})") from None
    if priors.shape != (num_pdfs,) or not np.all(np.isfinite(priors)):
        raise ModelError(f"{path}: expected {num_pdfs} finite log priors, got shape {priors.shape}")
    return priors
