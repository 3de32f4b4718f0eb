"""Features for a whole data dir, stored as Kaldi ark/scp with kaldiio.

``make_features`` writes ``<feat_dir>/raw_<name>.ark`` and ``cmvn_<name>.ark``
and adds ``feats.scp``, ``cmvn.scp`` and ``feats.yaml`` (the front-end
config) to the data dir. ``cmvn.scp`` is keyed by utterance when the config's
``cmvn`` is "speech" (statistics of each utterance's speech frames), by
speaker when it is "speaker".
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path

import kaldiio
import numpy as np
from tqdm import tqdm

from asr.corpus.datadir import DataDir, read_datadir, read_scp, read_utterance_audio
from asr.errors import AsrError, DataError
from asr.features.cmvn import accumulate_stats, apply_cmvn, check_stats, speech_stats
from asr.features.extract import FeatureConfig, features_and_speech
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


def extract_datadir(dd: DataDir, cfg: FeatureConfig) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Raw features and CMVN stats of every utterance of a data dir →
    ({utt: (T, D) float32}, {utt or speaker: (2, D + 1) stats}); see :func:`cmvn_stats`.

    Raises:
        AsrError: an audio file is unreadable, empty, too short or not at
            ``cfg.sample_rate`` (the message names the utterance and file).
    """
    feats: dict[str, np.ndarray] = {}
    speech: dict[str, np.ndarray | None] = {}
    for utt in tqdm(dd.utts, desc=f"features {dd.path.name}", unit="utt", leave=False, disable=None):
        samples = read_utterance_audio(dd, utt, rate=cfg.sample_rate)  # its errors name the utterance
        try:
            feats[utt], speech[utt] = features_and_speech(samples, cfg, name=dd.audio_source(utt))
        except AsrError as exc:
            raise type(exc)(f"utterance {utt}: {exc}") from None
    return feats, cmvn_stats(dd.spk2utt, feats, speech, cfg)


def cmvn_stats(spk2utt: Mapping[str, list[str]], feats: Mapping[str, np.ndarray],
               speech: Mapping[str, np.ndarray | None], cfg: FeatureConfig) -> dict[str, np.ndarray]:
    """CMVN stats as ``cfg.cmvn`` asks: {utt: stats of its speech frames} for "speech"
    (``speech``: {utt: (T,) bool}), {speaker: stats of all its frames} for "speaker"."""
    if cfg.cmvn == "speech":
        return {utt: speech_stats(x, speech[utt]) for utt, x in feats.items()}
    return {spk: accumulate_stats(feats[u] for u in utts) for spk, utts in spk2utt.items()}


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
    feats, stats = extract_datadir(dd, cfg)
    for stale in ("feats.yaml", "feats.scp", "cmvn.scp"):  # invalid until all are rewritten
        (data_dir / stale).unlink(missing_ok=True)
    write_matrices(feat_dir / f"raw_{name}.ark", data_dir / "feats.scp", feats)
    write_matrices(feat_dir / f"cmvn_{name}.ark", data_dir / "cmvn.scp", stats)
    cfg.save(data_dir / "feats.yaml")
    frames = sum(len(f) for f in feats.values())
    log.info("%s: %d utterances, %d frames of %s features", data_dir, len(feats), frames, cfg.kind)


def load_features(data_dir: Path, norm_vars: bool = True) -> FeatureSet:
    """CMVN-normalised features of ``data_dir`` → read-only {utt: (T, D) float32}.

    The result is a lazy :class:`FeatureSet`: each matrix is read from its ark
    and normalised when accessed, so a corpus need not fit in memory. The scp
    files, utt2spk and all CMVN stats (per utterance or per speaker, as
    ``feats.yaml`` says) are read and checked now.

    Raises:
        DataError: a file is missing or malformed, an utterance has no speaker
            or its speaker has no (or unusable) CMVN stats.
    """
    return FeatureSet(data_dir, norm_vars=norm_vars)


class FeatureSet(Mapping[str, np.ndarray]):
    """Lazy, read-only mapping utt → CMVN-normalised (T, D) float32 features.

    Iterates in sorted utterance order. Every access reads the matrix from
    disk again (nothing is cached), so hold on to a value you need twice.
    Accessing an utterance whose ark entry is missing or corrupt, or whose
    dimension does not fit its speaker's stats, raises a DataError naming
    the scp and the utterance.
    """

    def __init__(self, data_dir: Path, norm_vars: bool = True) -> None:
        data_dir = Path(data_dir)
        for f in ("feats.scp", "cmvn.scp", "feats.yaml", "utt2spk"):
            if not (data_dir / f).is_file():
                raise DataError(f"{data_dir / f}: missing; run the feature stage first")
        self.data_dir, self.norm_vars = data_dir, norm_vars
        self._feats_scp, self._cmvn_scp = data_dir / "feats.scp", data_dir / "cmvn.scp"
        per_utt = FeatureConfig.load(data_dir / "feats.yaml").cmvn == "speech"
        # the CMVN stats' key of each utterance: itself, or its speaker
        utt2spk = read_scp(data_dir / "utt2spk")
        if per_utt:
            utt2spk = {u: u for u in utt2spk}
        self._stats: dict[str, np.ndarray] = {}
        for spk, rx in read_scp(self._cmvn_scp).items():
            stats = _load_mat(self._cmvn_scp, spk, rx)
            try:
                check_stats(stats)
            except ValueError as exc:
                raise DataError(f"{self._cmvn_scp}: speaker {spk}: {exc}") from None
            self._stats[spk] = stats
        # utt -> "ark:offset"; read_scp gives file:line errors and rejects
        # duplicate keys (kaldiio.load_scp keeps the last one silently)
        self._rx = read_scp(self._feats_scp)
        self._stats_key: dict[str, str] = {}  # utt -> the key of its CMVN stats
        for utt in self._rx:
            if utt not in utt2spk:
                raise DataError(f"{self._feats_scp}: utterance {utt} is not in {data_dir / 'utt2spk'}")
            if utt2spk[utt] not in self._stats:
                whose = "" if per_utt else f"speaker {utt2spk[utt]!r} of "
                raise DataError(f"{self._cmvn_scp}: no CMVN stats for {whose}utterance {utt}")
            self._stats_key[utt] = utt2spk[utt]
        self._utts = sorted(self._rx)

    def __getitem__(self, utt: str) -> np.ndarray:
        key = self._stats_key[utt]  # KeyError for an unknown utterance, as a dict
        feats = _load_mat(self._feats_scp, utt, self._rx[utt])  # the one read from disk
        try:
            return apply_cmvn(feats, self._stats[key], norm_vars=self.norm_vars)
        except ValueError as exc:
            whose = "" if key == utt else f" (speaker {key})"
            raise DataError(f"{self._cmvn_scp}: utterance {utt}{whose}: {exc}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._utts)

    def __len__(self) -> int:
        return len(self._utts)

    def __contains__(self, utt: object) -> bool:
        return utt in self._stats_key

    def __repr__(self) -> str:
        return f"FeatureSet({str(self.data_dir)!r}, {len(self)} utterances, norm_vars={self.norm_vars})"


def _load_mat(scp: Path, key: str, rx: str) -> np.ndarray:
    """Read one matrix of an scp, with an error naming the scp and the key."""
    try:
        mat = kaldiio.load_mat(rx)
    except Exception as exc:  # kaldiio raises many types on a missing or corrupt ark
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise DataError(f"{scp}: cannot read {key} from {rx}; the ark is missing, truncated "
                        f"or corrupt ({detail})") from None
    if not isinstance(mat, np.ndarray) or mat.ndim != 2:
        raise DataError(f"{scp}: {key} at {rx} is not a matrix")
    return mat
