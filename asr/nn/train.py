"""Framewise cross-entropy training of the LSTM acoustic model.

Checkpoints after every epoch hold the model, optimizer, learning rate,
RNG state and history, so an interrupted run resumes where it stopped. The
model with the best dev loss is kept as ``final.pt``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from asr.errors import ModelError
from asr.io import atomic_path, atomic_write_text
from asr.nn.data import IGNORE, Batch, make_batches, make_chunks
from asr.nn.model import LstmAcousticModel, ModelConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; saved beside the model as ``train.yaml``."""

    epochs: int = 12
    lr: float = 1e-3
    lr_decay: float = 0.5          # multiply the lr by this when dev loss stops improving
    min_improvement: float = 0.005  # relative dev-loss improvement that counts as progress
    batch_frames: int = 8000       # padded frames per batch
    chunk_frames: int = 800        # longest training chunk
    grad_clip: float = 5.0
    weight_decay: float = 0.0
    min_lr: float = 0.0            # stop once the lr has decayed below this
    seed: int = 0


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda when available, else cpu; ``cpu`` / ``cuda`` as asked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


def compute_loss(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, int, int]:
    """Summed cross-entropy over real frames, number of correct frames, frames."""
    logits = model(batch.feats, batch.lengths)  # (N, T, P)
    flat = logits.reshape(-1, logits.shape[-1])
    tgt = batch.targets.reshape(-1)
    loss = nn.functional.cross_entropy(flat, tgt, ignore_index=IGNORE, reduction="sum")
    mask = tgt != IGNORE
    correct = int((flat.argmax(-1)[mask] == tgt[mask]).sum())
    return loss, correct, int(mask.sum())


def train_one_epoch(model, optimizer, batches: list[Batch], cfg: TrainConfig, device) -> dict:
    model.train()
    tot_loss = tot_correct = tot_frames = 0.0
    for batch in batches:
        batch = batch.to(device)
        loss, correct, frames = compute_loss(model, batch)
        optimizer.zero_grad()
        (loss / frames).backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        tot_loss += float(loss.detach())
        tot_correct += correct
        tot_frames += frames
    return {"loss": tot_loss / tot_frames, "frame_acc": tot_correct / tot_frames, "frames": int(tot_frames)}


@torch.no_grad()
def evaluate(model, batches: list[Batch], device) -> dict:
    model.eval()
    tot_loss = tot_correct = tot_frames = 0.0
    for batch in batches:
        loss, correct, frames = compute_loss(model, batch.to(device))
        tot_loss += float(loss)
        tot_correct += correct
        tot_frames += frames
    return {"loss": tot_loss / tot_frames, "frame_acc": tot_correct / tot_frames}


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(exp_dir: Path) -> dict | None:
    ckpts = sorted(exp_dir.glob("epoch-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    return torch.load(ckpts[-1], weights_only=False) if ckpts else None


def train(
    exp_dir: Path,
    train_data: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
    dev_data: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    device: torch.device,
) -> dict:
    """Train (or resume training) a model in ``exp_dir``; return its history.

    ``train_data`` and ``dev_data`` are ({utt: feats (T, D)}, {utt: pdfs (T,)}).
    Writes ``model.yaml``, ``train.yaml``, ``epoch-N.pt`` and ``final.pt``.
    """
    exp_dir.mkdir(parents=True, exist_ok=True)
    model_cfg.save(exp_dir / "model.yaml")
    atomic_write_text(exp_dir / "train.yaml", yaml.safe_dump(asdict(cfg), sort_keys=True))
    torch.manual_seed(cfg.seed)
    model = LstmAcousticModel(model_cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = {"epoch": 0, "history": [], "best_loss": float("inf"), "lr": cfg.lr}
    ckpt = _load_checkpoint(exp_dir)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["torch_rng"])
        if ckpt.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
        state = ckpt["state"]
        log.info("resuming after epoch %d", state["epoch"])
    start_epoch = state["epoch"]
    train_chunks = make_chunks(*train_data, cfg.chunk_frames)
    dev_batches = make_batches(make_chunks(*dev_data, cfg.chunk_frames), cfg.batch_frames, rng=None)
    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        if state["lr"] < cfg.min_lr:
            log.info("learning rate %.2g is below min_lr %.2g: stopping", state["lr"], cfg.min_lr)
            break
        for group in optimizer.param_groups:
            group["lr"] = state["lr"]
        rng = np.random.default_rng([cfg.seed, epoch])
        start = time.time()
        tr = train_one_epoch(model, optimizer, make_batches(train_chunks, cfg.batch_frames, rng), cfg, device)
        dev = evaluate(model, dev_batches, device)
        if not (np.isfinite(tr["loss"]) and np.isfinite(dev["loss"])):
            raise ModelError(f"{exp_dir}: epoch {epoch} diverged (train loss {tr['loss']}, "
                             f"dev loss {dev['loss']}); lower the learning rate")
        seconds = time.time() - start
        record = {"epoch": epoch, "lr": state["lr"], "seconds": round(seconds, 1),
                  "frames_per_s": round(tr["frames"] / seconds), **{f"train_{k}": v for k, v in tr.items()},
                  **{f"dev_{k}": v for k, v in dev.items()}}
        log.info("epoch %d: train loss %.3f acc %.3f | dev loss %.3f acc %.3f | lr %.2g | %.0f s (%d frames/s)",
                 epoch, tr["loss"], tr["frame_acc"], dev["loss"], dev["frame_acc"], state["lr"], seconds,
                 record["frames_per_s"])
        state["history"].append(record)
        if dev["loss"] < state["best_loss"]:
            if dev["loss"] > state["best_loss"] * (1 - cfg.min_improvement):
                state["lr"] *= cfg.lr_decay
            state["best_loss"] = dev["loss"]
            _save_checkpoint(exp_dir / "final.pt", {"model": model.state_dict(), "epoch": epoch})
        else:
            state["lr"] *= cfg.lr_decay
        state["epoch"] = epoch
        _save_checkpoint(exp_dir / f"epoch-{epoch}.pt", {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "state": state})
        for old in exp_dir.glob("epoch-*.pt"):
            if int(old.stem.split("-")[1]) < epoch:
                old.unlink()
    if ckpt is not None and state["epoch"] == start_epoch:
        log.info("%s: training finished already (%d epochs)", exp_dir, state["epoch"])
    atomic_write_text(exp_dir / "history.yaml", yaml.safe_dump(state["history"], sort_keys=False))
    return state


def load_model(exp_dir: Path, device: torch.device) -> LstmAcousticModel:
    """The best model of ``exp_dir`` (``model.yaml`` + ``final.pt``), in eval mode."""
    cfg = ModelConfig.load(exp_dir / "model.yaml")
    weights = exp_dir / "final.pt"
    if not weights.is_file():
        raise ModelError(f"{weights}: model weights not found (has training finished?)")
    model = LstmAcousticModel(cfg)
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True)["model"])
    except (RuntimeError, KeyError, EOFError, OSError, ValueError) as exc:
        raise ModelError(f"{weights}: cannot load weights for {exp_dir / 'model.yaml'} ({exc})") from None
    return model.to(device).eval()
