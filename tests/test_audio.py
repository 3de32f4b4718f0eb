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
