"""Reading audio files: any format soundfile reads (WAV, FLAC, NIST SPHERE, …),
down-mixed to mono and, where allowed, resampled to the model's rate.

A Kaldi ``wav.scp`` value is a file path or an input pipe, ``<command> |``
(e.g. ``sox x.flac -t wav - |`` or ``flac -c -d -s x.flac |``): the command
is run with ``/bin/sh`` and the audio it writes to standard output is read
(:func:`read_audio_entry`).
"""

from __future__ import annotations

import io
import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from asr.errors import AudioError, DataError

log = logging.getLogger(__name__)

#: The sample rate every model in this toolkit is trained on, in Hz.
MODEL_RATE = 16000
#: Seconds a wav.scp pipe command may run before it is stopped.
PIPE_TIMEOUT_S = 600.0
_SF_ERRORS = (RuntimeError, sf.LibsndfileError, ValueError)


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
    except _SF_ERRORS as exc:
        raise AudioError(f"{path}: cannot read audio ({exc})") from None
    return _mono_at_rate(data, file_rate, rate, resample, str(path))


def _mono_at_rate(data: np.ndarray, file_rate: int, rate: int, resample: bool, name: str) -> Audio:
    """(num_samples, channels) float32 ``data`` at ``file_rate`` Hz -> mono :class:`Audio` at ``rate`` Hz.

    Raises:
        AudioError: empty or non-finite audio, or the wrong rate when not ``resample``;
            the message starts with ``name``.
    """
    notes: list[str] = []
    if data.shape[0] == 0:
        raise AudioError(f"{name}: audio file is empty (0 samples)")
    if data.shape[1] > 1:
        notes.append(f"down-mixed {data.shape[1]} channels to mono")
    samples = data.mean(axis=1).astype(np.float32)
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
    if file_rate != rate:
        if not resample:
            raise AudioError(f"{name}: sample rate is {file_rate} Hz, expected {rate} Hz")
        samples = resample_audio(samples, file_rate, rate)
        notes.append(f"resampled {file_rate} Hz to {rate} Hz")
    return Audio(samples=samples, rate=rate, notes=notes)


def is_pipe(entry: str) -> bool:
    """True when a ``wav.scp`` value is a Kaldi input pipe (``<command> |``)."""
    return entry.rstrip().endswith("|")


def pipe_command(entry: str) -> str:
    """The shell command of a Kaldi input pipe: ``entry`` without its trailing ``|``."""
    cmd = entry.strip()
    return cmd[:-1].rstrip() if cmd.endswith("|") else cmd


def run_pipe(entry: str, timeout_s: float = PIPE_TIMEOUT_S) -> bytes:
    """Run a Kaldi input pipe with ``/bin/sh`` and return what it wrote to standard output.

    Raises:
        DataError: the command cannot start, fails (non-zero exit; the message
            quotes the command and the last line of its standard error), runs
            past ``timeout_s`` seconds or writes nothing.
    """
    cmd = pipe_command(entry)
    try:
        proc = subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise DataError(f"command {cmd!r} ran longer than {timeout_s:g} s") from None
    except OSError as exc:
        raise DataError(f"command {cmd!r} could not be run ({exc})") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", errors="replace").strip().splitlines()
        detail = f": {err[-1]}" if err else ""
        raise DataError(f"command {cmd!r} failed with exit status {proc.returncode}{detail}")
    if not proc.stdout:
        raise DataError(f"command {cmd!r} wrote no audio to its standard output")
    return proc.stdout


def read_audio_pipe(entry: str, rate: int = MODEL_RATE, resample: bool = False,
                    timeout_s: float = PIPE_TIMEOUT_S) -> Audio:
    """Run a Kaldi input pipe (``<command> |``) and read the audio it writes (WAV, FLAC, …).

    Raises:
        DataError: the command fails (see :func:`run_pipe`).
        AudioError: its output is not audio soundfile reads, is empty or at the
            wrong rate; the message quotes the command.
    """
    data_bytes = run_pipe(entry, timeout_s)
    name = f"command {pipe_command(entry)!r}"
    try:
        data, file_rate = sf.read(io.BytesIO(data_bytes), dtype="float32", always_2d=True)
    except _SF_ERRORS as exc:
        raise AudioError(f"{name}: cannot read the audio it wrote ({exc})") from None
    return _mono_at_rate(data, file_rate, rate, resample, name)


def read_audio_entry(entry: str, rate: int = MODEL_RATE, resample: bool = False) -> Audio:
    """Read a ``wav.scp`` value: a file path, or a Kaldi input pipe (``<command> |``).

    Raises:
        AudioError, DataError: as :func:`read_audio` and :func:`read_audio_pipe`.
    """
    if is_pipe(entry):
        return read_audio_pipe(entry, rate, resample)
    return read_audio(entry, rate, resample)


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
