"""Framewise cross-entropy training of the LSTM acoustic model.

Checkpoints after every epoch hold the model, optimizer, learning rate,
RNG state and history, so an interrupted run resumes where it stopped, on
this host or another (a GPU run resumes on a CPU). The last two epoch
checkpoints are kept: when the newest is damaged (a truncated copy, a full
disk) a warning names it and training resumes from the one before. The
model with the best dev loss is kept as ``final.pt``.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from asr.errors import ModelError
from asr.features.augment import AugmentConfig, spec_augment
from asr.io import atomic_path, atomic_write_text
from asr.nn.data import IGNORE, Batch, make_batches, make_chunks
from asr.nn.model import AcousticModel, ModelConfig, build_model

log = logging.getLogger(__name__)

#: Epoch checkpoints kept: the newest and, in case it is damaged, the one before.
KEEP_CHECKPOINTS = 2
#: What an epoch checkpoint must hold (``cuda_rng`` is optional: None on CPU runs).
CHECKPOINT_KEYS = ("model", "optimizer", "torch_rng", "state")
STATE_KEYS = ("epoch", "history", "best_loss", "lr")
_EPOCH_FILE = re.compile(r"epoch-(\d+)\.pt")
_TAG_COPIES = 17  # keeps the copy draws' RNG stream apart from the batch shuffle's


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


def train_one_epoch(model, optimizer, batches: list[Batch], cfg: TrainConfig, device,
                    aug: AugmentConfig | None = None) -> dict:
    """One pass over ``batches``; SpecAugment masks on each batch when ``aug`` asks for them."""
    model.train()
    tot_loss = tot_correct = tot_frames = 0.0
    for batch in batches:
        batch = batch.to(device)
        if aug is not None and aug.masks:
            batch = Batch(spec_augment(batch.feats, batch.lengths, aug), batch.targets, batch.lengths)
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


Data = tuple[dict[str, np.ndarray], dict[str, np.ndarray]]


def epoch_data(train_data: Data, copies: list[Data], seed: int, epoch: int) -> Data:
    """The utterances one epoch reads: for each, the original or one of its augmented
    copies, drawn uniformly with an RNG seeded by (seed, epoch) (so a resumed run
    draws the same)."""
    if not copies:
        return train_data
    rng = np.random.default_rng([seed, epoch, _TAG_COPIES])
    feats, targets = {}, {}
    for utt in sorted(train_data[0]):
        options = [train_data] + [c for c in copies if utt in c[0]]
        pick = options[int(rng.integers(len(options)))]
        feats[utt], targets[utt] = pick[0][utt], pick[1][utt]
    return feats, targets


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _epoch_checkpoints(exp_dir: Path) -> list[tuple[int, Path]]:
    """(N, path) of the ``epoch-N.pt`` files of ``exp_dir``, oldest first."""
    matches = (_EPOCH_FILE.fullmatch(p.name) for p in exp_dir.glob("epoch-*.pt"))
    return sorted((int(m.group(1)), exp_dir / m.group(0)) for m in matches if m)


def _read_checkpoint(path: Path, epoch: int) -> dict[str, Any]:
    """The checkpoint written after ``epoch``, every tensor on the CPU.

    Raises:
        ValueError: the file cannot be read or does not hold a complete
            checkpoint; the message says what is wrong (not the file name).
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - damaged pickles raise Key/Index/Type/Unicode/...Error too
        first_line = (str(exc).splitlines() or [""])[0]
        raise ValueError(f"cannot be read ({type(exc).__name__}: {first_line})") from None
    if not isinstance(ckpt, dict):
        raise ValueError(f"holds a {type(ckpt).__name__}, not a checkpoint dict")
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    state = ckpt.get("state")
    missing += [f"state.{k}" for k in STATE_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"lacks {', '.join(missing)}")
    rng = ckpt["torch_rng"]
    if not (isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8):
        raise ValueError("torch_rng is not a ByteTensor")
    if state["epoch"] != epoch:
        raise ValueError(f"holds epoch {state['epoch']!r}, not {epoch}")
    return ckpt


def _load_checkpoint(exp_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable epoch checkpoint of ``exp_dir`` (tensors on the CPU).

    A damaged checkpoint is skipped with a warning naming it. Returns None
    when there is no checkpoint at all (a fresh start).

    Raises:
        ModelError: there are checkpoints but none can be read (starting
            afresh would silently throw the training away).
    """
    problems = []
    for epoch, path in reversed(_epoch_checkpoints(exp_dir)):
        try:
            return path, _read_checkpoint(path, epoch)
        except ValueError as exc:
            log.warning("%s: damaged checkpoint, %s; skipping it", path, exc)
            problems.append(f"{path.name} {exc}")
    if problems:
        raise ModelError(f"{exp_dir}: no usable checkpoint to resume from ({'; '.join(problems)}); "
                         "remove the epoch-*.pt files to train from scratch")
    return None


def _restore(path: Path, ckpt: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Load a checkpoint read by ``_load_checkpoint`` into ``model`` (on its
    device), ``optimizer`` and the RNGs; return its training state."""
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])  # casts the state tensors to each parameter's device
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"{path}: checkpoint does not fit the network of model.yaml "
                         f"(was the model config changed?): {exc}") from None
    torch.set_rng_state(ckpt["torch_rng"].cpu())
    cuda_rng = ckpt.get("cuda_rng")
    if cuda_rng and torch.cuda.is_available():
        for i, rng in enumerate(cuda_rng[: torch.cuda.device_count()]):  # a host may have fewer GPUs
            torch.cuda.set_rng_state(rng.cpu(), i)
    return ckpt["state"]


def _remove_old_checkpoints(exp_dir: Path, epoch: int) -> None:
    """Keep the ``KEEP_CHECKPOINTS`` newest epoch checkpoints up to ``epoch``."""
    for n, old in _epoch_checkpoints(exp_dir):
        if n <= epoch - KEEP_CHECKPOINTS:
            old.unlink()


def train(
    exp_dir: Path,
    train_data: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
    dev_data: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    device: torch.device,
    init_weights: dict[str, torch.Tensor] | None = None,
    copies: list[Data] | None = None,
    aug: AugmentConfig | None = None,
) -> dict:
    """Train (or resume training) a model in ``exp_dir``; return its history.

    ``train_data`` and ``dev_data`` are ({utt: feats (T, D)}, {utt: pdfs (T,)});
    ``copies`` are augmented copies of ``train_data`` in the same form (each epoch
    reads one version of every utterance, :func:`epoch_data`); ``aug`` switches
    SpecAugment on (:func:`asr.features.augment.spec_augment`).
    ``init_weights`` (a subset of the model's parameters, e.g. the LSTM
    layers of a trained CI model) replace the random initialisation of a
    fresh run; a resumed run reads its checkpoint instead.
    Writes ``model.yaml``, ``train.yaml``, ``epoch-N.pt`` (the last two) and
    ``final.pt``. Raises ModelError when the run diverges, or when checkpoints
    exist but none can be read or none fits the model.
    """
    exp_dir.mkdir(parents=True, exist_ok=True)
    model_cfg.save(exp_dir / "model.yaml")
    atomic_write_text(exp_dir / "train.yaml", yaml.safe_dump(asdict(cfg), sort_keys=True))
    torch.manual_seed(cfg.seed)
    model = build_model(model_cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = {"epoch": 0, "history": [], "best_loss": float("inf"), "lr": cfg.lr}
    ckpt = _load_checkpoint(exp_dir)
    if ckpt is None and init_weights is not None:
        missing = model.load_state_dict(init_weights, strict=False).missing_keys
        log.info("initialised %d parameter tensors from a trained model; %s start random",
                 len(init_weights), ", ".join(missing) or "none")
    if ckpt is not None:
        state = _restore(*ckpt, model, optimizer)
        log.info("resuming after epoch %d (%s)", state["epoch"], ckpt[0].name)
    start_epoch = state["epoch"]
    copies = copies or []
    train_chunks = make_chunks(*train_data, cfg.chunk_frames) if not copies else None
    dev_batches = make_batches(make_chunks(*dev_data, cfg.chunk_frames), cfg.batch_frames, rng=None)
    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        if state["lr"] < cfg.min_lr:
            log.info("learning rate %.2g is below min_lr %.2g: stopping", state["lr"], cfg.min_lr)
            break
        for group in optimizer.param_groups:
            group["lr"] = state["lr"]
        rng = np.random.default_rng([cfg.seed, epoch])
        start = time.time()
        chunks = train_chunks or make_chunks(*epoch_data(train_data, copies, cfg.seed, epoch), cfg.chunk_frames)
        tr = train_one_epoch(model, optimizer, make_batches(chunks, cfg.batch_frames, rng), cfg, device, aug)
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
        _remove_old_checkpoints(exp_dir, epoch)
    if ckpt is not None and state["epoch"] == start_epoch:
        log.info("%s: training finished already (%d epochs)", exp_dir, state["epoch"])
    atomic_write_text(exp_dir / "history.yaml", yaml.safe_dump(state["history"], sort_keys=False))
    return state


def load_model(exp_dir: Path, device: torch.device) -> AcousticModel:
    """The best model of ``exp_dir`` (``model.yaml`` + ``final.pt``), in eval mode."""
    cfg = ModelConfig.load(exp_dir / "model.yaml")
    weights = exp_dir / "final.pt"
    if not weights.is_file():
        raise ModelError(f"{weights}: model weights not found (has training finished?)")
    model = build_model(cfg)
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True)["model"])
    except (RuntimeError, KeyError, EOFError, OSError, ValueError) as exc:
        raise ModelError(f"{weights}: cannot load weights for {exp_dir / 'model.yaml'} ({exc})") from None
    return model.to(device).eval()
