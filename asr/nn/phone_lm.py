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
the best dev epoch kept as ``phone_lm.pt``. After every epoch a checkpoint
(``phone_lm_ckpt/epoch-N.pt``: model, optimizer, scheduler, RNG states, epoch, best
dev loss, history; written atomically, the last two kept) lets a killed run resume
to the weights of an uninterrupted one. The checkpoint policy is the acoustic
trainer's (:mod:`asr.nn.train`): a damaged newest checkpoint is named in a warning
and the one before is used; when checkpoints exist but none can be read the run
stops with a ModelError. A run that starts without a checkpoint beside a finished
``phone_lm.pt`` counts that model's dev loss as the best so far, so it is replaced
only by a better one.
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
from asr.io import atomic_write_text, load_yaml_config
from asr.nn.checkpoint import load_checkpoint, remove_old_checkpoints, rng_state, save_checkpoint, set_rng_state

log = logging.getLogger(__name__)

#: Token of the utterance boundary: ``<s>`` as input, ``</s>`` as output.
BOUNDARY = 0
CONFIG_FILE, WEIGHTS_FILE, HISTORY_FILE = "phone_lm.yaml", "phone_lm.pt", "phone_lm_history.yaml"
#: The epoch checkpoints' dir (``epoch-N.pt``, as the acoustic trainer names them).
CHECKPOINT_DIR = "phone_lm_ckpt"

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


def _finished_loss(out_dir: Path, cfg: PhoneLmConfig, dev: list[np.ndarray], device: torch.device) -> float:
    """Dev loss per token of the finished ``phone_lm.pt`` of ``out_dir``; inf when there is none,
    or when it cannot be read (a warning names it: it will be replaced)."""
    path = out_dir / WEIGHTS_FILE
    if not path.is_file():
        return float("inf")
    with torch.random.fork_rng(devices=[]):  # the training RNG stream stays as seeded
        model = PhoneLm(cfg)
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
    except Exception as exc:  # noqa: BLE001 - a damaged pickle raises many kinds
        first_line = (str(exc).splitlines() or [""])[0]
        log.warning("%s: damaged phone LM (%s: %s); the next epoch replaces it", path, type(exc).__name__,
                    first_line)
        return float("inf")
    dev_ll, dev_count = log_likelihood(model.to(device), dev, device)
    log.info("%s: finished phone LM, dev loss %.4f; only a better one replaces it", path, -dev_ll / dev_count)
    return -dev_ll / dev_count


def _checkpoint(model: PhoneLm, optimizer: torch.optim.Optimizer, scheduler, state: dict) -> dict:
    """An epoch checkpoint, in the acoustic trainer's layout (:func:`asr.nn.checkpoint.read_checkpoint`
    reads it): model, optimizer, scheduler, the CPU and CUDA RNG states, the training state."""
    rng = rng_state()
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "torch_rng": rng["torch"], "cuda_rng": rng["cuda"], "state": state}


def _resume(out_dir: Path, model: PhoneLm, optimizer: torch.optim.Optimizer, scheduler) -> dict | None:
    """The training state of the newest readable epoch checkpoint of ``out_dir``, loaded into
    the objects and the RNGs; None when there is no checkpoint. A damaged one is named in a
    warning and the one before it is used; ModelError when there are checkpoints but none can
    be read (:func:`asr.nn.checkpoint.load_checkpoint`) or the one read does not fit the model."""
    found = load_checkpoint(out_dir / CHECKPOINT_DIR)
    if found is None:
        return None
    path, ckpt = found
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"{path}: checkpoint does not fit the phone LM of {CONFIG_FILE} ({exc}); "
                         f"remove {path.parent} to train from scratch") from None
    set_rng_state({"torch": ckpt["torch_rng"], "cuda": ckpt.get("cuda_rng")})
    state = ckpt["state"]
    log.info("resuming the phone LM after epoch %d (%s)", state["epoch"], path)
    return state


def _end_epoch(out_dir: Path, model: PhoneLm, optimizer: torch.optim.Optimizer, scheduler, state: dict,
               dev_loss: float) -> None:
    """After epoch ``state["epoch"]``: ``phone_lm.pt`` when ``dev_loss`` is the best so far, then
    the epoch checkpoint (older ones but the one before removed) and the history, all atomic."""
    epoch = state["epoch"]
    if dev_loss < state["best_loss"]:
        state["best_loss"] = dev_loss
        save_checkpoint(out_dir / WEIGHTS_FILE, {"model": model.state_dict(), "epoch": epoch,
                                                  "dev_loss": dev_loss})
    ckpt_dir = out_dir / CHECKPOINT_DIR
    save_checkpoint(ckpt_dir / f"epoch-{epoch}.pt", _checkpoint(model, optimizer, scheduler, state))
    remove_old_checkpoints(ckpt_dir, epoch)
    atomic_write_text(out_dir / HISTORY_FILE, yaml.safe_dump(state["history"], sort_keys=False))


def train_phone_lm(out_dir: Path, train: list[np.ndarray], dev: list[np.ndarray], cfg: PhoneLmConfig,
                   device: torch.device) -> dict:
    """Train (or resume, or find finished) a phone LM in ``out_dir`` on token sequences
    (:func:`encode`); return its state: epoch, lr, history (per epoch: train and dev loss per
    token, dev perplexity, lr), best dev loss. Writes ``phone_lm.yaml``, ``phone_lm.pt`` (the
    best dev epoch), ``phone_lm_ckpt/epoch-N.pt`` and ``phone_lm_history.yaml``.

    Raises:
        DataError: no training or no dev sequences. ModelError: ``out_dir`` holds a phone LM
            of another config, its checkpoints are all damaged, or training diverged.
    """
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
    state = _resume(out_dir, model, optimizer, scheduler) or \
        {"epoch": 0, "history": [], "best_loss": _finished_loss(out_dir, cfg, dev, device), "lr": cfg.lr}
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
        state["epoch"], state["lr"] = epoch, optimizer.param_groups[0]["lr"]
        _end_epoch(out_dir, model, optimizer, scheduler, state, dev_loss)
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
