"""Voice activity per feature frame, from Silero VAD (the ``silero-vad`` package,
which ships its models: nothing is downloaded).

Silero scores 32 ms chunks (512 samples at 16 kHz) with a speech
probability; a feature frame is speech when the chunk holding its centre
scores at least ``THRESHOLD``. Chosen on the synthetic dev set against the
reference phone segmentation (40 utterances, frame accuracy; the same files
with 5 s of near-silence before the speech in brackets): Silero 95.3% (98.5%),
webrtcvad at aggressiveness 2 93.6% (95.6%), the energy detector of
:mod:`asr.decode.segment` 89.4% (95.0%).

The chunks are scored by the package's whole-sequence ONNX model (every
chunk with the 64 samples before it, in one onnxruntime call a block of
``BLOCK_CHUNKS``), not by its TorchScript model's loop of one call a chunk:
the same probabilities (within 1.2e-6 on 40 corpus files, no decision
changed) at about a fifth of the time (real-time factor 0.0024 against
0.0125 on one thread).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from asr.audio import resample_audio
from asr.errors import DataError

#: Rate Silero VAD is run at (its sequence model is for 16 kHz).
VAD_RATE = 16000
#: Samples per Silero chunk at VAD_RATE.
CHUNK = 512
#: Samples of the chunk before that the model reads with each chunk.
CONTEXT = 64
#: Speech probability at or above which a chunk is speech (Silero's default).
THRESHOLD = 0.5
#: Chunks scored per onnxruntime call (bounds memory on long recordings: ~2.4 MB of input).
BLOCK_CHUNKS = 1024
#: The whole-sequence model's file in the silero_vad package's data dir.
SEQUENCE_MODEL = "silero_vad_16k_sequence.onnx"
#: The LSTM state's size (its h and c are (1, 1, STATE) each).
STATE = 128


def _package_file(name: str) -> Path:
    """A file of the silero_vad package's data dir, found without importing the package
    (its import sets torch's thread count to 1)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the silero-vad package is not installed (run 'make setup')")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    if not path.is_file():
        raise DataError(f"{path}: Silero VAD model missing (silero-vad>=6 ships it)")
    return path


@functools.lru_cache(maxsize=1)
def _session():
    """The onnxruntime session of the whole-sequence model, one thread (built once a process)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # the model's unused initializers are not worth a warning
    return ort.InferenceSession(str(_package_file(SEQUENCE_MODEL)), sess_options=opts,
                                providers=["CPUExecutionProvider"])


def chunk_windows(samples: np.ndarray) -> np.ndarray:
    """The model's input rows: (ceil(N / 512), 576) float32, chunk ``i`` (zero-padded at the end)
    after the 64 samples before it (zeros before the first)."""
    n = -(-len(samples) // CHUNK)
    padded = np.zeros(CONTEXT + n * CHUNK, dtype=np.float32)
    padded[CONTEXT:CONTEXT + len(samples)] = samples
    index = np.arange(n)[:, None] * CHUNK + np.arange(CONTEXT + CHUNK)[None, :]
    return padded[index]


def speech_probabilities(samples: np.ndarray, rate: int) -> np.ndarray:
    """Speech probability of each 32 ms chunk of mono float audio in [-1, 1]: (ceil(N' / 512),)
    float32, N' the number of samples at 16 kHz."""
    if rate != VAD_RATE:
        samples = resample_audio(samples, rate, VAD_RATE)
    if len(samples) == 0:
        return np.zeros(0, dtype=np.float32)
    windows = chunk_windows(np.asarray(samples, dtype=np.float32))
    session = _session()
    h = np.zeros((1, 1, STATE), dtype=np.float32)
    c = np.zeros_like(h)
    probs = []
    for start in range(0, len(windows), BLOCK_CHUNKS):
        p, h, c = session.run(None, {"input": windows[start:start + BLOCK_CHUNKS], "h": h, "c": c})
        probs.append(p)
    return np.concatenate(probs).astype(np.float32, copy=False)
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
