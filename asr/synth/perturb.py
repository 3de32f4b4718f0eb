"""Per-speaker voice and channel perturbations of synthesized speech.

A speaker is a flite voice plus parameters drawn once from the corpus seed:
flite's f0 target mean / range and duration stretch, a speed (vocal-tract)
warp done by resampling, a band-pass channel, a synthetic room impulse
response, a level and a noise floor. The waveform chain, in numpy / scipy
(filters) and torchaudio (the resampler, via :func:`asr.audio.resample_audio`),
deterministic, is

    flite audio (sr_in) -> resample to 16 kHz / speed -> band-pass (zero phase)
      -> reverb (RIR, tail truncated) -> gain to a peak level -> + noise at an SNR
      -> int16
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Iterator

import numpy as np
import torch
from scipy import signal

from asr.audio import resample_audio
from asr.synth.neural_tts import NeuralSettings

OUT_RATE = 16000
#: Voices and the sex they read as.
VOICES: dict[str, str] = {"kal": "M", "kal16": "M", "awb": "M", "rms": "M", "slt": "F"}
#: Ranges drawn per speaker (uniform).
F0_MEAN_HZ = {"M": (90.0, 150.0), "F": (160.0, 240.0)}
F0_STDDEV_HZ = (8.0, 30.0)
DURATION_STRETCH = (0.85, 1.2)
SPEED_PERCENT = (90, 110)  # speed warp factor in percent (integer -> exact resampling ratio)
LOW_CUT_HZ = (50.0, 200.0)
HIGH_CUT_HZ = (3800.0, 7600.0)
BAND_ORDER = 4
RT60_S = (0.05, 0.35)
REVERB_WET = (0.02, 0.25)
RIR_MAX_S = 0.4
PEAK_DBFS = (-9.0, -2.0)
SNR_DB = (15.0, 40.0)
SNR_JITTER_DB = 2.0
NOISE_COLOUR = (0.0, 0.9)
#: Neural voices' noise scales (piper's defaults for joe: 0.667 and 0.8); the length
#: scale is drawn from DURATION_STRETCH, like flite's duration stretch.
NEURAL_NOISE_SCALE = (0.45, 0.85)
NEURAL_NOISE_W_SCALE = (0.5, 1.0)  # one-pole low-pass coefficient for the noise (0 = white)
INT16_MAX = 32767
_LN_1000 = math.log(1000.0)  # RT60: the time for a 60 dB (x1000 amplitude) decay


@dataclass(frozen=True)
class SpeakerVoice:
    """Everything that makes one synthetic speaker sound like itself."""

    voice: str
    f0_mean: float
    f0_stddev: float
    duration_stretch: float
    speed_percent: int
    low_cut: float
    high_cut: float
    rt60: float
    reverb_wet: float
    peak_dbfs: float
    snr_db: float
    noise_colour: float
    rir_seed: int
    noise_scale: float = 0.0    # neural voices: the generator's noise (piper's --noise-scale)
    noise_w_scale: float = 0.0  # neural voices: the duration predictor's noise (--noise-w-scale)

    def flite_settings(self) -> dict[str, float]:
        """Float features for flite's ``--setf``."""
        return {
            "int_f0_target_mean": self.f0_mean,
            "int_f0_target_stddev": self.f0_stddev,
            "duration_stretch": self.duration_stretch,
        }

    def neural_settings(self) -> NeuralSettings:
        """Piper's scales: ``duration_stretch`` is its length scale (f0 is the model's own)."""
        return NeuralSettings(self.duration_stretch, self.noise_scale, self.noise_w_scale)

    def to_dict(self) -> dict:
        return asdict(self)


def draw_speaker_voice(voice: str, rng: np.random.Generator) -> SpeakerVoice:
    """Draw a speaker's parameters for flite ``voice`` (numbers rounded for stable files)."""
    u = lambda lo_hi, nd: round(float(rng.uniform(*lo_hi)), nd)  # noqa: E731
    return SpeakerVoice(
        voice=voice,
        f0_mean=u(F0_MEAN_HZ[VOICES[voice]], 1),
        f0_stddev=u(F0_STDDEV_HZ, 1),
        duration_stretch=u(DURATION_STRETCH, 3),
        **_channel(rng),
    )


def draw_neural_voice(voice: str, rng: np.random.Generator) -> SpeakerVoice:
    """Draw a speaker's parameters for neural ``voice``: piper's three scales, then the
    flite speakers' speed warp and channel (f0 stays the model's: 0 in the record)."""
    u = lambda lo_hi, nd: round(float(rng.uniform(*lo_hi)), nd)  # noqa: E731
    length, noise, noise_w = u(DURATION_STRETCH, 3), u(NEURAL_NOISE_SCALE, 3), u(NEURAL_NOISE_W_SCALE, 3)
    return SpeakerVoice(voice=voice, f0_mean=0.0, f0_stddev=0.0, duration_stretch=length,
                        **_channel(rng), noise_scale=noise, noise_w_scale=noise_w)


def _channel(rng: np.random.Generator) -> dict:
    """The speed warp, band, room, level and noise of a speaker, drawn in this order."""
    u = lambda lo_hi, nd: round(float(rng.uniform(*lo_hi)), nd)  # noqa: E731
    return dict(
        speed_percent=int(rng.integers(SPEED_PERCENT[0], SPEED_PERCENT[1] + 1)),
        low_cut=u(LOW_CUT_HZ, 0),
        high_cut=u(HIGH_CUT_HZ, 0),
        rt60=u(RT60_S, 3),
        reverb_wet=u(REVERB_WET, 3),
        peak_dbfs=u(PEAK_DBFS, 1),
        snr_db=u(SNR_DB, 1),
        noise_colour=u(NOISE_COLOUR, 2),
        rir_seed=int(rng.integers(0, 2**31 - 1)),
    )


def resample_ratio(sr_in: int, speed_percent: int) -> Fraction:
    """Output samples per input sample: to OUT_RATE, sped up by ``speed_percent`` / 100."""
    return Fraction(OUT_RATE * 100, sr_in * speed_percent)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch ops on one intra-op thread, then restore the process's setting.

    The corpus is rendered in a process pool (a worker per core); torch's
    default of a thread per core in every worker oversubscribes the CPU and a
    3 s warp then took 85-150 ms instead of 7-9 ms (2 workers on 2 busy cores).
    One thread loses nothing: the resampling is a few ms.
    """
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def warp(x: np.ndarray, sr_in: int, speed_percent: int) -> np.ndarray:
    """Resample (N,) audio at ``sr_in`` to OUT_RATE and speed it up by speed_percent/100.

    Speed > 100 shortens the audio and raises pitch and formants (a shorter
    vocal tract). Output length is ceil(N * ratio), the length synth's label
    rescaling assumes; the dtype is x's.
    """
    ratio = resample_ratio(sr_in, speed_percent)
    # ratio = output / input samples, so the denominator is the "from" rate.
    with one_torch_thread():
        return resample_audio(x, from_rate=ratio.denominator, to_rate=ratio.numerator)


def band_limit(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """Zero-phase Butterworth band-pass [low, high] Hz at OUT_RATE."""
    high = min(high, 0.49 * OUT_RATE)
    sos = signal.butter(BAND_ORDER, [low, high], btype="bandpass", fs=OUT_RATE, output="sos")
    return signal.sosfiltfilt(sos, x)


def room_impulse_response(rt60: float, wet: float, seed: int) -> np.ndarray:
    """(L,) RIR: a unit direct path then exponentially decaying noise of energy ``wet``."""
    n = int(min(rt60, RIR_MAX_S) * OUT_RATE)
    rng = np.random.default_rng(seed)
    t = np.arange(1, n) / OUT_RATE
    tail = rng.standard_normal(n - 1) * np.exp(-_LN_1000 * t / rt60)
    tail *= math.sqrt(wet / max(float(np.sum(tail**2)), 1e-12))
    return np.concatenate([[1.0], tail])


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve with ``rir`` and cut the tail, keeping the length (no delay: direct path first)."""
    return signal.fftconvolve(x, rir)[: len(x)]


def add_noise(x: np.ndarray, snr_db: float, colour: float, rng: np.random.Generator) -> np.ndarray:
    """Add coloured Gaussian noise at ``snr_db`` relative to the mean power of ``x``."""
    noise = signal.lfilter([1.0], [1.0, -colour], rng.standard_normal(len(x)))
    p_sig = float(np.mean(x**2))
    p_noise = float(np.mean(noise**2))
    if p_sig <= 0 or p_noise <= 0:
        return x
    return x + noise * math.sqrt(p_sig / (p_noise * 10 ** (snr_db / 10)))


def render(x: np.ndarray, sr_in: int, spk: SpeakerVoice, rng: np.random.Generator) -> np.ndarray:
    """The whole chain: (N,) float flite audio -> (M,) int16 at OUT_RATE.

    ``rng`` (seeded per utterance) draws the SNR jitter and the noise.
    """
    y = warp(x, sr_in, spk.speed_percent)
    y = band_limit(y, spk.low_cut, spk.high_cut)
    y = reverberate(y, room_impulse_response(spk.rt60, spk.reverb_wet, spk.rir_seed))
    peak = float(np.max(np.abs(y)))
    if peak > 0:
        y = y * (10 ** (spk.peak_dbfs / 20) / peak)
    snr = spk.snr_db + float(rng.uniform(-SNR_JITTER_DB, SNR_JITTER_DB))
    y = add_noise(y, snr, spk.noise_colour, rng)
    return np.clip(np.round(y * INT16_MAX), -INT16_MAX - 1, INT16_MAX).astype(np.int16)
