"""Augmentation: speed-perturbed targets stay on their frames, SpecAugment masks only
its bands and stretches, the room/noise copy is seeded, copies on disk are reused."""

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.corpus.datadir import write_datadir
from asr.features.augment import (AugmentConfig, copy_dir, make_copy, reverb_noise, spec_augment, speed_perturb,
                                  warp_targets)
from asr.features.extract import FeatureConfig, compute_features
from asr.features.storage import load_features, make_features

RATE = 16000
#: Alternating loud / silent stretches (seconds): the frame targets are 1 / 0.
PATTERN_S = [0.30, 0.25, 0.40, 0.20, 0.35, 0.30, 0.25]


def _pattern_audio() -> tuple[np.ndarray, np.ndarray]:
    """Noise bursts and silences, and the (T,) 0/1 target of each feature frame."""
    rng = np.random.default_rng(0)
    parts = [(0.3 * rng.standard_normal(int(d * RATE)) if i % 2 == 0 else np.zeros(int(d * RATE)))
             for i, d in enumerate(PATTERN_S)]
    samples = np.concatenate(parts).astype(np.float32)
    cfg = FeatureConfig()
    edges = np.cumsum(PATTERN_S)
    centres = cfg.frame_centers(cfg.num_frames(len(samples)))
    targets = (np.searchsorted(edges, centres, side="right") % 2 == 0).astype(np.int64)
    return samples, targets


def _loud_frames(samples: np.ndarray) -> np.ndarray:
    feats = compute_features(samples, FeatureConfig())
    energy = feats.mean(axis=1)
    return (energy > (energy.max() + energy.min()) / 2).astype(np.int64)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_keeps_targets_on_their_frames(factor):
    samples, targets = _pattern_audio()
    fast = speed_perturb(samples, factor)
    assert abs(len(fast) - len(samples) / factor) <= 1
    loud = _loud_frames(fast)
    warped = warp_targets(targets, len(loud), factor, FeatureConfig())
    boundaries = len(PATTERN_S) - 1
    # frames straddling a boundary may go either way: the original audio's own targets
    # disagree with the detector on 6 frames, the copies' on 7 (0.9) and 9 (1.1) (measured)
    assert (warped != loud).sum() <= 2 * boundaries, (warped != loud).sum()
    # the unwarped targets (cut or padded to length) drift off by many frames
    naive = np.resize(targets, len(loud))
    assert (naive != loud).sum() > 4 * boundaries


def test_spec_augment_masks_only_bands_and_stretches():
    torch.manual_seed(3)
    aug = AugmentConfig(freq_masks=2, freq_width=6, time_masks=2, time_width=10)
    feats = torch.randn(4, 50, 20) + 5.0  # no value is 0 before masking
    lengths = torch.tensor([50, 40, 30, 12])
    state = torch.get_rng_state()
    out = spec_augment(feats, lengths, aug)
    changed = out != feats
    assert torch.all(out[changed] == 0) and changed.any()
    for i, n in enumerate(lengths.tolist()):
        c = changed[i, :n]
        cols, rows = c.all(0), c.all(1)  # channels masked on every frame, frames masked on every channel
        assert torch.equal(c, cols[None, :] | rows[:, None])  # nothing masked outside them
        runs = lambda m: int((m[1:] & ~m[:-1]).sum() + m[0])  # noqa: E731
        if not rows.all():
            assert runs(cols) <= 2 and cols.sum() <= 12
        if not cols.all():
            assert runs(rows) <= 2 and rows.sum() <= 20
    # the same RNG state gives the same masks; the checkpointed RNG makes a resume repeat them
    torch.set_rng_state(state)
    assert torch.equal(spec_augment(feats, lengths, aug), out)


def test_reverb_noise_is_seeded_and_keeps_length_and_level():
    samples, _ = _pattern_audio()
    a = reverb_noise(samples, RATE, (10.0, 10.0), [1, 2])
    b = reverb_noise(samples, RATE, (10.0, 10.0), [1, 2])
    c = reverb_noise(samples, RATE, (10.0, 10.0), [1, 3])
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.shape == samples.shape and a.dtype == np.float32
    # the silences now hold the room's tail and the noise
    silent = slice(int(0.32 * RATE), int(0.52 * RATE))
    assert np.abs(samples[silent]).max() == 0 and np.abs(a[silent]).max() > 0.01


def test_copies_are_written_once_and_line_up_with_the_original(tmp_path):
    samples, _ = _pattern_audio()
    wavs = {}
    for i in range(2):
        path = tmp_path / f"u{i}.wav"
        sf.write(path, samples[: len(samples) - 4000 * i], RATE)
        wavs[f"s_u{i}"] = str(path)
    train = tmp_path / "train"
    write_datadir(train, wavs, {u: "a" for u in wavs}, {u: "s" for u in wavs})
    make_features(train, tmp_path / "feats", FeatureConfig(cmvn="speech"))
    orig = load_features(train)
    aug = AugmentConfig(speed=(1.1,), vtlp=0.1)
    for name in aug.copies:
        out = make_copy(train, name, aug)
        mtime = (out / "feats.scp").stat().st_mtime_ns
        assert make_copy(train, name, aug) == out and (out / "feats.scp").stat().st_mtime_ns == mtime
        copy = load_features(out)
        assert set(copy) == set(orig)
        for utt in orig:
            expect = len(orig[utt]) if name.startswith("vtlp") else pytest.approx(len(orig[utt]) / 1.1, abs=1)
            assert len(copy[utt]) == expect
            assert not np.allclose(copy[utt][: len(orig[utt])], orig[utt][: len(copy[utt])])
    assert out.parent.name == "train_aug"
    # other settings (SpecAugment, another copy) leave a copy valid: it is not remade
    speed_scp = copy_dir(train, "speed1.1") / "feats.scp"
    mtime = speed_scp.stat().st_mtime_ns
    make_copy(train, "speed1.1", AugmentConfig(speed=(1.1,), time_masks=2))
    assert speed_scp.stat().st_mtime_ns == mtime
