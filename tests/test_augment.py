"""Augmentation: speed-perturbed targets stay on their frames, SpecAugment masks only
its bands and stretches, the room/noise copy is seeded, copies on disk are reused, a copy
made in a process pool is the serial one, a speed copy takes shared utterances from a sibling's."""

import logging
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.corpus.datadir import write_datadir
from asr.features import augment
from asr.features.augment import (SOURCES_JSON, AugmentConfig, copy_dir, make_copy, reverb_noise, spec_augment,
                                  speed_perturb, warp_targets)
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


def _datadir(tmp_path, name: str, lengths: dict[str, int], cmvn: str = "speech"):
    """A data dir ``tmp_path/name`` of the pattern audio cut to ``lengths`` (utt → samples), the
    wav files shared (``tmp_path/wav/<utt>.wav``, written once), and the ``feats.yaml`` a copy
    reads (its own features are not needed)."""
    samples, _ = _pattern_audio()
    (tmp_path / "wav").mkdir(exist_ok=True)
    wavs = {}
    for utt, n in lengths.items():
        path = tmp_path / "wav" / f"{utt}.wav"
        if not path.exists():
            sf.write(path, samples[:n], RATE)
        wavs[utt] = str(path)
    data = tmp_path / name
    write_datadir(data, wavs, {u: "a" for u in wavs}, {u: u.split("_")[0] for u in wavs})
    FeatureConfig(cmvn=cmvn).save(data / "feats.yaml")
    return data


def _same_copy(a, b) -> bool:
    """Copies a and b hold the same bytes (their scp files but for the dir they name)."""
    for f in ("ark/raw.ark", "ark/cmvn.ark", "feats.scp", "cmvn.scp", "utt2spk"):
        x, y = (a / f).read_bytes(), (b / f).read_bytes()
        if f.endswith(".scp"):
            x, y = x.replace(str(a.resolve()).encode(), b""), y.replace(str(b.resolve()).encode(), b"")
        if x != y:
            return False
    return True


#: Utterances (samples of the 32800 of the pattern audio); torchaudio resamples one of 16000 on 2
#: threads differently from on 1 (in the last bits), one of 32800 not (measured).
UTTS = {"s1_u0": 32800, "s1_u1": 24000, "s2_u2": 16000}


def test_copy_in_a_process_pool_is_the_serial_copy_byte_for_byte(tmp_path, monkeypatch):
    monkeypatch.setattr(augment, "MIN_UTTS_FOR_POOL", 1)  # a pool for 3 utterances
    # a speed copy: its resampling is what depends on torch's threads (one pool: a worker
    # takes ~2 s to start). Per-speaker CMVN: no VAD model to load in the workers.
    aug = AugmentConfig(speed=(1.1,))
    serial, pooled = (_datadir(tmp_path, f"{d}/train", UTTS, cmvn="speaker") for d in "ab")
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the caller's threads: a serial copy is made on one all the same
    try:
        assert _same_copy(make_copy(serial, "speed1.1", aug), make_copy(pooled, "speed1.1", aug, num_jobs=2))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_speed_copy_takes_shared_utterances_from_a_sibling_copy(tmp_path, caplog):
    aug = AugmentConfig(speed=(0.9,))
    train = _datadir(tmp_path, "data/train", {u: UTTS[u] for u in ("s1_u0", "s2_u2")})
    train_all = _datadir(tmp_path, "data/train_all", UTTS)  # a superset, on the same wav files
    fresh = _datadir(tmp_path, "fresh/train_all", UTTS)  # no sibling copy: all computed
    source, fresh_copy = make_copy(train, "speed0.9", aug), make_copy(fresh, "speed0.9", aug)
    assert (source / SOURCES_JSON).is_file()

    def remake() -> list[str]:
        """Make train_all's copy anew → what it says it took from train's."""
        (copy_dir(train_all, "speed0.9") / augment.AUGMENT_YAML).unlink(missing_ok=True)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=augment.__name__):
            out = make_copy(train_all, "speed0.9", aug)
        assert _same_copy(out, fresh_copy)  # taken or computed: the same bytes
        return [r.getMessage().split(": ", 1)[1] for r in caplog.records if "taken from" in r.getMessage()]

    assert remake() == [f"2 utterances taken from {source}"]
    # an audio file changed since (its mtime) is computed again
    wav = tmp_path / "wav" / "s1_u0.wav"
    os.utime(wav, ns=(wav.stat().st_atime_ns, wav.stat().st_mtime_ns + 10**9))
    assert remake() == [f"1 utterances taken from {source}"]
    # a copy rewritten since it recorded its sources (by an older version) is not read
    ark = source / "ark" / "raw.ark"
    os.utime(ark, ns=(ark.stat().st_atime_ns, ark.stat().st_mtime_ns + 10**9))
    assert remake() == []
    # VTLP and room/noise copies draw from the utterance's index: never taken; nor with dither
    cfg = FeatureConfig(cmvn="speech")
    assert augment.reusable("speed0.9", cfg) and not augment.reusable("vtlp0.1", cfg)
    assert not augment.reusable("reverb_noise5-25", cfg) and not augment.reusable("speed0.9", FeatureConfig(dither=1.0))
