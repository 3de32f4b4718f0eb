import numpy as np
import pytest
import soundfile as sf

from asr.audio import read_audio
from asr.errors import AudioError


def _tone(rate: int, seconds: float = 0.5, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def test_reads_sphere_named_wav(tmp_path):
    path = tmp_path / "SA1.WAV"
    sf.write(path, _tone(16000), 16000, format="NIST", subtype="PCM_16")
    audio = read_audio(path)
    assert audio.rate == 16000 and len(audio.samples) == 8000
    assert audio.samples.dtype == np.float32 and audio.notes == []


def test_wrong_rate_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "a8k.wav"
    sf.write(path, _tone(8000), 8000)
    with pytest.raises(AudioError, match=r"a8k\.wav: sample rate is 8000 Hz, expected 16000"):
        read_audio(path)


def test_resample_and_downmix_with_notes(tmp_path):
    path = tmp_path / "stereo44k.flac"
    sf.write(path, _tone(44100, channels=2), 44100)
    audio = read_audio(path, resample=True)
    assert abs(len(audio.samples) - 8000) <= 1
    assert any("down-mixed 2 channels" in n for n in audio.notes)
    assert any("resampled 44100 Hz to 16000 Hz" in n for n in audio.notes)
    # the tone survives resampling: its RMS stays near 0.3 / sqrt(2)
    assert abs(np.sqrt(np.mean(audio.samples[100:-100] ** 2)) - 0.212) < 0.01


def test_empty_corrupt_and_missing(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match=r"empty\.wav: audio file is empty"):
        read_audio(empty)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(AudioError, match=r"corrupt\.wav: cannot read audio"):
        read_audio(corrupt)
    with pytest.raises(AudioError, match=r"nope\.wav: audio file does not exist"):
        read_audio(tmp_path / "nope.wav")


# --- the one resampler: asr.audio.resample_audio (torchaudio) -------------------------------

def _corpus_ratios() -> list[tuple[int, int]]:
    """Every (input rate, speed percent) the synthetic corpus uses (flite's kal is 8 kHz, the rest 16 kHz)."""
    from asr.synth.perturb import SPEED_PERCENT

    return [(sr, sp) for sr in (8000, 16000) for sp in range(SPEED_PERCENT[0], SPEED_PERCENT[1] + 1)]


def test_speed_warp_is_resample_audio():
    """perturb.warp is resample_audio at the Fraction ratio (denominator -> numerator), nothing else."""
    import torch
    import torchaudio.functional as AF

    from asr.audio import resample_audio
    from asr.synth.perturb import resample_ratio, warp

    x = np.random.default_rng(0).standard_normal(4000)
    for sr, sp in [(8000, 90), (8000, 97), (8000, 100), (16000, 100), (16000, 103), (16000, 110)]:
        r = resample_ratio(sr, sp)
        y = warp(x, sr, sp)
        assert y.dtype == np.float64
        np.testing.assert_array_equal(y, resample_audio(x, r.denominator, r.numerator))
        # only the ratio matters (torchaudio reduces the rates by their gcd): the same as
        # resampling from the "sped-up" rate sr * sp / 100 to 16 kHz
        full = AF.resample(torch.from_numpy(x), orig_freq=sr * sp, new_freq=16000 * 100).numpy()
        np.testing.assert_array_equal(y, full)


def test_speed_warp_direction():
    """A 1 kHz tone at 8 kHz sped up by 10% comes out at 1.1 kHz in 16 kHz audio."""
    from asr.synth.perturb import warp

    t = np.arange(8000) / 8000
    y = warp(np.sin(2 * np.pi * 1000 * t), 8000, 110)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    peak_hz = np.argmax(spectrum) * 16000 / len(y)
    assert abs(peak_hz - 1100) < 5


def test_resample_length_is_ceil_as_synth_assumes():
    """len(out) == ceil(N * ratio) (scipy resample_poly's length) for every corpus ratio.

    synth.py scales flite's label times by float(resample_ratio(...)) and clamps
    them to the rendered length, so the warp must keep this length.
    """
    from scipy import signal

    from asr.audio import resample_audio
    from asr.synth.perturb import resample_ratio, warp

    for sr, sp in _corpus_ratios():
        r = resample_ratio(sr, sp)
        for n in (1, 2, 3, 7, 99, 100, 101, 4321, 3 * sr):
            x = np.zeros(n)
            expected = -(-n * r.numerator // r.denominator)  # exact ceil(n * ratio)
            assert len(warp(x, sr, sp)) == expected, (sr, sp, n)
            assert len(signal.resample_poly(x, r.numerator, r.denominator)) == expected, (sr, sp, n)
    for n in (1, 7, 4321):
        assert len(resample_audio(np.zeros(n, dtype=np.float32), 44100, 16000)) == -(-n * 16000 // 44100)


def test_speed_warp_runs_on_one_torch_thread_and_restores_it(monkeypatch):
    """Corpus workers (one a core) must not each start a thread a core: warp uses one, then restores."""
    import torch

    from asr.synth import perturb

    seen = []
    real = perturb.resample_audio
    monkeypatch.setattr(perturb, "resample_audio",
                        lambda *a, **k: (seen.append(torch.get_num_threads()), real(*a, **k))[1])
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        perturb.warp(np.zeros(100), 8000, 97)
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_resample_audio_keeps_dtype_and_copies():
    from asr.audio import resample_audio

    x32 = _tone(8000)
    y = resample_audio(x32, 8000, 16000)
    assert y.dtype == np.float32 and len(y) == 2 * len(x32)
    same = resample_audio(x32, 16000, 16000)
    np.testing.assert_array_equal(same, x32)
    same[0] = 5.0
    assert x32[0] != 5.0  # a new array even when nothing is resampled
    assert resample_audio(x32.astype(np.float64), 8000, 11025).dtype == np.float64


def test_no_other_resampler_in_the_toolkit():
    """No code calls scipy's resample / resample_poly or imports librosa (asr, bench, tests).

    This file is exempt: it compares output lengths with resample_poly's.
    """
    import ast
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    for path in [*repo.glob("asr/**/*.py"), *repo.glob("bench/*.py"), *repo.glob("tests/*.py")]:
        if path.resolve() == Path(__file__).resolve():
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Attribute):
                names = [node.attr] if node.attr == "resample_poly" or (
                    node.attr == "resample" and isinstance(node.value, ast.Name) and node.value.id == "signal") else []
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.split(".")[0] == "librosa"]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module] if (node.module or "").split(".")[0] == "librosa" else []
                names += [a.name for a in node.names if a.name in ("resample_poly", "resample") and
                          (node.module or "").startswith("scipy")]
            assert not names, f"{path}:{node.lineno}: uses {names} (use asr.audio.resample_audio)"
