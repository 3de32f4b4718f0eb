import numpy as np
import pytest

from asr.errors import AudioError
from asr.features.cmvn import accumulate_stats, apply_cmvn
from asr.features.extract import FeatureConfig, compute_features


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def test_fbank_shape_and_frame_count():
    cfg = FeatureConfig()
    feats = compute_features(_noise(16000), cfg)
    assert feats.shape == (cfg.num_frames(16000), 40) == (98, 40)
    assert np.all(np.isfinite(feats))


def test_mfcc_shape():
    cfg = FeatureConfig(kind="mfcc")
    assert compute_features(_noise(8000), cfg).shape == (48, 13)


def test_frame_centres_in_seconds():
    centres = FeatureConfig().frame_centers(3)
    np.testing.assert_allclose(centres, [0.0125, 0.0225, 0.0325])


def test_fbank_is_deterministic_and_level_sensitive():
    cfg = FeatureConfig()
    a, b = compute_features(_noise(4000), cfg), compute_features(_noise(4000), cfg)
    np.testing.assert_array_equal(a, b)
    louder = compute_features(2 * _noise(4000), cfg)
    # doubling the amplitude adds log(4) to every log-mel energy
    np.testing.assert_allclose(louder - a, np.log(4.0), atol=1e-3)


def test_too_short_audio_names_the_file():
    with pytest.raises(AudioError, match="x.wav: audio too short"):
        compute_features(_noise(100), FeatureConfig(), name="x.wav")


def test_bad_kind():
    with pytest.raises(ValueError, match="fbank' or 'mfcc"):
        FeatureConfig(kind="plp")


def test_cmvn_normalises_per_dimension():
    rng = np.random.default_rng(1)
    feats = [rng.normal(5.0, 3.0, size=(200, 4)), rng.normal(5.0, 3.0, size=(300, 4))]
    stats = accumulate_stats(feats)
    assert stats.shape == (2, 5) and stats[0, -1] == 500
    out = apply_cmvn(np.concatenate(feats), stats)
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(out.std(0), 1, atol=1e-6)


def test_cmvn_shape_mismatch():
    with pytest.raises(ValueError, match="does not fit features of dim 3"):
        apply_cmvn(np.zeros((5, 3)), np.ones((2, 5)))
