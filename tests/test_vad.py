"""Silero VAD per feature frame, and the CMVN statistics taken over speech frames."""

import subprocess
import sys

import numpy as np

from asr.synth.tts import synthesize
from asr.features.cmvn import MIN_SPEECH_FRAMES, accumulate_stats, speech_stats
from asr.features import vad
from asr.features.extract import FeatureConfig, features_and_speech


def test_padding_is_not_speech_and_does_not_move_the_statistics():
    audio, rate, _ = synthesize("She had your dark suit in greasy wash water all year.", "slt", {}, "test")
    rng = np.random.default_rng(0)
    pad = 1e-4 * rng.standard_normal(5 * rate)
    cfg = FeatureConfig(cmvn="speech")
    feats, speech = features_and_speech(audio.astype(np.float32), cfg)
    pfeats, pspeech = features_and_speech(np.concatenate([pad, audio]).astype(np.float32), cfg)
    lead = len(pfeats) - len(feats)  # frames of the padding (and the frame straddling it)
    assert not pspeech[: lead - 3].any()  # 5 s of near-silence: no speech frame
    assert 0.5 < speech.mean() < 0.98  # the sentence is mostly speech, with pauses at its ends
    with_pad = speech_stats(pfeats, pspeech)
    alone = speech_stats(feats, speech)
    mean = lambda s: s[0, :-1] / s[0, -1]  # noqa: E731
    # over speech frames the padding leaves the mean alone (measured: 0.11 at most, log-mel
    # units); over all frames it drags it down by up to 11.4
    assert np.abs(mean(with_pad) - mean(alone)).max() < 0.5
    assert np.abs(mean(accumulate_stats([pfeats])) - mean(alone)).max() > 5.0


def test_too_few_speech_frames_fall_back_to_all_frames():
    feats = np.random.default_rng(1).standard_normal((50, 3))
    few = np.zeros(50, dtype=bool)
    few[: MIN_SPEECH_FRAMES - 1] = True
    np.testing.assert_array_equal(speech_stats(feats, few), accumulate_stats([feats]))
    enough = np.zeros(50, dtype=bool)
    enough[:MIN_SPEECH_FRAMES] = True
    np.testing.assert_array_equal(speech_stats(feats, enough), accumulate_stats([feats[:MIN_SPEECH_FRAMES]]))


def test_the_sequence_model_scores_as_the_packages_own_streaming_model(monkeypatch):
    """One onnxruntime call over every chunk (and blocks of 7 chunks, the LSTM state carried)
    against silero_vad's TorchScript model fed one chunk at a time (its audio_forward)."""
    import torch
    from silero_vad import load_silero_vad

    threads = torch.get_num_threads()
    model = load_silero_vad()
    torch.set_num_threads(threads)
    audio, rate, _ = synthesize("Never eat cold soup on a windy hill.", "rms", {}, "test")
    samples = vad.resample_audio(audio.astype(np.float32), rate, vad.VAD_RATE)
    with torch.no_grad():
        model.reset_states()
        ref = model.audio_forward(torch.from_numpy(samples), vad.VAD_RATE)[0].numpy()
    whole = vad.speech_probabilities(samples, vad.VAD_RATE)
    monkeypatch.setattr(vad, "BLOCK_CHUNKS", 7)
    blocks = vad.speech_probabilities(samples, vad.VAD_RATE)
    assert whole.shape == ref.shape == (-(-len(samples) // vad.CHUNK),)
    assert np.abs(whole - ref).max() < 1e-5  # measured 1.2e-6
    assert np.abs(blocks - whole).max() < 1e-6
    assert 0.2 < (whole >= vad.THRESHOLD).mean() < 1.0


def test_the_vad_leaves_torch_threads_alone():
    """silero_vad's import calls torch.set_num_threads(1); the VAD must not slow training."""
    code = ("import numpy as np, torch; torch.set_num_threads(2); from asr.features.vad import "
            "speech_probabilities; speech_probabilities(np.zeros(16000, np.float32), 16000); "
            "print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2"
