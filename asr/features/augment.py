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
the features says. A copy's utterances are computed in a pool of ``num_jobs``
processes (:func:`make_copy`), and a speed copy takes over the features of the
utterances it shares (the same audio file, unchanged) with the same copy of a
sibling data dir (``train`` and the CD stage's ``train_all``). During training
every epoch reads, for each utterance, the original or one of its copies, drawn
uniformly (seeded by the epoch), so an epoch costs the same with or without copies.

``freq_masks`` / ``time_masks`` are SpecAugment (Park et al. 2019), drawn
afresh for every training chunk in the trainer (:func:`spec_augment`):
bands of at most ``freq_width`` channels and stretches of at most
``time_width`` frames set to 0, the normalised features' mean.
"""

from __future__ import annotations

import glob
import json
import logging
import multiprocessing
import os
import random
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import kaldiio
import numpy as np
import torch
import yaml
from tqdm import tqdm

from asr.audio import is_pipe, resample_audio
from asr.corpus.datadir import DataDir, read_datadir, read_utterance_audio, write_scp
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
#: What a copy was made from (each utterance's audio source), for a copy of another data dir to reuse.
SOURCES_JSON = "sources.json"
#: The files of a copy that SOURCES_JSON vouches for (their size and mtime are recorded in it).
COPY_FILES = ("feats.scp", "cmvn.scp", "ark/raw.ark", "ark/cmvn.ark")
#: Fewest utterances to compute for which a process pool of 2 pays: a worker takes 3-5 s to
#: start (imports, the VAD model loaded), an utterance of a speed copy 25-40 ms (measured).
MIN_UTTS_FOR_POOL = 256


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


def _copy_utterance(dd: DataDir, name: str, cfg: FeatureConfig, aug: AugmentConfig, tag: int, i: int,
                    utt: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Features and speech mask of copy ``name`` of the ``i``-th utterance ``utt`` of ``dd``
    (its RNG key [aug.seed, tag, i]); a DataError naming the data dir and utterance."""
    try:
        samples = read_utterance_audio(dd, utt, rate=cfg.sample_rate)
        return _perturbed_features(name, samples, cfg, aug, [aug.seed, tag, i], utt)
    except AsrError as exc:
        raise DataError(f"{dd.path}: utterance {utt}: {exc}") from None


#: A pool worker's (dd, name, cfg, aug, tag), set by _init_copy_worker.
_WORKER: tuple | None = None


def _init_copy_worker(dd: DataDir, name: str, cfg: FeatureConfig, aug: AugmentConfig, tag: int) -> None:
    """A pool worker: one torch thread for its whole life (the workers share the cores,
    and the copy's bytes depend on the thread count: see :func:`_compute_copies`)."""
    global _WORKER
    torch.set_num_threads(1)
    _WORKER = (dd, name, cfg, aug, tag)


def _copy_in_worker(item: tuple[int, str]) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`_copy_utterance` of (i, utt) in a pool worker."""
    dd, name, cfg, aug, tag = _WORKER
    return _copy_utterance(dd, name, cfg, aug, tag, *item)


def _compute_copies(dd: DataDir, name: str, cfg: FeatureConfig, aug: AugmentConfig, tag: int,
                    todo: list[tuple[int, str]], num_jobs: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """[_copy_utterance of each (i, utt) of ``todo``], in order: in this process, or in a
    spawned pool of ``num_jobs`` workers when ``todo`` is long enough to pay for one.

    Always on one torch thread: torchaudio resamples an utterance under ~1.3 s (a speed copy)
    on 2 threads differently, in the last bits, from on 1 (measured: 5 of 192 demo utterances),
    so a copy made on the caller's threads would not be the pool's, nor the same from machine
    to machine. One thread also keeps the serial copy from crawling when other jobs hold the
    cores: 192 utterances took 220 s on 2 threads, 7 s on 1 (2 busy cores).
    """
    bar = dict(total=len(todo), desc=f"copy {name}", unit="utt", leave=False, disable=None)
    if num_jobs <= 1 or len(todo) < MIN_UTTS_FOR_POOL:
        from asr.synth.perturb import one_torch_thread

        with one_torch_thread():
            return [_copy_utterance(dd, name, cfg, aug, tag, i, utt) for i, utt in tqdm(todo, **bar)]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=num_jobs, mp_context=ctx, initializer=_init_copy_worker,
                             initargs=(dd, name, cfg, aug, tag)) as pool:
        try:
            chunk = max(1, min(16, len(todo) // (8 * num_jobs)))
            return list(tqdm(pool.map(_copy_in_worker, todo, chunksize=chunk), **bar))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # an utterance failed: stop the rest
            raise


def _audio_sources(dd: DataDir) -> dict[str, list | None]:
    """Each utterance's audio source, to tell the same audio in another data dir: [real path,
    size, mtime in ns] of its wav.scp file (the stat taken before the audio is read), and its
    segment's [start, end] when ``dd`` has segments; None for a pipe (whose output may change
    with no trace on disk) or a file that cannot be stat'ed."""
    files: dict[str, list | None] = {}
    out = {}
    for utt in dd.utts:
        reco = dd.recording(utt)
        if reco not in files:
            entry, files[reco] = dd.wav[reco], None
            if not is_pipe(entry):
                try:
                    path = os.path.realpath(entry)
                    st = os.stat(path)
                    files[reco] = [path, st.st_size, st.st_mtime_ns]
                except OSError:
                    pass
        key = files[reco]
        if key is not None and dd.segments:
            key = key + [dd.segments[utt].start, dd.segments[utt].end]
        out[utt] = key
    return out


def _file_stats(copy: Path) -> dict[str, list[int]]:
    """Size and mtime (ns) of a copy's COPY_FILES: any rewrite of the copy changes them."""
    return {f: [(copy / f).stat().st_size, (copy / f).stat().st_mtime_ns] for f in COPY_FILES}


def reusable(name: str, cfg: FeatureConfig) -> bool:
    """Whether copy ``name``'s features are a function of each utterance's audio alone, and so
    can be taken from another data dir's copy: speed copies without dither (a VTLP or
    room/noise copy draws from a key holding the utterance's index in its data dir)."""
    return name.startswith("speed") and cfg.dither == 0


def _reuse(out: Path, settings: dict, sources: Mapping[str, list | None], cfg: FeatureConfig
           ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The raw features (and, for ``cmvn: speech``, the CMVN stats) of the utterances of
    ``sources`` whose audio source is that of an utterance of the same copy of a sibling data
    dir (``<parent>/*_aug/<copy>``) that is up to date, was made with the same settings (copy,
    augmentation and front end) and recorded its sources (SOURCES_JSON, written with it:
    its files unchanged since); a copy that cannot be read is passed over."""
    feats: dict[str, np.ndarray] = {}
    stats: dict[str, np.ndarray] = {}
    same = {k: v for k, v in settings.items() if k not in ("source", "utterances")}
    wanted: dict[str, list[str]] = {}  # an audio source (as JSON) → our utterances of it
    for utt, key in sources.items():
        if key is not None:
            wanted.setdefault(json.dumps(key), []).append(utt)
    pattern = str(out.parent.parent / "*_aug" / glob.escape(out.name) / AUGMENT_YAML)
    for marker in sorted(Path(p) for p in glob.glob(pattern)):
        other = marker.parent
        if not wanted or other.resolve() == out.resolve():
            continue
        recorded = _recorded_settings(marker)
        if recorded is None or {k: v for k, v in recorded.items() if k not in ("source", "utterances")} != same:
            continue
        try:
            made = json.loads((other / SOURCES_JSON).read_text())
            if made["files"] != _file_stats(other):
                continue  # rewritten since (by a version that records no sources)
            index: dict[str, str] = {}
            for u, k in made["utterances"].items():
                if k is not None:
                    index.setdefault(json.dumps(k), u)
            found = {k: index[k] for k in wanted if k in index}
            if not found:
                continue
            raw, cmvn = kaldiio.load_scp(str(other / "feats.scp")), kaldiio.load_scp(str(other / "cmvn.scp"))
            got = {k: (np.asarray(raw[u]), np.asarray(cmvn[u]) if cfg.cmvn == "speech" else None)
                   for k, u in found.items()}
            if made["files"] != _file_stats(other) or _recorded_settings(marker) != recorded:
                continue  # rewritten while it was read
        except Exception as exc:  # noqa: BLE001 -- reuse is only a shortcut: compute them instead
            log.warning("%s: not reused (%s: %s)", other, type(exc).__name__, exc)
            continue
        before = len(feats)
        for k, (x, st) in got.items():
            for utt in wanted.pop(k):
                feats[utt] = x
                if st is not None:
                    stats[utt] = st
        log.info("%s: %d utterances taken from %s", out, len(feats) - before, other)
    return feats, stats


def make_copy(train_dir: Path, name: str, aug: AugmentConfig, num_jobs: int = 1) -> Path:
    """Write (or find up to date) the copy ``name`` of ``train_dir`` and return its dir.

    The copy dir holds ``feats.scp``, ``cmvn.scp``, ``feats.yaml``, ``utt2spk``
    (read by :class:`asr.features.storage.FeatureSet`), ``sources.json`` (what each
    utterance's audio was) and ``augment.yaml``.

    The utterances are computed in a spawned pool of ``num_jobs`` processes, one torch
    thread each (in this process when 1, or for fewer than MIN_UTTS_FOR_POOL utterances);
    the copy is the same, byte for byte, for any ``num_jobs``: each utterance keeps its
    RNG key [seed, copy, index], the ark its order. (With ``dither`` in the front end the
    features draw from torch's global RNG, in any process: such a copy is never reproducible.)

    A speed copy (without dither; :func:`reusable`) takes the utterances whose audio is the
    same file (real path, size and mtime; and segment) as one of the same copy of a sibling
    data dir, made with the same settings, from that copy instead of computing them again
    (the CD stage's ``train_all``, a superset of ``train``).
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
    (out / SOURCES_JSON).unlink(missing_ok=True)
    start = time.time()
    sources = _audio_sources(dd)  # before the audio is read: a file changed since then won't match
    feats, reused_stats = _reuse(out, settings, sources, cfg) if reusable(name, cfg) else ({}, {})
    tag = sum(ord(c) for c in name)
    todo = [(i, utt) for i, utt in enumerate(dd.utts) if utt not in feats]
    speech = {}
    for (_, utt), (x, mask) in zip(todo, _compute_copies(dd, name, cfg, aug, tag, todo, num_jobs)):
        feats[utt], speech[utt] = x, mask
    if cfg.cmvn == "speech":  # per utterance: a reused one's stats are its copy's
        stats = {**reused_stats, **cmvn_stats(dd.spk2utt, {u: feats[u] for u in speech}, speech, cfg)}
    else:
        stats = cmvn_stats(dd.spk2utt, feats, speech, cfg)
    out.mkdir(parents=True, exist_ok=True)
    feat_dir = out / "ark"
    write_matrices(feat_dir / "raw.ark", out / "feats.scp", feats)
    write_matrices(feat_dir / "cmvn.ark", out / "cmvn.scp", stats)
    write_scp(out / "utt2spk", {u: dd.utt2spk[u] for u in dd.utts})
    cfg.save(out / "feats.yaml")
    atomic_write_text(out / SOURCES_JSON, json.dumps({"files": _file_stats(out), "utterances": sources}))
    atomic_write_text(out / "seconds", f"{time.time() - start:.1f}\n")  # what making the copy took
    atomic_write_text(marker, yaml.safe_dump(settings, sort_keys=True))
    log.info("%s: %d utterances (%d computed, num_jobs %d), %d frames", out, len(feats), len(todo), num_jobs,
             sum(len(f) for f in feats.values()))
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
