"""Acoustic models: LSTM, LSTMP (Sak et al. 2014), BLSTM, and a DNN on spliced frames.

Every network maps (N, T, D) inputs and their lengths to (N, T, num_pdfs)
logits (``forward``) and to its last hidden layer (``encode``). An input row is
one feature frame, or ``frame_subsampling`` of them stacked
(:class:`asr.features.frame_rate.FrameRate`): a lower frame rate model, T its
output frames. LSTMP is
``nn.LSTM(proj_size=P)``: a recurrent projection after each layer. A
unidirectional model may delay its outputs by ``output_delay`` frames (the
target of frame t is predicted at frame t + delay) to see a little future.
The DNN (``kind: dnn``) reads each frame with ``context`` frames either side
(the edge frame repeated past a sequence's ends, as Kaldi splices).
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import yaml
from torch import nn

from asr.errors import ModelError
from asr.features.frame_rate import FrameRate
from asr.io import atomic_write_text, dataclass_defaults, load_yaml_config


#: The network kinds; model.yaml files written before ``kind`` existed read as lstm.
MODEL_KINDS = ("lstm", "dnn")


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
    kind: str = "lstm"         # lstm: the (B)LSTM(P) above; dnn: ReLU layers of ``hidden`` units
    context: int = 0           # dnn: frames spliced on each side of the frame
    peephole: bool = False     # lstm: peephole connections (asr.nn.peephole; cuDNN has none)
    frame_subsampling: int = 1  # feature frames per output frame, stacked into one input row

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"kind {self.kind!r}: choose one of {list(MODEL_KINDS)}")
        if self.kind == "dnn" and (self.proj or self.output_delay):
            raise ValueError("proj and output_delay are LSTM settings; a dnn has neither")
        if self.context < 0 or (self.context and self.kind != "dnn"):
            raise ValueError(f"context ({self.context}) is the dnn's frames of context each side, at least 0")
        if self.peephole and self.kind != "lstm":
            raise ValueError("peephole is an LSTM setting")
        if self.proj and self.proj >= self.hidden:
            raise ValueError(f"proj ({self.proj}) must be smaller than hidden ({self.hidden})")
        if self.output_delay and self.bidirectional:
            raise ValueError("output_delay only makes sense for a unidirectional model")
        FrameRate(factor=self.frame_subsampling)  # a whole number >= 1

    @property
    def input_width(self) -> int:
        """Columns of one input row: ``frame_subsampling`` stacked feature frames."""
        return self.input_dim * self.frame_subsampling

    def save(self, path: Path) -> None:
        atomic_write_text(path, yaml.safe_dump(asdict(self), sort_keys=True))

    @classmethod
    def defaults(cls) -> dict:
        """Each setting's default: how a model.yaml written before the setting existed
        reads it (as ``load`` reads it)."""
        return dataclass_defaults(cls)

    @classmethod
    def load(cls, path: Path) -> "ModelConfig":
        return load_yaml_config(cls, path, "model config")


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of a padded batch within its own length.

    x (N, T, D), lengths (N,) → (N, T, D); padding frames stay at the end.
    Applying it twice gives ``x`` back.
    """
    t = torch.arange(x.shape[1], device=x.device)[None, :]  # (1, T)
    lens = lengths.to(x.device)[:, None]  # (N, 1)
    idx = torch.where(t < lens, lens - 1 - t, t)  # (N, T)
    return x.gather(1, idx[:, :, None].expand_as(x))


class LstmAcousticModel(nn.Module):
    """Stacked (B)LSTM(P) with a linear pdf classifier on top.

    Each layer and direction is its own ``nn.LSTM`` run on the padded batch;
    the backward direction reads each sequence reversed within its length.
    This is exact without packed sequences, which PyTorch's CPU kernels run
    several times slower when the lengths in a batch differ.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        directions = 2 if cfg.bidirectional else 1
        layer_out = cfg.proj or cfg.hidden
        self.layers = nn.ModuleList()
        for i in range(cfg.num_layers):
            in_dim = cfg.input_width if i == 0 else layer_out * directions
            self.layers.append(nn.ModuleList(_lstm_layer(cfg, in_dim) for _ in range(directions)))
        self.dropout = nn.Dropout(cfg.dropout)
        self.output = nn.Linear(layer_out * directions, cfg.num_pdfs)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """feats (N, T, D), lengths (N,) → logits (N, T, num_pdfs)."""
        return self.output(self.dropout(self.encode(feats, lengths)))

    def encode(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """feats (N, T, D), lengths (N,) → the last LSTM layer's outputs (N, T, H · directions).

        Outputs at padding frames are meaningless. With ``output_delay`` d,
        the logits at frame t are for the target of frame t; the network has
        read frames up to t + d (the input is extended with d zero frames,
        the CMVN mean).
        """
        d = self.cfg.output_delay
        if d:  # zero the padding too, so a delayed frame reads zeros past its own end
            valid = torch.arange(feats.shape[1], device=feats.device)[None, :] < lengths.to(feats.device)[:, None]
            feats = nn.functional.pad(feats * valid[:, :, None], (0, 0, 0, d))
        x = feats  # (N, T + d, D)
        for i, directions in enumerate(self.layers):
            if i > 0:
                x = self.dropout(x)
            outs = [directions[0](x)[0]]
            if len(directions) == 2:
                outs.append(reverse_padded(directions[1](reverse_padded(x, lengths))[0], lengths))
            x = torch.cat(outs, dim=-1)  # (N, T + d, H * directions)
        if d:
            x = x[:, d:]
        return x

    def forward_stream(self, feats: torch.Tensor, state: list[State] | None = None
                       ) -> tuple[torch.Tensor, list[State]]:
        """One piece of a stream (truncated BPTT; unidirectional models only).

        feats (N, T, D) and each layer's (h (1, N, proj or hidden), c (1, N, hidden))
        after the previous piece (None: zeros) → logits (N, T, num_pdfs) and each
        layer's state after frame T. Pieces run one after another with the state
        carried give the outputs of the whole sequence run at once. No output delay
        is applied here: a delayed model's targets are shifted instead
        (:class:`asr.nn.data.PieceDataset`).
        """
        if self.cfg.bidirectional:
            raise ValueError("a bidirectional model cannot be run as a stream")
        x, new_state = feats, []
        for i, (layer,) in enumerate(self.layers):
            if i > 0:
                x = self.dropout(x)
            x, layer_state = layer(x, None if state is None else state[i])
            new_state.append(layer_state)
        return self.output(self.dropout(x)), new_state


#: One LSTM layer's recurrent state: h (1, N, proj or hidden), c (1, N, hidden).
State = tuple[torch.Tensor, torch.Tensor]


def _lstm_layer(cfg: ModelConfig, in_dim: int) -> nn.Module:
    """One layer and direction: cuDNN's / PyTorch's nn.LSTM, or the peephole LSTM."""
    if cfg.peephole:
        from asr.nn.peephole import PeepholeLSTM

        return PeepholeLSTM(in_dim, cfg.hidden, proj_size=cfg.proj)
    return nn.LSTM(in_dim, cfg.hidden, proj_size=cfg.proj, batch_first=True)


def compile_network(net: nn.Module) -> nn.Module:
    """``torch.compile(net)``; the peephole layers' time loops stay eager (a compiled loop
    would be a new graph for every length) and compile their per-step cell instead."""
    from asr.nn.peephole import PeepholeLSTM

    for module in net.modules():
        if isinstance(module, PeepholeLSTM):
            module.compiled = True
    return torch.compile(net)


class StreamingModel(nn.Module):
    """A unidirectional LSTM model whose ``forward`` is ``forward_stream`` (what a
    DistributedDataParallel or compiled wrapper calls)."""

    def __init__(self, model: LstmAcousticModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, feats: torch.Tensor, state: list[State] | None) -> tuple[torch.Tensor, list[State]]:
        return self.model.forward_stream(feats, state)


def splice(feats: torch.Tensor, lengths: torch.Tensor, context: int) -> torch.Tensor:
    """Each frame with ``context`` frames either side, the first and last frame of each
    sequence repeated past its ends. feats (N, T, D), lengths (N,) → (N, T, (2·context + 1)·D),
    the frames in time order (t − context first)."""
    n, t, d = feats.shape
    if context == 0:
        return feats
    offsets = torch.arange(-context, context + 1, device=feats.device)
    last = (lengths.to(feats.device) - 1).clamp(min=0)[:, None, None]  # (N, 1, 1)
    idx = (torch.arange(t, device=feats.device)[None, :, None] + offsets[None, None, :]).clamp(min=0)
    idx = torch.minimum(idx, last)  # (N, T, 2c + 1)
    width = offsets.numel()
    out = feats.gather(1, idx.reshape(n, t * width, 1).expand(n, t * width, d))
    return out.reshape(n, t, width * d)


class DnnAcousticModel(nn.Module):
    """Feed-forward network on spliced frames: ``num_layers`` ReLU layers of ``hidden``
    units (dropout after each) and a linear pdf classifier on top."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        in_dim = cfg.input_width * (2 * cfg.context + 1)
        for i in range(cfg.num_layers):
            layers += [nn.Linear(in_dim if i == 0 else cfg.hidden, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout)]
        self.hidden_layers = nn.Sequential(*layers)
        self.output = nn.Linear(cfg.hidden, cfg.num_pdfs)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """feats (N, T, D), lengths (N,) → logits (N, T, num_pdfs)."""
        return self.output(self.encode(feats, lengths))

    def encode(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """feats (N, T, D), lengths (N,) → the last hidden layer's outputs (N, T, hidden)."""
        return self.hidden_layers(splice(feats, lengths, self.cfg.context))


AcousticModel = LstmAcousticModel | DnnAcousticModel


def build_model(cfg: ModelConfig) -> AcousticModel:
    """The network of ``cfg.kind``."""
    return DnnAcousticModel(cfg) if cfg.kind == "dnn" else LstmAcousticModel(cfg)


def load_weights(net: nn.Module, weights: Path, device: torch.device, what: str) -> nn.Module:
    """``net`` with the state dict of ``weights`` (a checkpoint's ``model``), on ``device``, in eval
    mode; ModelError naming the file and ``what`` was loaded when it does not fit or cannot be read."""
    try:
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True)["model"])
    except (RuntimeError, KeyError, EOFError, OSError, ValueError, TypeError, pickle.UnpicklingError) as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise ModelError(f"{weights}: cannot load {what} ({type(exc).__name__}: {first_line})") from None
    return net.to(device).eval()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
