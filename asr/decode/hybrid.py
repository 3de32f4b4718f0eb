"""Hybrid decoding: network posteriors → scaled likelihoods → WFST search.

A model directory (the bundle ``asr transcribe`` needs) holds:
``model.yaml``, ``final.pt`` (network), ``feats.yaml`` (front end),
``phones.txt`` (phone list), ``log_priors.txt`` (state priors),
``graph/HG.fst`` (decoding graph) and ``decode.yaml`` (the acoustic scale
picked on dev).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from asr.decode.wfst import WfstDecoder
from asr.errors import ModelError
from asr.features.extract import FeatureConfig
from asr.hmm.targets import pdfs_to_phones
from asr.hmm.topology import num_pdfs
from asr.io import atomic_path, atomic_write_text
from asr.lang.graph import load_graph
from asr.nn.model import LstmAcousticModel
from asr.nn.priors import load_log_priors
from asr.nn.train import load_model

log = logging.getLogger(__name__)

#: Longest piece (frames) the network sees at once when computing posteriors.
MAX_CHUNK_FRAMES = 6000
#: Frames of context read on each side of a piece and then dropped.
CHUNK_CONTEXT = 200
#: Default acoustic scale when none was tuned.
DEFAULT_ACWT = 0.2


def read_phone_list(path: Path) -> list[str]:
    """The model's phones, one per line, in pdf order."""
    if not Path(path).is_file():
        raise ModelError(f"{path}: phone list not found")
    phones = Path(path).read_text().split()
    if not phones:
        raise ModelError(f"{path}: phone list is empty")
    return phones


def write_phone_list(path: Path, phones: list[str]) -> None:
    atomic_write_text(path, "\n".join(phones) + "\n")


@torch.no_grad()
def log_posteriors(model: LstmAcousticModel, feats: np.ndarray, device: torch.device) -> np.ndarray:
    """Log state posteriors of one utterance: feats (T, D) → (T, num_pdfs) float32.

    Utterances longer than ``MAX_CHUNK_FRAMES`` are processed in pieces, each
    read with ``CHUNK_CONTEXT`` extra frames on both sides whose outputs are
    dropped, so memory stays bounded and the recurrence sees context.
    """
    pieces = []
    for start in range(0, len(feats), MAX_CHUNK_FRAMES):
        lo, hi = max(0, start - CHUNK_CONTEXT), min(len(feats), start + MAX_CHUNK_FRAMES + CHUNK_CONTEXT)
        x = torch.from_numpy(np.ascontiguousarray(feats[lo:hi])).unsqueeze(0).to(device)
        logits = model(x, torch.tensor([x.shape[1]]))[0]  # (hi - lo, P)
        keep = logits[start - lo : start - lo + MAX_CHUNK_FRAMES]
        pieces.append(torch.log_softmax(keep.float(), dim=-1).cpu().numpy())
    return np.concatenate(pieces)


def scaled_loglikes(log_post: np.ndarray, log_priors: np.ndarray, acwt: float) -> np.ndarray:
    """``acwt * (log p(s|x) - log p(s))``, (T, P) float32, for the decoder."""
    return (acwt * (log_post - log_priors[None, :])).astype(np.float32)


def argmax_phones(log_post: np.ndarray, phones: list[str]) -> list[str]:
    """The framewise-argmax reading (no HMM): best pdf per frame, runs collapsed."""
    return pdfs_to_phones(log_post.argmax(-1), phones, split_on_state_reset=False)


def decode_phones(decoder: WfstDecoder, log_post: np.ndarray, log_priors: np.ndarray,
                  acwt: float, phones: list[str], utt: str = "") -> list[str]:
    """The best phone sequence through the graph for one utterance."""
    result = decoder.decode(scaled_loglikes(log_post, log_priors, acwt), utt=utt)
    return [phones[i - 1] for i in result.phone_ids]


@dataclass
class HybridModel:
    """Everything needed to recognise audio, loaded from one model directory."""

    model_dir: Path
    network: LstmAcousticModel
    feat_cfg: FeatureConfig
    phones: list[str]
    log_priors: np.ndarray
    device: torch.device

    @classmethod
    def load(cls, model_dir: Path, device: torch.device) -> "HybridModel":
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise ModelError(f"{model_dir}: model directory does not exist")
        network = load_model(model_dir, device)
        phones = read_phone_list(model_dir / "phones.txt")
        feat_cfg = FeatureConfig.load(model_dir / "feats.yaml")
        if feat_cfg.dim != network.cfg.input_dim:
            raise ModelError(f"{model_dir}: feats.yaml gives {feat_cfg.dim}-dim features, "
                             f"the network expects {network.cfg.input_dim}")
        if network.cfg.num_pdfs != num_pdfs(len(phones)):
            raise ModelError(f"{model_dir}: network has {network.cfg.num_pdfs} outputs, "
                             f"phones.txt implies {num_pdfs(len(phones))}")
        return cls(model_dir, network, feat_cfg, phones,
                   load_log_priors(model_dir / "log_priors.txt", network.cfg.num_pdfs), device)

    @property
    def graph_path(self) -> Path:
        return self.model_dir / "graph" / "HG.fst"

    def decoder(self, beam: float = 13.0) -> WfstDecoder:
        if not self.graph_path.is_file():
            raise ModelError(f"{self.graph_path}: decoding graph not found (run the decode stage)")
        return WfstDecoder(self.graph_path, num_pdfs=self.network.cfg.num_pdfs, beam=beam)

    @property
    def acwt(self) -> float:
        path = self.model_dir / "decode.yaml"
        if not path.is_file():
            log.warning("%s not found: using the default acoustic scale %.2f", path, DEFAULT_ACWT)
            return DEFAULT_ACWT
        try:
            return float(yaml.safe_load(path.read_text())["acwt"])
        except (yaml.YAMLError, TypeError, KeyError, ValueError) as exc:
            raise ModelError(f"{path}: no valid 'acwt' ({exc!r})") from None

    def posteriors(self, feats: np.ndarray) -> np.ndarray:
        return log_posteriors(self.network, feats, self.device)


def install_graph(model_dir: Path, graph: Path, num_pdfs: int) -> None:
    """Copy a checked decoding graph into the model bundle (atomically)."""
    load_graph(graph)  # raises GraphError on a missing, unreadable or empty graph
    WfstDecoder(graph, num_pdfs=num_pdfs)  # checks its labels against the network
    target = Path(model_dir) / "graph" / "HG.fst"
    with atomic_path(target) as tmp:
        shutil.copyfile(graph, tmp)


def save_acwt(model_dir: Path, acwt: float, dev_per: float, sweep: dict[float, float]) -> None:
    atomic_write_text(Path(model_dir) / "decode.yaml", yaml.safe_dump(
        {"acwt": acwt, "dev_per": dev_per, "sweep": {float(k): float(v) for k, v in sweep.items()}}))
