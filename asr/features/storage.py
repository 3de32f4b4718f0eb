"""Features for a whole data dir, stored as Kaldi ark/scp with kaldiio.

``make_features`` writes ``<feat_dir>/raw_<name>.ark`` and ``cmvn_<name>.ark``
and adds ``feats.scp``, ``cmvn.scp`` (per speaker) and ``feats.yaml`` (the
front-end config) to the data dir.
"""

from __future__ import annotations

import logging
from pathlib import Path

import kaldiio
import numpy as np
from tqdm import tqdm

from asr.audio import read_audio
from asr.corpus.datadir import DataDir, read_datadir, read_scp
from asr.errors import AsrError, DataError
from asr.features.cmvn import accumulate_stats, apply_cmvn
from asr.features.extract import FeatureConfig, compute_features
from asr.io import atomic_path

log = logging.getLogger(__name__)


def write_matrices(ark_path: Path, scp_path: Path, mats: dict[str, np.ndarray]) -> None:
    """Write ``mats`` to ``ark_path`` with a matching scp, both atomically.

    The ark is renamed into place before the scp, so a reader never finds an
    scp whose ark is missing or half-written.
    """
    ark_path, scp_path = Path(ark_path).resolve(), Path(scp_path)
    with atomic_path(scp_path) as tmp_scp:
        with atomic_path(ark_path) as tmp_ark:
            kaldiio.save_ark(str(tmp_ark), {k: mats[k] for k in sorted(mats)}, scp=str(tmp_scp))
        # the ark is in place now; point the scp at its final name
        tmp_scp.write_text(tmp_scp.read_text().replace(str(tmp_ark), str(ark_path)))


def feature_config_matches(data_dir: Path, cfg: FeatureConfig) -> bool:
    """True when ``data_dir`` already has features made with ``cfg``."""
    cfg_path = data_dir / "feats.yaml"
    if not (cfg_path.is_file() and (data_dir / "feats.scp").is_file() and (data_dir / "cmvn.scp").is_file()):
        return False
    if FeatureConfig.load(cfg_path) != cfg:
        return False
    # a re-prepared data dir (other utterances) needs new features
    return set(read_scp(data_dir / "feats.scp")) == set(read_scp(data_dir / "utt2spk"))


def extract_datadir(dd: DataDir, cfg: FeatureConfig) -> dict[str, np.ndarray]:
    """Raw features of every utterance of a data dir → {utt: (T, D) float32}.

    Raises:
        AsrError: an audio file is unreadable, empty, too short or not at
            ``cfg.sample_rate`` (the message names the utterance and file).
    """
    feats: dict[str, np.ndarray] = {}
    for utt in tqdm(dd.utts, desc=f"features {dd.path.name}", unit="utt", leave=False, disable=None):
        try:
            audio = read_audio(dd.wav[utt], rate=cfg.sample_rate)
            feats[utt] = compute_features(audio.samples, cfg, name=dd.wav[utt])
        except AsrError as exc:
            raise type(exc)(f"utterance {utt}: {exc}") from None
    return feats


def make_features(data_dir: Path, feat_dir: Path, cfg: FeatureConfig) -> None:
    """Compute features and per-speaker CMVN stats for ``data_dir``.

    Writes ``feat_dir/raw_<name>.ark``, ``feat_dir/cmvn_<name>.ark`` and, in
    the data dir, ``feats.scp``, ``cmvn.scp`` and ``feats.yaml``. Skips the
    work when the data dir already has features made with ``cfg``.
    """
    data_dir, feat_dir = Path(data_dir), Path(feat_dir)
    if feature_config_matches(data_dir, cfg):
        log.info("%s: features exist with the same config, skipping", data_dir)
        return
    name = data_dir.name
    dd = read_datadir(data_dir)
    feats = extract_datadir(dd, cfg)
    stats = {spk: accumulate_stats(feats[u] for u in utts) for spk, utts in dd.spk2utt.items()}
    for stale in ("feats.yaml", "feats.scp", "cmvn.scp"):  # invalid until all are rewritten
        (data_dir / stale).unlink(missing_ok=True)
    write_matrices(feat_dir / f"raw_{name}.ark", data_dir / "feats.scp", feats)
    write_matrices(feat_dir / f"cmvn_{name}.ark", data_dir / "cmvn.scp", stats)
    cfg.save(data_dir / "feats.yaml")
    frames = sum(len(f) for f in feats.values())
    log.info("%s: %d utterances, %d frames of %s features", data_dir, len(feats), frames, cfg.kind)


def load_features(data_dir: Path, norm_vars: bool = True) -> dict[str, np.ndarray]:
    """CMVN-normalised features of ``data_dir`` → {utt: (T, D) float32}."""
    data_dir = Path(data_dir)
    for f in ("feats.scp", "cmvn.scp", "feats.yaml", "utt2spk"):
        if not (data_dir / f).is_file():
            raise DataError(f"{data_dir / f}: missing; run the feature stage first")
    utt2spk = read_scp(data_dir / "utt2spk")
    stats = {spk: _load_mat(data_dir / "cmvn.scp", spk, rx) for spk, rx in read_scp(data_dir / "cmvn.scp").items()}
    out: dict[str, np.ndarray] = {}
    for utt, rx in read_scp(data_dir / "feats.scp").items():
        spk = utt2spk.get(utt)
        if spk not in stats:
            raise DataError(f"{data_dir / 'cmvn.scp'}: no CMVN stats for speaker {spk!r} of utterance {utt}")
        feats = _load_mat(data_dir / "feats.scp", utt, rx)
        try:
            out[utt] = apply_cmvn(feats, stats[spk], norm_vars=norm_vars)
        except ValueError as exc:
            raise DataError(f"{data_dir / 'cmvn.scp'}: utterance {utt}: {exc}") from None
    return out


def _load_mat(scp: Path, key: str, rx: str) -> np.ndarray:
    """Read one matrix of an scp, with an error naming the scp and the key."""
    try:
        return kaldiio.load_mat(rx)
    except Exception as exc:  # kaldiio raises many types on a missing or corrupt ark
        raise DataError(f"{scp}: cannot read {key} from {rx} ({exc})") from None
