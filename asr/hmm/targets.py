"""Frame-level CI state targets from a phone segmentation.

A frame belongs to the phone segment that holds its centre. The topology has
no skips, so every phone must last at least as many frames as its HMM has
states (``PhoneHmm.min_frames``, 3 in Kaldi's default topology): a shorter segment (11.5% of the synthetic corpus's phones, and many of
real TIMIT's; some are shorter than one frame shift) is lengthened by moving
the segment boundaries as little as possible (least squares, by isotonic
regression, :func:`fit_min_frames`), so that the targets are a path H can
produce and no phone of the transcript is lost. Inside each segment the frames
are split uniformly over the phone's HMM states (``PhoneHmm.state_path``).

The result is an alignment in the stored form (CI transition ids,
:mod:`asr.hmm.transitions`): the "uniform" alignment that the first model
is trained on, and that Viterbi realignment (:mod:`asr.steps.align`) then
refines. Any model's pdf targets follow from it with ``alignment_pdfs``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import isotonic_regression

from asr.errors import DataError
from asr.phones.topology import Topology
from asr.hmm.transitions import PhoneRun, alignment_from_runs

log = logging.getLogger(__name__)

Segment = tuple[float, float, str]  # (start_s, end_s, phone)


class TooShortError(DataError):
    """An utterance has fewer frames than its phones need (``min_frames`` each)."""


@dataclass
class TargetStats:
    """Counts over a data set: phone segments, how many had no frame of their
    own (shorter than a frame shift), how many were shorter than the
    topology's minimum and were lengthened, and utterances skipped because
    they are too short for their phone sequence."""

    utterances: int = 0
    segments: int = 0
    without_frame: int = 0
    lengthened: int = 0
    skipped_utterances: int = 0

    def summary(self) -> str:
        pct = 100.0 * self.lengthened / max(1, self.segments)
        return (f"{self.utterances} utterances, {self.segments} phone segments: "
                f"{self.lengthened} ({pct:.1f}%) shorter than the HMM's minimum were lengthened "
                f"({self.without_frame} of them had no frame); "
                f"{self.skipped_utterances} utterances skipped as too short for their phones")


def segment_starts(segments: Sequence[Segment], centers: np.ndarray) -> np.ndarray:
    """First frame of each segment by frame centre, shape (N,) int64.

    Frame t belongs to segment i when ``end[i-1] <= centers[t] < end[i]``;
    frames past the last segment belong to the last one. A segment that holds
    no frame centre has the same start as the segment after it.
    """
    ends = np.array([seg[1] for seg in segments[:-1]])
    return np.concatenate([[0], np.searchsorted(centers, ends, side="left")]).astype(np.int64)


def fit_min_frames(starts: np.ndarray, num_frames: int, min_frames: int | np.ndarray,
                   utt: str = "") -> np.ndarray:
    """Move segment starts as little as possible so every segment i has ``min_frames[i]``.

    With ``M_i = min_frames[0] + … + min_frames[i-1]`` and ``b'_i = b_i - M_i``
    the constraint ``b_{i+1} - b_i >= min_frames[i]`` becomes "b' is
    non-decreasing", so the least-squares fit is
    an isotonic regression (scipy), clipped to the utterance and rounded
    (both keep it monotone). Starts that already satisfy the constraint are
    returned unchanged.

    Args:
        starts: (N,) int64 first frame of each segment, ``starts[0] == 0``.
        num_frames: T, the utterance's frame count.
        min_frames: one minimum for every segment, or (N,) one per segment.

    Returns:
        (N,) int64 starts with ``diff >= min_frames`` and ``T - starts[-1] >= min_frames[-1]``.

    Raises:
        TooShortError: ``T < sum(min_frames)``.
    """
    n = len(starts)
    mins = np.broadcast_to(np.asarray(min_frames, dtype=np.int64), (n,))
    offsets = np.concatenate([[0], np.cumsum(mins)])  # M_0 .. M_N
    slack = num_frames - int(offsets[-1])
    if slack < 0:
        raise TooShortError(f"utterance {utt}: {num_frames} frames cannot hold its {n} phones, "
                            f"whose HMMs need {int(offsets[-1])} frames")
    lengths = np.diff(np.append(starts, num_frames))
    if n == 1 or (lengths >= mins).all():
        return starts
    shifted = starts[1:] - offsets[1:n]  # b'_1 .. b'_{N-1}
    fitted = np.clip(np.round(isotonic_regression(shifted.astype(float)).x), 0, slack)
    return np.concatenate([[0], fitted.astype(np.int64) + offsets[1:n]])


def segments_to_alignment(
    segments: Sequence[Segment],
    centers: np.ndarray,
    phone_index: dict[str, int],
    topo: Topology,
    utt: str = "",
    stats: TargetStats | None = None,
) -> np.ndarray:
    """The uniform alignment of one utterance: CI transition ids per frame.

    Args:
        segments: contiguous (start_s, end_s, phone) segments of one utterance.
        centers: frame centres in seconds, shape (T,).
        phone_index: phone symbol → 0-based index in the model's phone list
            (the model's phones, in order: ``alignment_from_runs`` reads them back).
        utt: utterance id for error messages.
        topo: the HMM topology (each phone's minimum duration and states).
        stats: counts to add this utterance's figures to.

    Returns:
        int32 array (T,) of CI transition ids, every phone of ``segments``
        present for at least its HMM's ``min_frames`` frames, its frames split
        uniformly over its states.

    Raises:
        DataError: no segments or an unknown phone; TooShortError when T is
            less than the segments' HMMs need.
    """
    if not segments:
        raise DataError(f"utterance {utt}: no phone segments")
    unknown = [p for _, _, p in segments if p not in phone_index]
    if unknown:
        raise DataError(f"utterance {utt}: phone {unknown[0]!r} is not in the model's phone set")
    num_frames = len(centers)
    starts = segment_starts(segments, centers)
    lengths = np.diff(np.append(starts, num_frames))
    mins = topo.min_frames([p for _, _, p in segments])
    fitted = fit_min_frames(starts, num_frames, mins, utt)
    if stats is not None:
        stats.utterances += 1
        stats.segments += len(segments)
        stats.without_frame += int((lengths == 0).sum())
        stats.lengthened += int((lengths < mins).sum())
    bounds = np.append(fitted, num_frames)
    runs = [PhoneRun(phone_index[p], int(bounds[i]), int(bounds[i + 1]))
            for i, (_, _, p) in enumerate(segments)]
    return alignment_from_runs(runs, sorted(phone_index, key=phone_index.__getitem__), topo)
