"""Is one system really better? Paired bootstrap over utterances (as Kaldi's
``compute-wer-bootci`` and Bisani & Ney, 2004).

The utterances of a test set are resampled with replacement many times;
each resample gives both systems' error rates on the same utterances, so
the spread of their difference shows how much of it the choice of
utterances alone could produce.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asr.errors import DataError
from asr.score.per import ScoreResult


@dataclass
class Comparison:
    """System B against system A on the same utterances (rates in percent).

    Attributes:
        rate_a, rate_b: error rates on the whole set.
        interval: 95% bootstrap interval of ``rate_b - rate_a``.
        p_b_better: fraction of resamples in which B has fewer errors than A.
    """

    rate_a: float
    rate_b: float
    interval: tuple[float, float]
    p_b_better: float

    def summary(self, name_a: str = "A", name_b: str = "B") -> str:
        lo, hi = self.interval
        return (f"{name_b} {self.rate_b:.2f}% vs {name_a} {self.rate_a:.2f}%: difference "
                f"{self.rate_b - self.rate_a:+.2f} points, 95% interval [{lo:+.2f}, {hi:+.2f}]; "
                f"{name_b} better in {100 * self.p_b_better:.1f}% of bootstrap resamples")


def paired_bootstrap(a: ScoreResult, b: ScoreResult, num_samples: int = 10_000,
                     seed: int = 0) -> Comparison:
    """Compare two scorings of the same references (see the module docstring).

    Raises:
        DataError: the two results do not cover the same utterances.
    """
    utts = sorted(a.per_utt)
    if utts != sorted(b.per_utt):
        raise DataError("the two systems were scored on different utterances")
    if not utts:
        raise DataError("no utterances to compare")
    ref_len = np.array([a.per_utt[u].ref_len for u in utts], dtype=np.float64)
    if (ref_len != np.array([b.per_utt[u].ref_len for u in utts])).any():
        raise DataError("the two systems were scored against different references")
    err_a = np.array([a.per_utt[u].errors for u in utts], dtype=np.float64)
    err_b = np.array([b.per_utt[u].errors for u in utts], dtype=np.float64)
    picks = np.random.default_rng(seed).integers(0, len(utts), size=(num_samples, len(utts)))
    length = np.maximum(ref_len[picks].sum(axis=1), 1.0)  # (num_samples,)
    delta = 100.0 * (err_b[picks].sum(axis=1) - err_a[picks].sum(axis=1)) / length
    lo, hi = np.percentile(delta, [2.5, 97.5])
    return Comparison(rate_a=a.counts.rate, rate_b=b.counts.rate, interval=(float(lo), float(hi)),
                      p_b_better=float((delta < 0).mean()))
