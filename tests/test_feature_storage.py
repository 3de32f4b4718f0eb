from collections.abc import Mapping
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf

from asr.corpus.datadir import write_datadir
from asr.errors import AudioError, DataError
from asr.features.cmvn import accumulate_stats, apply_cmvn
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


def _eager_reference(tmp_path, cfg):
    """What the old eager load_features returned, computed from the wavs:
    raw features, per-speaker stats, CMVN → {utt: (T, D) float32}."""
    raw = {}
    for wav in sorted(tmp_path.glob("*.wav")):
        raw[wav.stem] = compute_features(sf.read(wav, dtype="float32")[0], cfg)
    spk = {u: u.split("_")[0] for u in raw}
    stats = {s: accumulate_stats(x for u, x in raw.items() if spk[u] == s) for s in set(spk.values())}
    return {u: apply_cmvn(x, stats[spk[u]]) for u, x in raw.items()}


def test_lazy_features_equal_the_eager_result(tmp_path):
    data = _datadir(tmp_path, rates=(16000,) * 5)
    cfg = FeatureConfig()
    make_features(data, tmp_path / "feats", cfg)
    feats = load_features(data)
    assert isinstance(feats, Mapping) and not isinstance(feats, dict)
    expected = _eager_reference(tmp_path, cfg)
    utts = ["spk0_u0", "spk0_u2", "spk0_u4", "spk1_u1", "spk1_u3"]
    # every way the callers use it: len, iteration, `in`, [], items(), sorted(items())
    assert len(feats) == 5 and list(feats) == utts == sorted(expected)
    assert "spk1_u3" in feats and "nope" not in feats and feats.get("nope") is None
    assert [u for u, _ in sorted(feats.items())] == utts
    for utt, x in feats.items():
        assert x.dtype == np.float32
        np.testing.assert_array_equal(x, expected[utt])
        np.testing.assert_array_equal(feats[utt], x)  # re-reading gives the same matrix
    with pytest.raises(KeyError):
        feats["nope"]
    with pytest.raises(TypeError):
        feats["spk0_u0"] = np.zeros((1, 40))  # read-only


def test_features_are_read_on_access_only(tmp_path):
    data = _datadir(tmp_path, rates=(16000,) * 4)
    make_features(data, tmp_path / "feats", FeatureConfig())
    rx = dict(line.split() for line in (data / "feats.scp").read_text().splitlines())
    ark = Path(rx["spk0_u0"].rsplit(":", 1)[0])
    # cut the ark just after its first matrix (spk0_u0): the rest is unreadable
    end_of_first = int(rx["spk0_u2"].rsplit(":", 1)[1]) - len("spk0_u2 ")
    with open(ark, "r+b") as f:
        f.truncate(end_of_first)
    feats = load_features(data)  # builds without reading any matrix
    assert len(feats) == 4 and list(feats) == ["spk0_u0", "spk0_u2", "spk1_u1", "spk1_u3"]
    assert feats["spk0_u0"].shape[1] == 40
    for utt in ("spk0_u2", "spk1_u1", "spk1_u3"):
        with pytest.raises(DataError, match=rf"feats\.scp: cannot read {utt} from .*raw_data\.ark:\d+"):
            feats[utt]
    # iteration reaches the first good utterance, then stops at the first bad one
    seen = []
    with pytest.raises(DataError, match="cannot read spk0_u2"):
        for utt, _ in feats.items():
            seen.append(utt)
    assert seen == ["spk0_u0"]
    ark.unlink()  # a missing ark: same, on access
    feats = load_features(data)
    with pytest.raises(DataError, match=r"feats\.scp: cannot read spk0_u0 from .*raw_data\.ark"):
        feats["spk0_u0"]


def drop_lines(path, prefix: str) -> None:
    """Rewrite a Kaldi table without its lines starting with ``prefix``."""
    path.write_text("".join(l + "\n" for l in path.read_text().splitlines() if not l.startswith(prefix)))


def test_missing_cmvn_stats_found_up_front(tmp_path):
    data = _datadir(tmp_path)
    make_features(data, tmp_path / "feats", FeatureConfig())
    drop_lines(data / "cmvn.scp", "spk1 ")
    with pytest.raises(DataError, match=r"cmvn\.scp: no CMVN stats for speaker 'spk1' of utterance spk1_u1"):
        load_features(data)


def test_bad_cmvn_stats_found_up_front(tmp_path):
    data = _datadir(tmp_path)
    make_features(data, tmp_path / "feats", FeatureConfig())
    kaldiio.save_ark(str(tmp_path / "bad.ark"), {"spk0": np.zeros((2, 41)), "spk1": np.ones((3, 41))},
                     scp=str(data / "cmvn.scp"))
    with pytest.raises(DataError, match=r"cmvn\.scp: speaker spk0: CMVN stats have a frame count of 0"):
        load_features(data)


def test_stats_of_another_dim_fail_on_access(tmp_path):
    data = _datadir(tmp_path)
    make_features(data, tmp_path / "feats", FeatureConfig())
    stats = np.ones((2, 14))  # 13-dim stats for 40-dim features
    kaldiio.save_ark(str(tmp_path / "s.ark"), {"spk0": stats, "spk1": stats}, scp=str(data / "cmvn.scp"))
    feats = load_features(data)
    with pytest.raises(DataError, match=r"cmvn\.scp: utterance spk0_u0 \(speaker spk0\): .*does not fit features of dim 40"):
        feats["spk0_u0"]


def test_utterance_without_speaker(tmp_path):
    data = _datadir(tmp_path)
    make_features(data, tmp_path / "feats", FeatureConfig())
    drop_lines(data / "utt2spk", "spk1_u1 ")
    with pytest.raises(DataError, match=r"feats\.scp: utterance spk1_u1 is not in .*utt2spk"):
        load_features(data)
