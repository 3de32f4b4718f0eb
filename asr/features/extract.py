"""Kaldi-compatible filterbank and MFCC features (torchaudio.compliance.kaldi),
optionally with log energy and pitch (Praat's autocorrelation tracker, through
parselmouth), and the speech frames their CMVN statistics are taken from."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio.compliance.kaldi as K
import yaml

from asr.errors import AudioError
from asr.io import atomic_write_text, load_yaml_config

#: Kaldi's features are computed on 16-bit integer sample values.
INT16_SCALE = 32768.0
#: CMVN statistics: per utterance over speech frames, or per speaker over all frames.
CMVN_MODES = ("speech", "speaker")
#: Pitch columns: voicing strength (0 unvoiced .. 1), log F0 in Hz (interpolated
#: through unvoiced frames), and its frame-to-frame delta.
PITCH_DIM = 3
#: F0 search range of the pitch tracker, Hz.
PITCH_RANGE_HZ = (60.0, 500.0)


@dataclass(frozen=True)
class FeatureConfig:
    """Front-end settings; saved with every model as ``feats.yaml``."""

    kind: str = "fbank"            # "fbank" (log-mel) or "mfcc"
    num_mel_bins: int = 40
    num_ceps: int = 13             # MFCC only
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    sample_rate: int = 16000
    dither: float = 0.0            # 0 keeps features deterministic
    # CMVN: "speech" = per utterance (per file when transcribing), over the frames
    # Silero VAD calls speech; "speaker" = per speaker over all frames (per file,
    # all frames, when transcribing: the only mode of bundles made before "speech")
    cmvn: str = "speaker"
    energy: bool = False           # fbank only: log frame energy as a first column
    pitch: bool = False            # 3 more columns: voicing strength, log F0, its delta (PITCH_DIM)

    def __post_init__(self) -> None:
        if self.kind not in ("fbank", "mfcc"):
            raise ValueError(f"feature kind must be 'fbank' or 'mfcc', got {self.kind!r}")
        if self.cmvn not in CMVN_MODES:
            raise ValueError(f"cmvn must be one of {CMVN_MODES}, got {self.cmvn!r}")
        if self.energy and self.kind != "fbank":
            raise ValueError("energy is an fbank option (an MFCC's c0 is its energy already)")

    @property
    def dim(self) -> int:
        base = self.num_mel_bins if self.kind == "fbank" else self.num_ceps
        return base + int(self.energy) + PITCH_DIM * int(self.pitch)

    @property
    def window_samples(self) -> int:
        return int(self.sample_rate * self.frame_length_ms / 1000)

    @property
    def shift_samples(self) -> int:
        return int(self.sample_rate * self.frame_shift_ms / 1000)

    def num_frames(self, num_samples: int) -> int:
        """Frames Kaldi produces for ``num_samples`` samples (snip_edges=True)."""
        if num_samples < self.window_samples:
            return 0
        return 1 + (num_samples - self.window_samples) // self.shift_samples

    def frame_centers(self, num_frames: int) -> np.ndarray:
        """Centre of each frame in seconds, shape (num_frames,)."""
        starts = np.arange(num_frames) * self.shift_samples
        return (starts + self.window_samples / 2) / self.sample_rate

    def save(self, path: Path) -> None:
        atomic_write_text(path, yaml.safe_dump(asdict(self), sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> "FeatureConfig":
        return load_yaml_config(cls, path, "feature config")


def compute_features(samples: np.ndarray, cfg: FeatureConfig, name: str = "", warp: float = 1.0) -> np.ndarray:
    """Features of mono float32 audio in [-1, 1].

    Args:
        samples: shape (num_samples,), at ``cfg.sample_rate``.
        name: the utterance or file, for error messages.
        warp: vocal-tract-length warp factor of the mel filters (Kaldi's VTLN
            piecewise-linear warp; 1.0 = none), for VTLP augmentation.

    Returns:
        float32 array of shape (num_frames, cfg.dim).
    """
    if cfg.num_frames(len(samples)) == 0:
        raise AudioError(
            f"{name}: audio too short for one frame ({len(samples)} samples, "
            f"need {cfg.window_samples})"
        )
    wav = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).unsqueeze(0) * INT16_SCALE
    common = dict(
        frame_length=cfg.frame_length_ms,
        frame_shift=cfg.frame_shift_ms,
        sample_frequency=float(cfg.sample_rate),
        num_mel_bins=cfg.num_mel_bins,
        dither=cfg.dither,
        energy_floor=0.0,
        vtln_warp=float(warp),
    )
    with torch.no_grad():
        if cfg.kind == "fbank":
            feats = K.fbank(wav, use_energy=cfg.energy, **common)
        else:
            feats = K.mfcc(wav, num_ceps=cfg.num_ceps, **common)
    feats = feats.numpy().astype(np.float32)  # (T, D)
    if cfg.pitch:
        feats = np.hstack([feats, pitch_features(samples, cfg, len(feats))])
    return feats


def pitch_features(samples: np.ndarray, cfg: FeatureConfig, num_frames: int) -> np.ndarray:
    """Pitch features at the frame centres: (num_frames, PITCH_DIM) float32 of
    [voicing strength, log F0 (Hz), delta log F0].

    F0 comes from Praat's autocorrelation tracker (``to_pitch_ac``, 10 ms steps,
    PITCH_RANGE_HZ); unvoiced frames take log F0 interpolated between their voiced
    neighbours (held at the ends), as Kaldi's pitch features do, so the column has
    no jumps to zero. An utterance with no voiced frame gets log(100 Hz) throughout.
    """
    import parselmouth

    snd = parselmouth.Sound(np.asarray(samples, dtype=np.float64), sampling_frequency=float(cfg.sample_rate))
    try:
        track = snd.to_pitch_ac(time_step=cfg.frame_shift_ms / 1000, pitch_floor=PITCH_RANGE_HZ[0],
                                pitch_ceiling=PITCH_RANGE_HZ[1])
        times = np.asarray(track.xs())
        f0, strength = track.selected_array["frequency"], track.selected_array["strength"]
    except parselmouth.PraatError:  # shorter than the tracker's window (3 periods of the floor): unvoiced
        times = f0 = strength = np.zeros(0)
    centres = cfg.frame_centers(num_frames)
    voiced = f0 > 0
    if voiced.any():
        log_f0 = np.interp(centres, times[voiced], np.log(f0[voiced]))
    else:
        log_f0 = np.full(num_frames, np.log(100.0))
    prob = np.interp(centres, times, np.where(voiced, strength, 0.0)) if len(times) else np.zeros(num_frames)
    delta = np.gradient(log_f0) if num_frames > 1 else np.zeros(num_frames)
    return np.stack([prob, log_f0, delta], axis=1).astype(np.float32)


def features_and_speech(samples: np.ndarray, cfg: FeatureConfig, name: str = "",
                        warp: float = 1.0) -> tuple[np.ndarray, np.ndarray | None]:
    """Features (T, D) of ``samples`` and, when ``cfg.cmvn`` is "speech", the (T,) bool
    mask of the frames Silero VAD calls speech (None otherwise): what training and
    ``asr transcribe`` both take their CMVN statistics from."""
    feats = compute_features(samples, cfg, name, warp)
    if cfg.cmvn != "speech":
        return feats, None
    from asr.features.vad import speech_frames

    return feats, speech_frames(samples, cfg.sample_rate, len(feats), cfg.window_samples, cfg.shift_samples)
