"""Cutting long recordings at pauses (energy detector)."""

from __future__ import annotations

import numpy as np

from asr.decode.segment import SHIFT_S, frame_energy_db, segment_frames, speech_mask

RATE = 16000


def bursts(pattern: list[tuple[float, bool]], seed: int = 0) -> np.ndarray:
    """Noise bursts ("speech", -20 dBFS) and near-silence (-70 dBFS) of the given durations."""
    rng = np.random.default_rng(seed)
    parts = [rng.normal(0, 0.1 if loud else 0.0003, int(RATE * secs)) for secs, loud in pattern]
    return np.concatenate(parts)


def test_short_file_is_one_segment_and_silence_has_no_speech():
    x = bursts([(0.5, False), (2.0, True), (0.5, False)])
    energy = frame_energy_db(x, RATE)
    segs = segment_frames(energy, len(energy), max_seconds=30)
    assert len(segs) == 1 and segs[0].has_speech and (segs[0].start, segs[0].end) == (0, len(energy))
    mask = speech_mask(energy)
    assert not mask[:45].any() and mask[60:240].all() and not mask[-40:].any()
    quiet = frame_energy_db(np.zeros(RATE * 3), RATE)
    assert segment_frames(quiet, len(quiet))[0].has_speech is False


def test_long_file_is_cut_in_the_pauses():
    # 5 s of speech, 0.6 s pause, repeated 8 times: ~45 s
    x = bursts([(5.0, True), (0.6, False)] * 8)
    energy = frame_energy_db(x, RATE)
    segs = segment_frames(energy, len(energy), max_seconds=12)
    assert segs[0].start == 0 and segs[-1].end == len(energy)
    assert all(a.end == b.start for a, b in zip(segs, segs[1:]))
    assert all((s.end - s.start) * SHIFT_S <= 12.0 for s in segs)
    period = int(5.6 / SHIFT_S)
    for s in segs[:-1]:  # every cut lies inside a pause (frames 500..560 of each period)
        assert 500 <= s.end % period <= 560, s


def test_speech_without_pauses_is_cut_at_the_quietest_frame():
    x = bursts([(25.0, True)])
    x[int(RATE * 9.0):int(RATE * 9.02)] *= 0.3  # a dip, not a pause
    energy = frame_energy_db(x, RATE)
    segs = segment_frames(energy, len(energy), max_seconds=10)
    assert all((s.end - s.start) * SHIFT_S <= 10.0 for s in segs) and len(segs) == 3
