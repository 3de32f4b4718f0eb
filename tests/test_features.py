import shutil
import subprocess

import numpy as np
import pytest

from asr.audio import read_audio
from asr.errors import AudioError
from asr.features.cmvn import accumulate_stats, apply_cmvn, check_stats
from asr.features.extract import INT16_SCALE, FeatureConfig, compute_features


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



def _glide(seconds: float = 1.0, f_start: float = 120.0, f_end: float = 240.0, voiced_from: float = 0.3):
    """A harmonic tone gliding from f_start to f_end Hz (silent before ``voiced_from`` s), at 16 kHz."""
    t = np.arange(int(16000 * seconds)) / 16000
    f0 = f_start + (f_end - f_start) * t / seconds
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    tone = sum(np.sin(k * phase) / k for k in range(1, 6)) * (t >= voiced_from)
    return (0.2 * tone + 1e-4 * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32), f0


def test_pitch_columns_follow_f0_and_bridge_unvoiced_frames():
    cfg = FeatureConfig(pitch=True)
    audio, f0 = _glide()
    feats = compute_features(audio, cfg)
    assert feats.shape == (98, 43) and cfg.dim == 43
    np.testing.assert_array_equal(feats[:, :40], compute_features(audio, FeatureConfig()))
    prob, log_f0, delta = feats[:, 40], feats[:, 41], feats[:, 42]
    centres = cfg.frame_centers(len(feats))
    voiced = centres > 0.36
    truth = np.log(f0[(centres * 16000).astype(int)])
    assert np.abs(log_f0[voiced] - truth[voiced]).max() < 0.03  # within 3% of the true F0
    assert prob[voiced].min() > 0.8 and prob[centres < 0.25].max() == 0.0
    np.testing.assert_allclose(log_f0[centres < 0.25], np.log(156.0), atol=0.03)  # F0 at the onset, held
    assert 0 < np.median(delta[voiced]) < 0.02  # rising, about log(2) over 100 frames


def test_pitch_of_silence_or_a_very_short_file_is_unvoiced():
    for n in (16000, 420):  # 420 samples: one frame, shorter than the tracker's window
        feats = compute_features(_noise(n) * 1e-3, FeatureConfig(pitch=True))
        np.testing.assert_allclose(feats[:, 40:], [[0.0, np.log(100.0), 0.0]] * len(feats), atol=1e-6)


def test_energy_column_is_log_frame_energy():
    cfg = FeatureConfig(energy=True)
    a = compute_features(_noise(4000), cfg)
    assert a.shape == (23, 41)
    np.testing.assert_allclose(compute_features(2 * _noise(4000), cfg)[:, 0] - a[:, 0], np.log(4.0), atol=1e-3)
    with pytest.raises(ValueError, match="energy is an fbank option"):
        FeatureConfig(kind="mfcc", energy=True)

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


def test_check_stats():
    check_stats(accumulate_stats([np.ones((3, 4))]))
    with pytest.raises(ValueError, match=r"shape \(2, D \+ 1\), got \(3, 5\)"):
        check_stats(np.ones((3, 5)))
    with pytest.raises(ValueError, match="frame count of 0"):
        check_stats(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="not finite"):
        check_stats(np.full((2, 5), np.nan))


# --- agreement with kaldi-native-fbank, an independent Kaldi-compatible front end ---

#: TIMIT's SA1 prompt, spoken by flite: 47694 samples, 296 frames.
SA1 = "She had your dark suit in greasy wash water all year."


@pytest.fixture(scope="module")
def flite_speech(tmp_path_factory) -> np.ndarray:
    if shutil.which("flite") is None:
        pytest.skip("flite is not installed (make setup installs it)")
    wav = tmp_path_factory.mktemp("flite") / "sa1.wav"
    subprocess.run(["flite", "-voice", "kal16", "-t", SA1, "-o", str(wav)], check=True)
    return read_audio(wav, rate=16000).samples


def _knf_features(samples: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """``cfg``'s features computed by kaldi-native-fbank, every option that
    torchaudio.compliance.kaldi sets (or compute_features passes) set explicitly."""
    knf = pytest.importorskip("kaldi_native_fbank")
    opts = knf.FbankOptions() if cfg.kind == "fbank" else knf.MfccOptions()
    frame = opts.frame_opts
    frame.samp_freq = float(cfg.sample_rate)
    frame.frame_length_ms, frame.frame_shift_ms = cfg.frame_length_ms, cfg.frame_shift_ms
    frame.dither = cfg.dither  # knf's default is 3e-5
    frame.snip_edges = True
    frame.window_type = "povey"
    frame.preemph_coeff = 0.97
    frame.remove_dc_offset = True
    frame.round_to_power_of_two = True
    opts.mel_opts.num_bins = cfg.num_mel_bins
    opts.mel_opts.low_freq, opts.mel_opts.high_freq = 20.0, 0.0  # 0: Nyquist
    opts.use_energy = False  # knf's MfccOptions default is True (log energy as c0); torchaudio's is False
    opts.energy_floor = 0.0
    opts.raw_energy = True
    if cfg.kind == "mfcc":
        opts.num_ceps, opts.cepstral_lifter = cfg.num_ceps, 22.0
        comp = knf.OnlineMfcc(opts)
    else:
        opts.use_log_fbank, opts.use_power = True, True
        comp = knf.OnlineFbank(opts)
    comp.accept_waveform(float(cfg.sample_rate), (samples * INT16_SCALE).tolist())  # int16 units, as ours
    comp.input_finished()
    return np.array([comp.get_frame(i) for i in range(comp.num_frames_ready)], dtype=np.float32)


#: Largest |ours - knf| allowed. Measured (torch 2.14.1 / torchaudio 2.11.0,
#: kaldi-native-fbank 1.23.0, x86-64 CPU): fbank 3.9e-5 on the flite SA1
#: utterance (log-mel values up to 24) and 6.3e-5 on noise; MFCC 5.5e-4 on SA1
#: and 6.7e-4 on noise (cepstra up to 138; the largest gaps are on c10).
#: That is float32 rounding: each option mismatch tried (no pre-emphasis,
#: Hamming window, no DC removal, no power-of-two FFT, low_freq 0, energy as
#: c0, no lifter) gives a max difference of 1.5 to 95 on SA1.
KNF_TOL = {"fbank": 1e-4, "mfcc": 1e-3}


@pytest.mark.parametrize("kind", ["fbank", "mfcc"])
@pytest.mark.parametrize("source", ["flite", "noise"])
def test_features_match_kaldi_native_fbank(kind, source, request):
    samples = request.getfixturevalue("flite_speech") if source == "flite" else _noise(16000)
    cfg = FeatureConfig(kind=kind)
    assert (cfg.num_mel_bins, cfg.frame_length_ms, cfg.frame_shift_ms, cfg.dither) == (40, 25.0, 10.0, 0.0)
    ours, ref = compute_features(samples, cfg), _knf_features(samples, cfg)
    assert ours.shape == ref.shape == (cfg.num_frames(len(samples)), cfg.dim)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=KNF_TOL[kind])
