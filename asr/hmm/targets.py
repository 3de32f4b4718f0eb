"""Frame-level CI state targets from a phone segmentation.

A frame belongs to the phone segment that holds its centre; inside each
segment the frames are split uniformly over the phone's HMM states
(``asr.hmm.topology.uniform_states``). Targets are pdf ids.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from asr.errors import DataError
from asr.hmm.topology import STATES_PER_PHONE, pdf_id, uniform_states

Segment = tuple[float, float, str]  # (start_s, end_s, phone)


def segment_frames(segments: Sequence[Segment], centers: np.ndarray) -> np.ndarray:
    """Index of the segment holding each frame centre, shape (T,) int64.

    Frames whose centre lies past the last segment belong to the last one.
    """
    ends = np.array([seg[1] for seg in segments])
    idx = np.searchsorted(ends, centers, side="right")
    return np.minimum(idx, len(segments) - 1)


def segments_to_pdfs(
    segments: Sequence[Segment],
    centers: np.ndarray,
    phone_index: dict[str, int],
    utt: str = "",
) -> np.ndarray:
    """CI pdf target of each frame.

    Args:
        segments: contiguous (start_s, end_s, phone) segments of one utterance.
        centers: frame centres in seconds, shape (T,).
        phone_index: phone symbol → 0-based index in the model's phone list.
        utt: utterance id for error messages.

    Returns:
        int64 array (T,) of pdf ids.
    """
    if not segments:
        raise DataError(f"utterance {utt}: no phone segments")
    seg_of_frame = segment_frames(segments, centers)
    pdfs = np.empty(len(centers), dtype=np.int64)
    for i, (_, _, phone) in enumerate(segments):
        if phone not in phone_index:
            raise DataError(f"utterance {utt}: phone {phone!r} is not in the model's phone set")
        frames = np.flatnonzero(seg_of_frame == i)
        if len(frames) == 0:
            continue  # a segment shorter than a frame shift gets no frames
        states = uniform_states(len(frames))
        pdfs[frames] = [pdf_id(phone_index[phone], int(s)) for s in states]
    return pdfs


def pdf_segments(
    pdfs: np.ndarray, phones: Sequence[str], shift_s: float, split_on_state_reset: bool = True
) -> list[Segment]:
    """(start_s, end_s, phone) segments of a frame-level pdf path (T,).

    A new segment starts where the phone changes or, with
    ``split_on_state_reset``, where the state index goes back (the same
    phone twice in a row, as in an HMM alignment). Without it, runs of one
    phone merge (the framewise-argmax reading).
    """
    segments: list[Segment] = []
    prev_phone = prev_state = -1
    for t, pdf in enumerate(np.asarray(pdfs).tolist()):
        phone, state = divmod(pdf, STATES_PER_PHONE)
        if phone != prev_phone or (split_on_state_reset and state < prev_state):
            segments.append((t * shift_s, (t + 1) * shift_s, phones[phone]))
        else:
            segments[-1] = (segments[-1][0], (t + 1) * shift_s, segments[-1][2])
        prev_phone, prev_state = phone, state
    return segments


def pdfs_to_phones(pdfs: np.ndarray, phones: Sequence[str], split_on_state_reset: bool = True) -> list[str]:
    """The phone sequence of a frame-level pdf path (see ``pdf_segments``)."""
    return [p for _, _, p in pdf_segments(pdfs, phones, 1.0, split_on_state_reset)]
