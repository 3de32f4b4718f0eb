"""Checkpoint files of the trainers: atomic writes, the ``epoch-N.pt`` files of a run, reading
one back with every damage named, and the RNG states they carry.

A run keeps its ``KEEP_CHECKPOINTS`` newest epoch checkpoints; :func:`load_checkpoint` returns
the newest readable one, naming each damaged file in a warning, so a truncated newest copy
costs one epoch, never the run.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch

from asr.errors import ModelError
from asr.io import atomic_path

log = logging.getLogger(__name__)

#: Epoch checkpoints kept: the newest and, in case it is damaged, the one before.
KEEP_CHECKPOINTS = 2
#: What an epoch checkpoint must hold (``cuda_rng`` is optional: None on CPU runs).
CHECKPOINT_KEYS = ("model", "optimizer", "torch_rng", "state")
STATE_KEYS = ("epoch", "history", "best_loss", "lr")
#: The mid-epoch checkpoint (``checkpoint_every``); removed when its epoch ends.
PARTIAL = "partial.pt"
_EPOCH_FILE = re.compile(r"epoch-(\d+)\.pt")


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def epoch_checkpoints(exp_dir: Path) -> list[tuple[int, Path]]:
    """(N, path) of the ``epoch-N.pt`` files of ``exp_dir``, oldest first."""
    matches = (_EPOCH_FILE.fullmatch(p.name) for p in exp_dir.glob("epoch-*.pt"))
    return sorted((int(m.group(1)), exp_dir / m.group(0)) for m in matches if m)


def read_checkpoint(path: Path, epoch: int) -> dict[str, Any]:
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
    _check_rank_rng(ckpt)
    if state["epoch"] != epoch:
        raise ValueError(f"holds epoch {state['epoch']!r}, not {epoch}")
    return ckpt


def load_checkpoint(exp_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable epoch checkpoint of ``exp_dir`` (tensors on the CPU).

    A damaged checkpoint is skipped with a warning naming it. Returns None
    when there is no checkpoint at all (a fresh start).

    Raises:
        ModelError: there are checkpoints but none can be read (starting
            afresh would silently throw the training away).
    """
    problems = []
    for epoch, path in reversed(epoch_checkpoints(exp_dir)):
        try:
            return path, read_checkpoint(path, epoch)
        except ValueError as exc:
            log.warning("%s: damaged checkpoint, %s; skipping it", path, exc)
            problems.append(f"{path.name} {exc}")
    if problems:
        raise ModelError(f"{exp_dir}: no usable checkpoint to resume from ({'; '.join(problems)}); "
                         "remove the epoch-*.pt files to train from scratch")
    return None


def rng_state() -> dict[str, Any]:
    """This process's RNG states: ``torch`` (the CPU generator's ByteTensor) and ``cuda``
    (every visible device's, or None without CUDA)."""
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(rng: dict[str, Any]) -> None:
    """Restore an :func:`rng_state` (on a host with fewer GPUs, the devices it has)."""
    torch.set_rng_state(rng["torch"].cpu())
    cuda_rng = rng.get("cuda")
    if cuda_rng and torch.cuda.is_available():
        for i, state in enumerate(cuda_rng[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state.cpu(), i)


def _check_rank_rng(ckpt: dict[str, Any]) -> None:
    """ValueError unless the checkpoint's optional ``rank_rng`` is a list of RNG states."""
    states = ckpt.get("rank_rng")
    if states is None:
        return
    if not (isinstance(states, list) and states and all(
            isinstance(r, dict) and isinstance(r.get("torch"), torch.Tensor) and r["torch"].dtype == torch.uint8
            for r in states)):
        raise ValueError("rank_rng is not a list of RNG states")


def remove_old_checkpoints(exp_dir: Path, epoch: int) -> None:
    """Keep the ``KEEP_CHECKPOINTS`` newest epoch checkpoints up to ``epoch``; drop the
    mid-epoch one."""
    for n, old in epoch_checkpoints(exp_dir):
        if n <= epoch - KEEP_CHECKPOINTS:
            old.unlink()
    (exp_dir / PARTIAL).unlink(missing_ok=True)
