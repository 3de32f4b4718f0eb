"""A recurrent model of phone sequences (Boulanger-Lewandowski, Droppo, Seltzer & Yu,
2014): embedding → LSTM → softmax over the phones and the end of the utterance.

Tokens: phone i of the model's phone list (0-based) is token i + 1, its id in
``phones.txt``; token 0 is the utterance boundary, read as input before the
first phone (``<s>``) and predicted as output after the last (``</s>``). So the
model gives ``log P(next | phones so far)`` over P + 1 outcomes, the quantity an
n-gram over the same phones gives, and perplexities compare directly
(:func:`perplexity`: per predicted token, ``</s>`` included, as SRILM counts).

Training (:func:`train_phone_lm`): whole utterances in padded batches, Adam,
gradient clipping, newbob halving on the dev loss (:class:`asr.nn.train.Newbob`),
the best dev epoch kept as ``phone_lm.pt``; a checkpoint after every epoch
(``phone_lm.ckpt.pt``) lets an interrupted run resume to the same weights.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import yaml
from torch import nn

from asr.errors import DataError, ModelError
from asr.io import atomic_path, atomic_write_text, load_yaml_config

log = logging.getLogger(__name__)

#: Token of the utterance boundary: ``<s>`` as input, ``</s>`` as output.
BOUNDARY = 0
CONFIG_FILE, WEIGHTS_FILE, CHECKPOINT_FILE, HISTORY_FILE = ("phone_lm.yaml", "phone_lm.pt", "phone_lm.ckpt.pt",
                                                            "phone_lm_history.yaml")

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (layers, N, hidden)


@dataclass(frozen=True)
class PhoneLmConfig:
    """Shape and training of a phone LM; saved beside it as ``phone_lm.yaml`` (with ``phones``)."""

    phones: tuple[str, ...] = ()
    embed: int = 64
    hidden: int = 256
    num_layers: int = 2
    dropout: float = 0.3
    epochs: int = 40
    lr: float = 2e-3
    lr_decay: float = 0.5
    min_improvement: float = 0.002  # relative dev-loss improvement that counts as progress
    min_lr: float = 1e-4            # stop once the lr has decayed below this
    batch_utterances: int = 32
    grad_clip: float = 5.0
    seed: int = 0
    extra_text: str = ""            # word sentences expanded through ``lexicon`` into more training
    lexicon: str = ""               # sequences (asr.steps.train_phone_lm.expanded_sentences)

    def __post_init__(self) -> None:
        object.__setattr__(self, "phones", tuple(self.phones))
        for name in ("embed", "hidden", "num_layers", "epochs", "batch_utterances"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def vocab(self) -> int:
        """Outcomes: the phones and the boundary."""
        return len(self.phones) + 1

    def save(self, path: Path) -> None:
        d = asdict(self)
        d["phones"] = list(self.phones)
        atomic_write_text(path, yaml.safe_dump(d, sort_keys=True))

    @classmethod
    def load(cls, path: Path) -> "PhoneLmConfig":
        return load_yaml_config(cls, path, "phone LM config")


class PhoneLm(nn.Module):
    """tokens (N, T) int64 → logits (N, T, P + 1) of the token that follows each."""

    def __init__(self, cfg: PhoneLmConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.embed)
        self.lstm = nn.LSTM(cfg.embed, cfg.hidden, cfg.num_layers, batch_first=True,
                            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.hidden, cfg.vocab)

    def forward(self, tokens: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """tokens (N, T) → (logits (N, T, P + 1), state after the last token). Padding
        positions come after every real token, so they change no real position's output."""
        h, state = self.lstm(self.drop(self.embed(tokens)), state)
        return self.out(self.drop(h)), state

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """One token per sequence, in eval mode: tokens (N,), state ((L, N, H) × 2 or None: the
        start) → (log P(next token) (N, P + 1) float32, the new state). The cell is written out
        (the gate order of ``nn.LSTM``): one step through ``nn.LSTM`` costs about a millisecond of
        call overhead on the CPU, and the decoder takes thousands per utterance."""
        x = self.embed(tokens)  # (N, E)
        if state is None:
            zeros = x.new_zeros(self.cfg.num_layers, len(tokens), self.cfg.hidden)
            state = (zeros, zeros)
        hs, cs = [], []
        for k in range(self.cfg.num_layers):
            gates = torch.addmm(getattr(self.lstm, f"bias_ih_l{k}") + getattr(self.lstm, f"bias_hh_l{k}"), x,
                                getattr(self.lstm, f"weight_ih_l{k}").t())
            gates = gates.addmm_(state[0][k], getattr(self.lstm, f"weight_hh_l{k}").t())
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * state[1][k] + torch.sigmoid(i) * torch.tanh(g)
            x = torch.sigmoid(o) * torch.tanh(c)
            hs.append(x)
            cs.append(c)
        return torch.log_softmax(self.out(x).float(), dim=-1), (torch.stack(hs), torch.stack(cs))


def encode(phones: Sequence[str], sentence: Sequence[str], where: str) -> np.ndarray:
    """The tokens of a phone sequence (ids of ``phones``, 1-based); DataError naming
    ``where`` and the phone when one is not in the list."""
    index = {p: i + 1 for i, p in enumerate(phones)}
    try:
        return np.array([index[p] for p in sentence], dtype=np.int64)
    except KeyError as exc:
        raise DataError(f"{where}: phone {exc.args[0]!r} is not one of the model's {len(phones)} phones") from None


def _batch(sentences: Sequence[np.ndarray], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (<s> + phones) and targets (phones + </s>), (N, T + 1) each, targets -100 on padding."""
    width = max(len(s) for s in sentences) + 1
    inputs = torch.zeros(len(sentences), width, dtype=torch.int64)
    targets = torch.full((len(sentences), width), -100, dtype=torch.int64)
    for i, s in enumerate(sentences):
        inputs[i, 1: len(s) + 1] = torch.from_numpy(s)
        targets[i, : len(s)] = torch.from_numpy(s)
        targets[i, len(s)] = BOUNDARY
    return inputs.to(device), targets.to(device)


def _loss_sum(model: PhoneLm, sentences: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    inputs, targets = _batch(sentences, device)
    logits, _ = model(inputs)
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                                       ignore_index=-100, reduction="sum")


@torch.no_grad()
def log_likelihood(model: PhoneLm, sentences: Sequence[np.ndarray], device: torch.device,
                   batch: int = 256) -> tuple[float, int]:
    """(Σ ln P of every token and ``</s>``, number of them) over ``sentences``."""
    model.eval()
    total, count = 0.0, 0
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    for a in range(0, len(order), batch):
        group = [sentences[i] for i in order[a: a + batch]]
        total -= float(_loss_sum(model, group, device))
        count += sum(len(s) + 1 for s in group)
    return total, count


@torch.no_grad()
def sentence_logprobs(model: PhoneLm, sentences: Sequence[Sequence[int]], device: torch.device,
                      batch: int = 256) -> np.ndarray:
    """(len(sentences),) float64: ln P of each token sequence (phone ids), ``</s>`` included."""
    model.eval()
    out = np.zeros(len(sentences))
    seqs = [np.asarray(s, dtype=np.int64) for s in sentences]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    for a in range(0, len(order), batch):
        idx = order[a: a + batch]
        inputs, targets = _batch([seqs[i] for i in idx], device)
        logits, _ = model(inputs)
        logp = torch.log_softmax(logits.float(), dim=-1)
        picked = logp.gather(-1, targets.clamp(min=0)[..., None])[..., 0] * (targets >= 0)
        out[idx] = picked.sum(-1).double().cpu().numpy()
    return out


def perplexity(model: PhoneLm, sentences: Sequence[np.ndarray], device: torch.device) -> float:
    """exp(−mean ln P) per predicted token (the phones and ``</s>``)."""
    total, count = log_likelihood(model, sentences, device)
    return math.exp(-total / count)


def _epoch(model: PhoneLm, optimizer: torch.optim.Optimizer, sentences: list[np.ndarray], cfg: PhoneLmConfig,
           epoch: int, device: torch.device) -> float:
    """One pass in an order drawn from (seed, epoch); mean loss per token."""
    model.train()
    order = np.random.default_rng([cfg.seed, epoch]).permutation(len(sentences))
    total, count = 0.0, 0
    for a in range(0, len(order), cfg.batch_utterances):
        group = [sentences[i] for i in order[a: a + cfg.batch_utterances]]
        tokens = sum(len(s) + 1 for s in group)
        loss = _loss_sum(model, group, device)
        optimizer.zero_grad(set_to_none=True)
        (loss / tokens).backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        total, count = total + float(loss.detach()), count + tokens
    return total / count


def _resume(path: Path, model: PhoneLm, optimizer: torch.optim.Optimizer, scheduler) -> dict | None:
    """The state of the epoch checkpoint at ``path`` loaded into the objects; None when there is none
    or it is damaged (a warning names it: training starts afresh)."""
    if not path.is_file():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["torch_rng"])
        state = dict(ckpt["state"])
    except Exception as exc:  # noqa: BLE001 - a damaged pickle raises many kinds
        log.warning("%s: damaged checkpoint (%s: %s); training from the start", path, type(exc).__name__, exc)
        return None
    log.info("resuming the phone LM after epoch %d", state["epoch"])
    return state


def train_phone_lm(out_dir: Path, train: list[np.ndarray], dev: list[np.ndarray], cfg: PhoneLmConfig,
                   device: torch.device) -> dict:
    """Train (or resume, or find finished) a phone LM in ``out_dir`` on token sequences
    (:func:`encode`); return its state: epoch, history (per epoch: train and dev loss per
    token, dev perplexity, lr), best dev loss. Writes ``phone_lm.yaml``, ``phone_lm.pt`` (the
    best dev epoch), ``phone_lm.ckpt.pt`` and ``phone_lm_history.yaml``."""
    from asr.nn.train import Newbob

    if not train or not dev:
        raise DataError(f"{out_dir}: the phone LM needs training and dev utterances "
                        f"(got {len(train)} and {len(dev)})")
    out_dir.mkdir(parents=True, exist_ok=True)
    old = out_dir / CONFIG_FILE
    if old.is_file() and PhoneLmConfig.load(old) != cfg:
        raise ModelError(f"{old}: {out_dir} holds a phone LM trained with another config; "
                         f"use a new dir or delete it")
    cfg.save(old)
    torch.manual_seed(cfg.seed)
    model = PhoneLm(cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = Newbob(optimizer, cfg.lr_decay, cfg.min_improvement)
    state = _resume(out_dir / CHECKPOINT_FILE, model, optimizer, scheduler) or \
        {"epoch": 0, "history": [], "best_loss": float("inf")}
    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        if lr < cfg.min_lr:
            break
        train_loss = _epoch(model, optimizer, train, cfg, epoch, device)
        dev_ll, dev_count = log_likelihood(model, dev, device)
        dev_loss = -dev_ll / dev_count
        if not math.isfinite(train_loss + dev_loss):
            raise ModelError(f"{out_dir}: phone LM epoch {epoch} diverged; lower the learning rate")
        state["history"].append({"epoch": epoch, "lr": lr, "train_loss": train_loss, "dev_loss": dev_loss,
                                 "dev_ppl": math.exp(dev_loss)})
        log.info("phone LM epoch %d: train %.3f, dev %.3f (ppl %.2f), lr %.2g", epoch, train_loss, dev_loss,
                 math.exp(dev_loss), lr)
        scheduler.step(dev_loss)
        if dev_loss < state["best_loss"]:
            state["best_loss"] = dev_loss
            with atomic_path(out_dir / WEIGHTS_FILE) as tmp:
                torch.save({"model": model.state_dict(), "epoch": epoch}, tmp)
        state["epoch"] = epoch
        with atomic_path(out_dir / CHECKPOINT_FILE) as tmp:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                        "state": state}, tmp)
    atomic_write_text(out_dir / HISTORY_FILE, yaml.safe_dump(state["history"], sort_keys=False))
    return state


def load_phone_lm(model_dir: Path, device: torch.device, phones: Sequence[str] | None = None) -> PhoneLm:
    """The phone LM of ``model_dir`` in eval mode; ModelError when it is missing, does not load,
    or (``phones`` given) models other phones."""
    cfg_path, weights = model_dir / CONFIG_FILE, model_dir / WEIGHTS_FILE
    if not (cfg_path.is_file() and weights.is_file()):
        raise ModelError(f"{model_dir}: no phone LM ({CONFIG_FILE} and {WEIGHTS_FILE}); "
                         f"train one with 'asr train-phone-lm'")
    cfg = PhoneLmConfig.load(cfg_path)
    if phones is not None and list(cfg.phones) != list(phones):
        raise ModelError(f"{cfg_path}: the phone LM's {len(cfg.phones)} phones differ from the "
                         f"acoustic model's {len(phones)}")
    from asr.nn.model import load_weights

    return load_weights(PhoneLm(cfg), weights, device, "the phone LM")
