"""Reading audio files: any format soundfile reads (WAV, FLAC, NIST SPHERE, …),
down-mixed to mono and, where allowed, resampled to the model's rate."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from asr.errors import AudioError

log = logging.getLogger(__name__)

#: The sample rate every model in this toolkit is trained on, in Hz.
MODEL_RATE = 16000


@dataclass
class Audio:
    """Mono audio: ``samples`` float32 in [-1, 1], shape (num_samples,)."""

    samples: np.ndarray
    rate: int
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate


def read_audio(path: Union[str, Path], rate: int = MODEL_RATE, resample: bool = False) -> Audio:
    """Read ``path`` as mono float32 audio at ``rate`` Hz.

    Args:
        path: any file soundfile can read (a SPHERE file named ``.WAV`` too).
        rate: the required sample rate in Hz.
        resample: when True a file at another rate is resampled (and a note
            says so); when False it is an error.

    Raises:
        AudioError: the file is missing, unreadable, empty, silent-length or
            at the wrong rate; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file does not exist")
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, ValueError) as exc:
        raise AudioError(f"{path}: cannot read audio ({exc})") from None
    notes: list[str] = []
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio file is empty (0 samples)")
    if data.shape[1] > 1:
        notes.append(f"down-mixed {data.shape[1]} channels to mono")
    samples = data.mean(axis=1).astype(np.float32)
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    if file_rate != rate:
        if not resample:
            raise AudioError(f"{path}: sample rate is {file_rate} Hz, expected {rate} Hz")
        samples = resample_audio(samples, file_rate, rate)
        notes.append(f"resampled {file_rate} Hz to {rate} Hz")
    return Audio(samples=samples, rate=rate, notes=notes)


def resample_audio(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample float (num_samples,) audio from ``from_rate`` to ``to_rate`` Hz.

    The toolkit's one resampler (torchaudio's windowed-sinc, the rates reduced
    by their gcd, so only their ratio matters: the corpus speed warp passes a
    ratio's numerator and denominator). The output has
    ceil(num_samples * to_rate / from_rate) samples, as scipy's
    ``resample_poly`` would, and the input's dtype (float32 or float64); it is
    a new array even when the rates are equal.
    """
    wav = torch.from_numpy(np.array(samples, copy=True, order="C"))
    return AF.resample(wav, orig_freq=int(from_rate), new_freq=int(to_rate)).numpy()
