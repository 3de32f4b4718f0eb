"""Training-data augmentation: perturbed copies of the training set, and SpecAugment masks.

The ``augment:`` section of a training YAML switches each kind on
(:class:`AugmentConfig`). Three kinds make a *copy* of the training data
dir's features, written once and reused by every model trained on that data
(``<train>_aug/<copy>/``, remade when its settings change):

- ``speed``: Kaldi's speed perturbation (sox ``speed``: tempo and pitch
  together), one copy per factor, e.g. 0.9 and 1.1. The copy has
  ``T / factor`` frames; its frame targets are the original's, read at the
  matching time (:func:`warp_targets`).
- ``vtlp``: vocal-tract-length perturbation (Jaitly & Hinton 2013): the mel
  filters warped by a factor drawn per utterance from [1 - vtlp, 1 + vtlp]
  (Kaldi's piecewise-linear VTLN warp, in torchaudio's fbank).
- ``reverb_noise``: the audio convolved with the impulse response of a
  simulated shoebox room (``pyroomacoustics``: size, RT60, source and
  microphone drawn per utterance) and coloured noise added at an SNR drawn
  from ``snr_db`` (``audiomentations.AddColorNoise``).

Each copy's CMVN statistics are taken from its own audio, as the config of
the features says. During training every epoch reads, for each utterance,
the original or one of its copies, drawn uniformly (seeded by the epoch), so
an epoch costs the same with or without copies.

``freq_masks`` / ``time_masks`` are SpecAugment (Park et al. 2019), drawn
afresh for every training chunk in the trainer (:func:`spec_augment`):
bands of at most ``freq_width`` channels and stretches of at most
``time_width`` frames set to 0, the normalised features' mean.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
import yaml
from tqdm import tqdm

from asr.audio import resample_audio
from asr.corpus.datadir import read_datadir, read_utterance_audio, write_scp
from asr.errors import AsrError, DataError
from asr.features.extract import FeatureConfig, features_and_speech
from asr.io import atomic_write_text

log = logging.getLogger(__name__)

#: Ranges of the simulated rooms (metres, seconds).
ROOM_MIN_M, ROOM_MAX_M = (3.0, 3.0, 2.4), (9.0, 7.0, 3.5)
RT60_S = (0.2, 0.7)
WALL_MARGIN_M = 0.5
MAX_IMAGE_ORDER = 40  # image-source order cap (keeps a 0.7 s RT60 tail, ~0.03 s a room)
AUGMENT_YAML = "augment.yaml"


@dataclass(frozen=True)
class AugmentConfig:
    """The ``augment:`` section of a training YAML; every kind off by default."""

    speed: tuple[float, ...] = ()      # speed-perturbed copies, e.g. [0.9, 1.1]
    vtlp: float = 0.0                  # VTLP copy with warps in [1 - vtlp, 1 + vtlp]; 0 = none
    reverb_noise: bool = False         # copy in simulated rooms with coloured noise
    snr_db: tuple[float, float] = (5.0, 25.0)
    freq_masks: int = 0                # SpecAugment bands per chunk
    freq_width: int = 8                # widest band (feature channels)
    time_masks: int = 0                # SpecAugment stretches per chunk
    time_width: int = 20               # longest stretch (frames)
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "speed", tuple(float(s) for s in self.speed))
        object.__setattr__(self, "snr_db", tuple(float(s) for s in self.snr_db))
        if any(not 0.5 <= s <= 2.0 or s == 1.0 for s in self.speed):
            raise ValueError(f"speed factors must lie in [0.5, 2] and not be 1, got {list(self.speed)}")
        if not 0.0 <= self.vtlp < 0.5:
            raise ValueError(f"vtlp must lie in [0, 0.5), got {self.vtlp}")
        if len(self.snr_db) != 2 or self.snr_db[0] > self.snr_db[1]:
            raise ValueError(f"snr_db must be [low, high], got {list(self.snr_db)}")
        if min(self.freq_masks, self.time_masks, self.freq_width, self.time_width) < 0:
            raise ValueError("SpecAugment counts and widths must be >= 0")

    @property
    def copies(self) -> list[str]:
        """Names of the copies of the training data this config asks for."""
        return ([f"speed{s:g}" for s in self.speed] + ([f"vtlp{self.vtlp:g}"] if self.vtlp else [])
                + ([f"reverb_noise{self.snr_db[0]:g}-{self.snr_db[1]:g}"] if self.reverb_noise else []))

    @property
    def masks(self) -> bool:
        return self.freq_masks > 0 or self.time_masks > 0

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping | None) -> "AugmentConfig":
        return cls(**dict(d or {}))


# ---------------------------------------------------------------- waveform perturbations


def speed_perturb(samples: np.ndarray, factor: float) -> np.ndarray:
    """The audio played ``factor`` times faster (tempo and pitch; sox ``speed``): len / factor samples."""
    num = int(round(factor * 1000))
    return resample_audio(samples, num, 1000)


def _room_rir(rng: np.random.Generator, rate: int) -> np.ndarray:
    """Impulse response (K,) of a shoebox room with random size, RT60 and positions."""
    import pyroomacoustics as pra

    dims = rng.uniform(ROOM_MIN_M, ROOM_MAX_M)
    rt60 = rng.uniform(*RT60_S)
    absorption, max_order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=rate, materials=pra.Material(absorption), max_order=min(max_order, MAX_IMAGE_ORDER))
    room.add_source(rng.uniform(WALL_MARGIN_M, dims - WALL_MARGIN_M))
    room.add_microphone(rng.uniform(WALL_MARGIN_M, dims - WALL_MARGIN_M))
    room.compute_rir()
    return np.asarray(room.rir[0][0], dtype=np.float64)


def reverb_noise(samples: np.ndarray, rate: int, snr_db: tuple[float, float], seed: list[int]) -> np.ndarray:
    """``samples`` in a simulated room, plus coloured noise at an SNR drawn from ``snr_db``;
    same length, same peak level. Deterministic in ``seed``."""
    from audiomentations import AddColorNoise
    from scipy.signal import fftconvolve

    rng = np.random.default_rng(seed)
    rir = _room_rir(rng, rate)
    direct = int(np.argmax(np.abs(rir)))  # keep the direct path at the original time
    wet = fftconvolve(samples.astype(np.float64), rir)[direct: direct + len(samples)]
    peak = float(np.max(np.abs(samples))) or 1.0
    wet *= peak / (float(np.max(np.abs(wet))) or 1.0)
    # audiomentations draws from the global RNGs: seed them for this utterance
    random.seed(int(rng.integers(2**31)))
    np.random.seed(int(rng.integers(2**31)))
    noisy = AddColorNoise(min_snr_db=snr_db[0], max_snr_db=snr_db[1], p=1.0)(wet.astype(np.float32), sample_rate=rate)
    return np.clip(noisy, -1.0, 1.0).astype(np.float32)


def warp_targets(targets: np.ndarray, num_frames: int, factor: float, cfg: FeatureConfig) -> np.ndarray:
    """Frame targets (num_frames,) of a copy played ``factor`` times faster: each
    frame takes the target of the original frame whose centre is nearest the
    same moment of the original audio."""
    centres = cfg.frame_centers(num_frames) * factor  # seconds in the original
    win_s, shift_s = cfg.window_samples / cfg.sample_rate, cfg.shift_samples / cfg.sample_rate
    src = np.rint((centres - win_s / 2) / shift_s).astype(np.int64)
    return targets[np.clip(src, 0, len(targets) - 1)]


def copy_factor(name: str) -> float:
    """The speed factor of a copy (1.0 unless it is a speed copy)."""
    return float(name[len("speed"):]) if name.startswith("speed") else 1.0


# ---------------------------------------------------------------- copies on disk


def _perturbed_features(name: str, samples: np.ndarray, cfg: FeatureConfig, aug: AugmentConfig,
                        key: list[int], utt: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Features and speech mask of one utterance's copy ``name``."""
    if name.startswith("speed"):
        return features_and_speech(speed_perturb(samples, copy_factor(name)), cfg, utt)
    if name.startswith("vtlp"):
        warp = np.random.default_rng(key).uniform(1.0 - aug.vtlp, 1.0 + aug.vtlp)
        return features_and_speech(samples, cfg, utt, warp=warp)
    if name.startswith("reverb_noise"):
        return features_and_speech(reverb_noise(samples, cfg.sample_rate, aug.snr_db, key), cfg, utt)
    raise ValueError(f"unknown copy {name!r}")


def copy_settings(name: str, aug: AugmentConfig) -> dict:
    """The settings that shape copy ``name`` (its name holds the speed factor or VTLP range);
    a change to any other setting (SpecAugment, the other copies) leaves the copy valid."""
    return {"seed": aug.seed, **({"snr_db": list(aug.snr_db)} if name.startswith("reverb_noise") else {})}


def copy_dir(train_dir: Path, name: str) -> Path:
    """Where the copy ``name`` of ``train_dir``'s features lives."""
    train_dir = Path(train_dir)
    return train_dir.parent / f"{train_dir.name}_aug" / name


def _recorded_settings(marker: Path) -> dict | None:
    """A copy's recorded settings, its front end read as a FeatureConfig (so that a copy
    made before a front-end setting existed matches that setting's default); None when unreadable."""
    try:
        recorded = yaml.safe_load(marker.read_text())
        recorded["features"] = asdict(FeatureConfig(**recorded["features"]))
        return recorded
    except (yaml.YAMLError, TypeError, KeyError, ValueError):
        return None


def make_copy(train_dir: Path, name: str, aug: AugmentConfig) -> Path:
    """Write (or find up to date) the copy ``name`` of ``train_dir`` and return its dir.

    The copy dir holds ``feats.scp``, ``cmvn.scp``, ``feats.yaml``, ``utt2spk``
    (read by :class:`asr.features.storage.FeatureSet`) and ``augment.yaml``.
    """
    from asr.features.storage import cmvn_stats, write_matrices

    train_dir = Path(train_dir)
    out = copy_dir(train_dir, name)
    cfg = FeatureConfig.load(train_dir / "feats.yaml")
    dd = read_datadir(train_dir)
    settings = {"copy": name, "source": str(train_dir.resolve()), "augment": copy_settings(name, aug),
                "features": asdict(cfg), "utterances": len(dd.utts)}
    marker = out / AUGMENT_YAML
    if marker.is_file() and _recorded_settings(marker) == settings:
        log.info("%s: augmented copy is up to date", out)
        return out
    marker.unlink(missing_ok=True)  # invalid until rewritten last
    start = time.time()
    feats, speech = {}, {}
    tag = sum(ord(c) for c in name)
    for i, utt in enumerate(tqdm(dd.utts, desc=f"copy {name}", unit="utt", leave=False, disable=None)):
        try:
            samples = read_utterance_audio(dd, utt, rate=cfg.sample_rate)
            feats[utt], speech[utt] = _perturbed_features(name, samples, cfg, aug, [aug.seed, tag, i], utt)
        except AsrError as exc:
            raise DataError(f"{train_dir}: utterance {utt}: {exc}") from None
    out.mkdir(parents=True, exist_ok=True)
    feat_dir = out / "ark"
    write_matrices(feat_dir / "raw.ark", out / "feats.scp", feats)
    write_matrices(feat_dir / "cmvn.ark", out / "cmvn.scp", cmvn_stats(dd.spk2utt, feats, speech, cfg))
    write_scp(out / "utt2spk", {u: dd.utt2spk[u] for u in dd.utts})
    cfg.save(out / "feats.yaml")
    atomic_write_text(out / "seconds", f"{time.time() - start:.1f}\n")  # what making the copy took
    atomic_write_text(marker, yaml.safe_dump(settings, sort_keys=True))
    log.info("%s: %d utterances, %d frames", out, len(feats), sum(len(f) for f in feats.values()))
    return out


# ---------------------------------------------------------------- SpecAugment


def spec_augment(feats: torch.Tensor, lengths: torch.Tensor, aug: AugmentConfig) -> torch.Tensor:
    """SpecAugment masks on a padded batch: (N, T, D) → (N, T, D), masked cells 0.

    Each sequence gets ``freq_masks`` bands of width U{0..freq_width} and
    ``time_masks`` stretches of width U{0..time_width} inside its ``lengths``
    frames (N,); drawn from torch's global RNG (checkpointed by the trainer).
    """
    n, t, d = feats.shape
    dev = feats.device
    keep = torch.ones(n, t, d, dtype=torch.bool, device=dev)
    if aug.freq_masks:
        width = torch.randint(0, aug.freq_width + 1, (n, aug.freq_masks), device=dev)
        start = (torch.rand(n, aug.freq_masks, device=dev) * (d - width + 1)).long()
        chan = torch.arange(d, device=dev).view(1, 1, d)
        hit = (chan >= start[..., None]) & (chan < (start + width)[..., None])  # (N, M, D)
        keep &= ~hit.any(1)[:, None, :]
    if aug.time_masks:
        lens = lengths.to(dev).view(n, 1)
        width = torch.minimum(torch.randint(0, aug.time_width + 1, (n, aug.time_masks), device=dev), lens)
        start = (torch.rand(n, aug.time_masks, device=dev) * (lens - width + 1)).long()
        frame = torch.arange(t, device=dev).view(1, 1, t)
        hit = (frame >= start[..., None]) & (frame < (start + width)[..., None])  # (N, M, T)
        keep &= ~hit.any(1)[:, :, None]
    return feats * keep
