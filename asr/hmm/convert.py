"""Alignments converted to another frame rate and topology (Kaldi's ``convert-ali``
with ``--frame-subsampling-factor``).

An alignment is kept as phone runs; each run's first feature frame is
carried to the new rate, where an output frame belongs to the phone that holds
the middle of its feature frames (as :mod:`asr.hmm.targets` labels frames by
their centres), and every phone is then given at least the frames its new HMM
needs by moving the boundaries as little as possible
(:func:`asr.hmm.targets.fit_min_frames`). The frames of each run are split
uniformly over the new HMM's states. No phone is lost on the way down and
none on the way back: converting 10 ms alignments to 30 ms and back gives the
same phone sequence, each boundary within a frame of the new rate of where it
was (checked in the tests).
"""

from __future__ import annotations

import logging
from typing import Mapping, Sequence

import numpy as np

from asr.errors import DataError
from asr.features.frame_rate import FrameRate
from asr.hmm.alignment import AlignmentSet, check_against_features
from asr.hmm.targets import TooShortError, fit_min_frames
from asr.hmm.transitions import PhoneRun, alignment_from_runs, ci_transitions
from asr.phones.topology import Topology

log = logging.getLogger(__name__)


def convert_alignment(tids: np.ndarray, phones: Sequence[str], source: tuple[Topology, int],
                      target: tuple[Topology, FrameRate], num_feature_frames: int, offset: int = 0,
                      utt: str = "") -> np.ndarray:
    """One utterance's alignment at another frame rate and topology.

    Args:
        tids: (T_s,) CI transition ids of ``source``'s topology, one per source frame.
        phones: the phones both topologies number.
        source: (topology, factor): the alignment's topology and its frames' size in
            feature frames (1 for an alignment at the feature rate).
        target: (topology, frame rate) of the new alignment.
        num_feature_frames: T, the utterance's feature frames.
        offset: the target's first feature frame (0 … factor - 1).

    Returns:
        (T',) int32 CI transition ids of the target topology, T' =
        ``target[1].num_frames(T, offset)``.

    Raises:
        TooShortError: T' frames cannot hold the phones' new HMMs.
    """
    src_topo, src_factor = source
    dst_topo, rate = target
    runs = ci_transitions(phones, src_topo).phone_runs(np.asarray(tids))
    n = rate.num_frames(num_feature_frames, offset)
    k = rate.factor
    feature_starts = np.array([r.start for r in runs], dtype=np.int64) * src_factor
    # output frame j's feature frames are centred on offset + j·k + (k - 1) / 2
    starts = np.ceil((feature_starts - offset - (k - 1) / 2) / k).astype(np.int64).clip(0, n)
    starts[0] = 0
    mins = dst_topo.min_frames([phones[r.phone] for r in runs])
    fitted = fit_min_frames(starts, n, mins, utt)
    bounds = np.append(fitted, n)
    new_runs = [PhoneRun(r.phone, int(bounds[i]), int(bounds[i + 1])) for i, r in enumerate(runs)]
    return alignment_from_runs(new_runs, phones, dst_topo)


def alignments_at(aset: AlignmentSet, frames: Mapping[str, int], topology: Topology, rate: FrameRate,
                  offset: int = 0, where: str = "") -> dict[str, np.ndarray]:
    """The alignments of ``aset`` for the utterances of ``frames``, at ``rate`` and ``offset``
    with ``topology``: as stored when they already are, else converted
    (:func:`convert_alignment`).

    Args:
        frames: utt → its feature frames T.
        where: names the pair in messages (e.g. "exp/ali_train against data/train").

    Returns:
        {utt: (T',) int32 CI transition ids}; utterances without an alignment (a
        warning gives their count) or too short for their phones at the new rate
        (one warning each) are left out.

    Raises:
        DataError: the alignments' frames are not a whole number of feature frames, or an
            utterance's alignment has another length than its features give.
    """
    ratio = aset.frame_shift_s / rate.feature_shift_s
    factor = int(round(ratio))
    if factor < 1 or abs(ratio - factor) > 1e-6:
        raise DataError(f"{where}: alignment frames of {aset.frame_shift_s * 1000:g} ms are not a whole "
                        f"number of the features' {rate.feature_shift_s * 1000:g} ms frames")
    missing = set(check_against_features(aset, frames, where, factor))
    same = factor == rate.factor and offset == 0 and aset.topology == topology
    out: dict[str, np.ndarray] = {}
    for utt in sorted(set(frames) - missing):
        ali = aset.alignments[utt]
        try:
            out[utt] = ali if same else convert_alignment(ali, aset.phones, (aset.topology, factor),
                                                          (topology, rate), frames[utt], offset, utt)
        except TooShortError as exc:
            log.warning("%s: %s; utterance left out", where, exc)
    return out
