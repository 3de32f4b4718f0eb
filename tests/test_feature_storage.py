import numpy as np
import pytest
import soundfile as sf

from asr.corpus.datadir import write_datadir
from asr.errors import AudioError, DataError
from asr.features.extract import FeatureConfig, compute_features
from asr.features.storage import load_features, make_features


def _datadir(tmp_path, rates=(16000, 16000, 16000)):
    rng = np.random.default_rng(0)
    wav, text, utt2spk = {}, {}, {}
    for i, rate in enumerate(rates):
        spk = f"spk{i % 2}"
        utt = f"{spk}_u{i}"
        path = tmp_path / f"{utt}.wav"
        sf.write(path, (0.1 * rng.standard_normal(rate // 2 + 100 * i)).astype(np.float32), rate)
        wav[utt], text[utt], utt2spk[utt] = str(path), "hello world", spk
    data = tmp_path / "data"
    write_datadir(data, wav, text, utt2spk)
    return data


def test_make_and_load_features(tmp_path, caplog):
    data = _datadir(tmp_path)
    cfg = FeatureConfig()
    make_features(data, tmp_path / "feats", cfg)
    feats = load_features(data)
    assert sorted(feats) == ["spk0_u0", "spk0_u2", "spk1_u1"]
    # per-speaker CMVN: speaker spk0's frames have zero mean and unit variance
    spk0 = np.concatenate([feats["spk0_u0"], feats["spk0_u2"]])
    np.testing.assert_allclose(spk0.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(spk0.std(0), 1, atol=1e-3)
    raw = compute_features(sf.read(tmp_path / "spk1_u1.wav", dtype="float32")[0], cfg)
    assert feats["spk1_u1"].shape == raw.shape
    caplog.set_level("INFO")
    make_features(data, tmp_path / "feats", cfg)
    assert "features exist with the same config, skipping" in caplog.text
    make_features(data, tmp_path / "feats", FeatureConfig(kind="mfcc"))
    assert load_features(data)["spk1_u1"].shape[1] == 13


def test_wrong_rate_names_the_utterance(tmp_path):
    data = _datadir(tmp_path, rates=(16000, 8000, 16000))
    with pytest.raises(AudioError, match=r"utterance spk1_u1: .*spk1_u1\.wav: sample rate is 8000 Hz"):
        make_features(data, tmp_path / "feats", FeatureConfig())
    assert not (data / "feats.scp").exists()


def test_load_without_features(tmp_path):
    data = _datadir(tmp_path)
    with pytest.raises(DataError, match="feats.scp: missing; run the feature stage first"):
        load_features(data)
