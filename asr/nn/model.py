"""Stacked LSTM acoustic models: LSTM, LSTMP (Sak et al. 2014) and BLSTM.

The network maps (N, T, D) features to (N, T, num_pdfs) logits. LSTMP is
``nn.LSTM(proj_size=P)``: a recurrent projection after each layer. A
unidirectional model may delay its outputs by ``output_delay`` frames (the
target of frame t is predicted at frame t + delay) to see a little future.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import yaml
from torch import nn

from asr.errors import ModelError
from asr.io import atomic_write_text


@dataclass(frozen=True)
class ModelConfig:
    """Network shape; saved with the model as ``model.yaml``."""

    input_dim: int
    num_pdfs: int
    num_layers: int = 3
    hidden: int = 256          # cells per direction
    proj: int = 0              # LSTMP projection size; 0 = plain LSTM
    bidirectional: bool = True
    dropout: float = 0.1
    output_delay: int = 0      # frames; unidirectional models only

    def __post_init__(self) -> None:
        if self.proj and self.proj >= self.hidden:
            raise ValueError(f"proj ({self.proj}) must be smaller than hidden ({self.hidden})")
        if self.output_delay and self.bidirectional:
            raise ValueError("output_delay only makes sense for a unidirectional model")

    def save(self, path: Path) -> None:
        atomic_write_text(path, yaml.safe_dump(asdict(self), sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> "ModelConfig":
        if not Path(path).is_file():
            raise ModelError(f"{path}: model config not found")
        return cls(**yaml.safe_load(Path(path).read_text()))


class LstmAcousticModel(nn.Module):
    """Stacked (B)LSTM(P) with a linear pdf classifier on top."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.lstm = nn.LSTM(
            input_size=cfg.input_dim,
            hidden_size=cfg.hidden,
            num_layers=cfg.num_layers,
            proj_size=cfg.proj,
            bidirectional=cfg.bidirectional,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
            batch_first=True,
        )
        out_dim = (cfg.proj or cfg.hidden) * (2 if cfg.bidirectional else 1)
        self.dropout = nn.Dropout(cfg.dropout)
        self.output = nn.Linear(out_dim, cfg.num_pdfs)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """feats (N, T, D), lengths (N,) on CPU → logits (N, T, num_pdfs).

        With ``output_delay`` d, the logits at frame t are for the target of
        frame t; the network has read frames up to t + d (the input is
        extended with d zero frames, the CMVN mean).
        """
        d = self.cfg.output_delay
        if d:
            feats = nn.functional.pad(feats, (0, 0, 0, d))
            lengths = lengths + d
        packed = nn.utils.rnn.pack_padded_sequence(feats, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)  # (N, T + d, H)
        if d:
            out = out[:, d:]
        return self.output(self.dropout(out))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
