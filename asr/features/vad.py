"""Voice activity per feature frame, from Silero VAD (the ``silero-vad`` package,
which ships its model: nothing is downloaded).

Silero scores 32 ms chunks (512 samples at 16 kHz) with a speech
probability; a feature frame is speech when the chunk holding its centre
scores at least ``THRESHOLD``. Chosen on the synthetic dev set against the
reference phone segmentation (40 utterances, frame accuracy; the same files
with 5 s of near-silence before the speech in brackets): Silero 95.3% (98.5%),
webrtcvad at aggressiveness 2 93.6% (95.6%), the energy detector of
:mod:`asr.decode.segment` 89.4% (95.0%).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import torch

from asr.audio import resample_audio

#: Rate Silero VAD is run at (it takes 8 or 16 kHz).
VAD_RATE = 16000
#: Samples per Silero chunk at VAD_RATE.
CHUNK = 512
#: Speech probability at or above which a chunk is speech (Silero's default).
THRESHOLD = 0.5


@functools.lru_cache(maxsize=1)
def _model() -> torch.jit.ScriptModule:
    threads = torch.get_num_threads()
    from silero_vad import load_silero_vad  # its import sets torch.set_num_threads(1) for the process

    torch.set_num_threads(threads)
    with warnings.catch_warnings():  # torch.jit.load's deprecation notice
        warnings.simplefilter("ignore", FutureWarning)
        return load_silero_vad()


def speech_probabilities(samples: np.ndarray, rate: int) -> np.ndarray:
    """Speech probability of each 32 ms chunk of mono float audio in [-1, 1]: (ceil(N' / 512),),
    N' the number of samples at 16 kHz."""
    if rate != VAD_RATE:
        samples = resample_audio(samples, rate, VAD_RATE)
    if len(samples) == 0:
        return np.zeros(0, dtype=np.float32)
    wav = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    model = _model()
    with torch.no_grad():
        model.reset_states()
        probs = model.audio_forward(wav, VAD_RATE)  # (1, chunks)
    return probs[0].numpy()


def speech_frames(samples: np.ndarray, rate: int, num_frames: int, window: int, shift: int) -> np.ndarray:
    """(num_frames,) bool: which feature frames are speech.

    Args:
        samples: mono float audio in [-1, 1] at ``rate`` Hz.
        num_frames: frames of the features computed from ``samples``.
        window, shift: the features' frame length and shift in samples at ``rate``.
    """
    probs = speech_probabilities(samples, rate)
    if len(probs) == 0:
        return np.zeros(num_frames, dtype=bool)
    centres = (np.arange(num_frames) * shift + window / 2) * (VAD_RATE / rate)  # in samples at 16 kHz
    chunk = np.minimum((centres // CHUNK).astype(np.int64), len(probs) - 1)
    return probs[chunk] >= THRESHOLD
