"""The frame rate a network runs at: one output every ``factor`` feature frames.

A lower frame rate model (Pundak & Sainath, Interspeech 2016; Kaldi's
``--frame-subsampling-factor``) reads its features ``factor`` frames at a
time, stacked into one row, and emits one output per stack: at factor 3 and
a 10 ms shift, one output every 30 ms, a third of the frames to run the
network on, to align and to search. Output frame ``j`` at offset ``o`` reads
feature frames ``o + j·k … o + j·k + k - 1`` (the last frame repeated past the
utterance's end); training reads each utterance at every offset ``o`` in
``0 … k - 1`` (its ``k`` copies), decoding at offset 0.

:class:`FrameRate` is the one object every stage asks: how many output
frames an utterance has, the stacked input, the output frames' centres and
shift in seconds. A factor of 1 is the feature rate itself (stacking is the
identity), which is how every model made before frame subsampling reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FrameRate:
    """Output frames of a network over features taken every ``feature_shift_s`` seconds.

    Attributes:
        feature_shift_s: seconds between feature frames (0.01 for Kaldi's 10 ms).
        factor: feature frames per output frame (k >= 1).
    """

    feature_shift_s: float = 0.01
    factor: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.factor, bool) or int(self.factor) != self.factor or self.factor < 1:
            raise ValueError(f"frame subsampling factor must be a whole number >= 1, got {self.factor!r}")
        if not self.feature_shift_s > 0:
            raise ValueError(f"feature frame shift must be > 0 s, got {self.feature_shift_s}")

    @property
    def shift_s(self) -> float:
        """Seconds between output frames."""
        return self.feature_shift_s * self.factor

    def check_offset(self, offset: int) -> None:
        if not 0 <= offset < self.factor:
            raise ValueError(f"offset {offset} is not in 0 … {self.factor - 1}")

    def num_frames(self, num_feature_frames: int, offset: int = 0) -> int:
        """Output frames of an utterance of ``num_feature_frames`` read from ``offset``:
        ``ceil((T - offset) / k)``, 0 for none."""
        self.check_offset(offset)
        return max(0, -(-(num_feature_frames - offset) // self.factor))

    def feature_index(self, num_feature_frames: int, offset: int = 0) -> np.ndarray:
        """(T', k) int64: the feature frames each output frame reads, the last one repeated
        past the end."""
        n = self.num_frames(num_feature_frames, offset)
        idx = offset + np.arange(n)[:, None] * self.factor + np.arange(self.factor)[None, :]
        return np.minimum(idx, max(0, num_feature_frames - 1))

    def stack(self, feats: np.ndarray, offset: int = 0) -> np.ndarray:
        """The network's input: feats (T, D) → (T', k·D), each row ``k`` consecutive frames
        in time order (the input itself, not a copy, when k = 1 and offset 0)."""
        return stack_frames(feats, self.factor, offset)

    def sample(self, labels: np.ndarray, offset: int = 0) -> np.ndarray:
        """Per-frame labels (T,) at the output rate, (T',): each output frame takes the label
        of its middle feature frame (of frame ``(k - 1) // 2`` of its ``k``). A run of at
        least ``k`` equal labels keeps at least one frame."""
        return labels[self.feature_index(len(labels), offset)[:, (self.factor - 1) // 2]]

    def centers(self, num_frames: int, first_center_s: float, offset: int = 0) -> np.ndarray:
        """Centres in seconds of ``num_frames`` output frames read from ``offset``, (num_frames,):
        the middle of each one's ``k`` feature frames, the first feature frame centred at
        ``first_center_s``."""
        self.check_offset(offset)
        middle = offset + np.arange(num_frames) * self.factor + (self.factor - 1) / 2
        return first_center_s + middle * self.feature_shift_s


def stack_frames(feats: np.ndarray, factor: int, offset: int = 0) -> np.ndarray:
    """feats (T, D) → (ceil((T - offset) / factor), factor·D): output row j holds frames
    ``offset + j·factor …`` in time order, the last frame repeated past the end
    (:meth:`FrameRate.stack`; ``feats`` itself when factor is 1 and offset 0)."""
    if factor == 1 and offset == 0:
        return feats
    rows = FrameRate(factor=factor).feature_index(len(feats), offset)
    return np.ascontiguousarray(feats[rows].reshape(len(rows), -1))
