"""Framewise cross-entropy training of the acoustic models, on one process or many.

The skeleton: :func:`compute_loss` (one batch), :func:`train_one_epoch`,
:func:`evaluate` (dev) and :func:`train` (the run: resume, epochs, newbob
learning-rate halving, a ``torch.optim.lr_scheduler.ReduceLROnPlateau``,
checkpoints). Batches come from ``torch.utils.data`` (:mod:`asr.nn.data`):
length-bucketed pieces whose state starts from zero, or, for unidirectional
LSTMs with ``tbptt``, parallel streams whose recurrent state is carried from
piece to piece (truncated BPTT, as Sak et al. 2014 train). On CUDA the
forward pass runs under bf16 autocast; the loss sums stay on the device, so
no step waits for it. Under ``torchrun`` (:mod:`asr.nn.distributed`) each
process trains on its share of every batch inside DistributedDataParallel.

Checkpoints after every epoch (and every ``checkpoint_every`` batches, as
``partial.pt``) hold the model, optimizer, scheduler, every process's RNG
state (process r of a multi-process run is seeded with seed + r) and history,
so an interrupted run resumes where it stopped, on this host or another (a
GPU run resumes on a CPU), and ends with the weights of an uninterrupted
one. The last two epoch checkpoints are kept: when the newest is damaged (a
truncated copy, a full disk) a warning names it and training resumes from
the one before. The model with the best dev loss is kept as ``final.pt``.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml
import torch.distributed as tdist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader

from asr.errors import ModelError
from asr.features.augment import AugmentConfig, spec_augment
from asr.io import atomic_path, atomic_write_text, dataclass_defaults
from asr.nn.curves import CURVE_PNG, plot_history
from asr.nn.data import (IGNORE, Batch, FrameBatchSampler, PieceDataset, ResidentBatches, ResidentFrames,
                         StreamBatchSampler, collate)
from asr.nn.checkpoint import (PARTIAL, load_checkpoint, read_checkpoint, remove_old_checkpoints, rng_state,
                               save_checkpoint, set_rng_state)
from asr.nn.distributed import Dist, current
from asr.nn.model import (AcousticModel, ModelConfig, State, StreamingModel, build_model, compile_network,
                          load_weights)

log = logging.getLogger(__name__)

_TAG_COPIES = 17  # keeps the copy draws' RNG stream apart from the batch shuffle's
#: Default relative width of the length buckets whose pieces are reshuffled every epoch.
BUCKET_WIDTH = 0.2


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; saved beside the model as ``train.yaml``."""

    epochs: int = 12
    lr: float = 1e-3
    lr_decay: float = 0.5          # multiply the lr by this when dev loss stops improving (newbob)
    min_improvement: float = 0.005  # relative dev-loss improvement that counts as progress
    batch_frames: int = 8000       # padded feature frames per batch (over all processes)
    chunk_frames: int = 800        # longest training piece in feature frames (state reset at its start)
    grad_clip: float = 5.0
    weight_decay: float = 0.0
    min_lr: float = 0.0            # stop once the lr has decayed below this
    seed: int = 0
    tbptt: int = 0                 # unidirectional LSTMs: truncated BPTT over pieces of this many
                                   # frames, the state carried across pieces (0: chunk_frames, reset)
    checkpoint_every: int = 0      # batches between mid-epoch checkpoints (0: at epoch ends only)
    bf16: bool = True              # on CUDA: bf16 autocast
    resident: bool = True          # hold the features on the training device, batches gathered
                                   # there (false: padded on the host and copied every step)
    compile: bool = False          # torch.compile the network
    bucket_width: float = BUCKET_WIDTH  # pieces are reshuffled each epoch within length buckets of this
                                   # relative width, so that the batches change (0: the same batches
                                   # every epoch, only their order shuffled); not with tbptt

    #: Settings that do not change the trained weights: a run may resume with them changed.
    FREE = ("resident", "checkpoint_every")

    def at_network_rate(self, frame_subsampling: int) -> "TrainConfig":
        """The settings counted in the network's output frames: a model of one output every
        k feature frames holds as much audio a batch, a piece and a TBPTT stream as one at
        the feature rate (batch_frames, chunk_frames and tbptt divided by k, rounded up), so
        it takes as many steps an epoch."""
        if frame_subsampling == 1:
            return self
        k = frame_subsampling
        return replace(self, batch_frames=-(-self.batch_frames // k), chunk_frames=-(-self.chunk_frames // k),
                       tbptt=-(-self.tbptt // k))

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_frames", "chunk_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.tbptt < 0 or self.checkpoint_every < 0:
            raise ValueError("tbptt and checkpoint_every must be at least 0")
        if self.tbptt > self.batch_frames:
            raise ValueError(f"tbptt ({self.tbptt}) is longer than a batch ({self.batch_frames} frames)")
        if not self.bucket_width >= 0:
            raise ValueError(f"bucket_width must be at least 0, not {self.bucket_width}")

    @classmethod
    def defaults(cls) -> dict:
        """How a train.yaml written before a setting existed reads it: the setting's default,
        or the behaviour of the runs then (``bucket_width`` 0: the same batches every epoch)."""
        return {**dataclass_defaults(cls), "bucket_width": 0.0}

    def check_model(self, model_cfg: ModelConfig) -> None:
        """ValueError when these settings do not fit the network."""
        if self.tbptt and (model_cfg.kind != "lstm" or model_cfg.bidirectional):
            raise ValueError("tbptt (carried state) needs a unidirectional LSTM; this model is "
                             + ("a dnn" if model_cfg.kind != "lstm" else "bidirectional"))


class Newbob(ReduceLROnPlateau):
    """Newbob learning-rate halving on the dev loss: the rate is multiplied by ``factor``
    after every epoch whose dev loss is not ``threshold`` (relative) below the best so
    far. Unlike ReduceLROnPlateau, the best loss follows every improvement, however
    small (an epoch that improves a little decays the rate, and is the new mark)."""

    def __init__(self, optimizer: torch.optim.Optimizer, factor: float, threshold: float) -> None:
        super().__init__(optimizer, mode="min", factor=factor, patience=0, threshold=threshold,
                         threshold_mode="rel", eps=0.0)

    def step(self, metrics: float, epoch: int | None = None) -> None:  # noqa: D102
        super().step(metrics)
        self.best = min(self.best, float(metrics))


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda when available, else cpu; ``cpu`` / ``cuda`` as asked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


def frame_loss(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (N, T, P), targets (N, T) → summed cross-entropy over the frames whose
    target is not IGNORE, and the number of them the argmax gets right (both 0-d
    tensors on the logits' device: nothing waits for the device)."""
    flat = logits.reshape(-1, logits.shape[-1]).float()
    tgt = targets.reshape(-1)
    loss = nn.functional.cross_entropy(flat, tgt, ignore_index=IGNORE, reduction="sum")
    correct = ((flat.argmax(-1) == tgt) & (tgt != IGNORE)).sum()
    return loss, correct


def carry(state: list[State] | None, reset: torch.Tensor) -> list[State] | None:
    """The recurrent state for the next piece of each stream: the last piece's
    (detached: truncated BPTT), zeroed where ``reset`` (N,) says a new utterance starts."""
    if state is None:
        return None
    keep = (~reset).to(state[0][0].dtype)[None, :, None]  # (1, N, 1)
    return [(h.detach() * keep, c.detach() * keep) for h, c in state]


def compute_loss(net: nn.Module, batch: Batch, state: list[State] | None, streaming: bool, amp: bool
                 ) -> tuple[torch.Tensor, torch.Tensor, list[State] | None]:
    """Summed cross-entropy of ``batch``, its correct frames, and (streaming) the state
    after it. ``net`` is the network, or its :class:`StreamingModel` when ``streaming``."""
    with torch.autocast(batch.feats.device.type, dtype=torch.bfloat16, enabled=amp):
        if streaming:
            logits, state = net(batch.feats, carry(state, batch.reset))
        else:
            logits = net(batch.feats, batch.lengths)  # (N, T, P)
    loss, correct = frame_loss(logits, batch.targets)
    return loss, correct, state


@dataclass
class Progress:
    """Where an epoch stands: the next batch, sums over the batches done (over every
    process), and the streams' carried state (truncated BPTT; global stream order)."""

    epoch: int
    batch: int = 0
    loss: float = 0.0
    correct: float = 0.0
    frames: int = 0
    world_size: int = 1
    stream_state: list[State] | None = None


def train_one_epoch(net: nn.Module, optimizer: torch.optim.Optimizer, loader: Batches,
                    sampler: FrameBatchSampler | StreamBatchSampler, cfg: TrainConfig, device: torch.device,
                    progress: Progress, save_partial: Callable[[Progress], None],
                    aug: AugmentConfig | None = None) -> dict:
    """One pass over ``loader`` (from batch ``progress.batch`` on), every ``cfg.checkpoint_every``
    batches handing the progress to ``save_partial``; SpecAugment masks each batch when ``aug``
    asks for them. Each process's loss is scaled so that the gradients averaged over the
    processes are those of the whole batch's summed frame loss divided by
    ``sampler.loss_frames(k)``: its real frames, or for truncated BPTT a full batch's."""
    net.train()
    dist = current()
    streaming = isinstance(sampler, StreamBatchSampler)
    amp = cfg.bf16 and device.type == "cuda"
    first = dist.is_main  # the sums so far count once, on process 0
    sums = torch.tensor([progress.loss, progress.correct] if first else [0.0, 0.0], device=device)
    frames = progress.frames if first else 0
    state = _local_streams(progress.stream_state, dist, device)
    total = len(sampler.global_batches())
    for k, batch in enumerate(loader, start=sampler.start):
        batch = batch.to(device)
        if aug is not None and aug.masks:
            batch = Batch(spec_augment(batch.feats, batch.lengths, aug), batch.targets, batch.lengths, batch.reset)
        loss, correct, state = compute_loss(net, batch, state, streaming, amp)
        optimizer.zero_grad(set_to_none=True)
        (loss / (sampler.loss_frames(k) / dist.world_size)).backward()
        nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        optimizer.step()
        sums += torch.stack([loss.detach(), correct.float()])
        frames += batch.num_frames
        if cfg.checkpoint_every and (k + 1) % cfg.checkpoint_every == 0 and k + 1 < total:
            loss_sum, correct_sum, n = _totals(sums, frames, dist)
            save_partial(Progress(progress.epoch, k + 1, loss_sum, correct_sum, n, dist.world_size,
                                  _global_streams(state, dist)))
    loss_sum, correct_sum, n = _totals(sums, frames, dist)
    return {"loss": loss_sum / n, "frame_acc": correct_sum / n, "frames": n}


def _totals(sums: torch.Tensor, frames: int, dist: Dist) -> tuple[float, float, int]:
    """(summed loss, correct frames) of this process's ``sums`` (2,) and its ``frames``,
    each summed over every process (the one point where the host waits for the device)."""
    loss_sum, correct_sum = dist.all_sum(sums).tolist()
    n = int(dist.all_sum(torch.tensor([frames], device=sums.device)))
    return loss_sum, correct_sum, n


def _global_streams(state: list[State] | None, dist: Dist) -> list[State] | None:
    """Every process's stream states in global stream order (stream s = local j of
    process s mod world_size), on the CPU; None when there is no state."""
    if state is None:
        return None
    out = []
    for h, c in state:
        pair = []
        for x in (h.detach().float(), c.detach().float()):
            if dist.world_size > 1:
                parts = [torch.empty_like(x) for _ in range(dist.world_size)]
                tdist.all_gather(parts, x.contiguous())
                x = torch.stack(parts, dim=2).reshape(1, -1, x.shape[-1])  # (1, N_local · world, H)
            pair.append(x.cpu())
        out.append((pair[0], pair[1]))
    return out


def _local_streams(state: list[State] | None, dist: Dist, device: torch.device) -> list[State] | None:
    """This process's share of a global-order stream state (see ``_global_streams``)."""
    if state is None:
        return None
    return [(h[:, dist.rank:: dist.world_size].to(device), c[:, dist.rank:: dist.world_size].to(device))
            for h, c in state]


@torch.no_grad()
def evaluate(model: nn.Module, loader: Batches, device: torch.device, amp: bool = False) -> dict:
    """Mean frame loss and frame accuracy of whole pieces (state reset), summed over processes."""
    model.eval()
    sums = torch.zeros(2, device=device)
    frames = 0
    for batch in loader:
        loss, correct, _ = compute_loss(model, batch.to(device), None, False, amp)
        sums += torch.stack([loss, correct.float()])
        frames += batch.num_frames
    loss_sum, correct_sum, n = _totals(sums, frames, current())
    return {"loss": loss_sum / n, "frame_acc": correct_sum / n}


Data = tuple[dict[str, np.ndarray], dict[str, np.ndarray]]
#: What yields an epoch's batches.
Batches = DataLoader | ResidentBatches


def epoch_versions(train_data: Data, copies: list[Data], seed: int, epoch: int) -> dict[str, int]:
    """Which version each utterance is read in this epoch: 0 the original, i + 1 copy i,
    drawn uniformly among the versions it has with an RNG seeded by (seed, epoch) (so a
    resumed run draws the same)."""
    if not copies:
        return {}
    rng = np.random.default_rng([seed, epoch, _TAG_COPIES])
    versions = {}
    for utt in sorted(train_data[0]):
        options = [0] + [i + 1 for i, c in enumerate(copies) if utt in c[0]]
        versions[utt] = options[int(rng.integers(len(options)))]
    return versions


def epoch_data(train_data: Data, copies: list[Data], versions: dict[str, int]) -> Data:
    """The utterances one epoch reads, each in its version of :func:`epoch_versions`."""
    if not versions:
        return train_data
    every = [train_data] + copies
    return ({u: every[v][0][u] for u, v in versions.items()}, {u: every[v][1][u] for u, v in versions.items()})


def _load_partial(exp_dir: Path, after_epoch: int) -> tuple[dict[str, Any], Progress] | None:
    """The mid-epoch checkpoint of ``exp_dir`` when it continues epoch ``after_epoch`` + 1;
    None when there is none, or it is damaged or stale (a warning names it)."""
    path = exp_dir / PARTIAL
    if not path.is_file():
        return None
    try:
        ckpt = read_checkpoint(path, after_epoch)
        p = ckpt.get("progress")
        if not isinstance(p, dict) or set(p) != {f.name for f in fields(Progress)}:
            raise ValueError("lacks the epoch's progress")
        progress = Progress(**p)
    except ValueError as exc:
        log.warning("%s: not resuming mid-epoch, %s", path, exc)
        return None
    if progress.epoch != after_epoch + 1:
        log.warning("%s: not resuming mid-epoch, it continues epoch %d, not %d", path, progress.epoch,
                    after_epoch + 1)
        return None
    return ckpt, progress


def _restore(path: Path, ckpt: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
             scheduler: Newbob, dist: Dist) -> dict:
    """Load a checkpoint read by ``load_checkpoint`` into ``model`` (on its
    device), ``optimizer``, ``scheduler`` and this process's RNGs; return its training state."""
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])  # casts the state tensors to each parameter's device
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"{path}: checkpoint does not fit the network of model.yaml "
                         f"(was the model config changed?): {exc}") from None
    state = ckpt["state"]
    if "scheduler" in ckpt:
        scheduler.load_state_dict(ckpt["scheduler"])
    else:  # written before the scheduler existed: its lr and best loss are in the state
        scheduler.best = state["best_loss"]
    for group in optimizer.param_groups:
        group["lr"] = state["lr"]
    # written before every process's state was kept: process 0's alone
    states = ckpt.get("rank_rng") or [{"torch": ckpt["torch_rng"], "cuda": ckpt.get("cuda_rng")}]
    if dist.rank < len(states):
        set_rng_state(states[dist.rank])
    else:
        log.info("%s holds the RNG states of %d processes; process %d goes on from seed + %d", path.name,
                 len(states), dist.rank, dist.rank)
    return state


def _checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Newbob,
                state: dict, rng_states: list[dict[str, Any]], progress: Progress | None = None
                ) -> dict[str, Any]:
    """What a checkpoint holds; ``rng_states``: every process's :func:`rng_state`, by rank
    (``rank_rng``; process 0's also as ``torch_rng`` and ``cuda_rng``, as a one-process
    run wrote them before)."""
    ckpt = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "torch_rng": rng_states[0]["torch"],
            "cuda_rng": rng_states[0]["cuda"], "rank_rng": rng_states, "state": state}
    if progress is not None:
        ckpt["progress"] = {f.name: getattr(progress, f.name) for f in fields(Progress)}
    return ckpt


def epoch_loader(data: Data, versions: dict[str, int], model_cfg: ModelConfig, cfg: TrainConfig, epoch: int,
                  start: int, device: torch.device, resident: ResidentFrames | None
                  ) -> tuple[Batches, FrameBatchSampler | StreamBatchSampler]:
    """The training batches of ``epoch`` from batch ``start`` on, this process's share;
    ``data`` is the epoch's (:func:`epoch_data`), gathered from ``resident`` when given."""
    dist = current()
    if cfg.tbptt:
        ds = PieceDataset(*data, cfg.tbptt, fixed=True, delay=model_cfg.output_delay)
        sampler = StreamBatchSampler(ds.utterance_pieces, ds.lengths, cfg.batch_frames // cfg.tbptt, cfg.seed,
                                     rank=dist.rank, world_size=dist.world_size)
    else:
        ds = PieceDataset(*data, cfg.chunk_frames)
        sampler = FrameBatchSampler(ds.lengths, cfg.batch_frames, cfg.seed, rank=dist.rank,
                                    world_size=dist.world_size, bucket_width=cfg.bucket_width)
    sampler.set_epoch(epoch, start)
    return _loader(ds, sampler, device, resident, versions), sampler


def _dev_loader(data: Data, cfg: TrainConfig, device: torch.device) -> Batches:
    dist = current()
    ds = PieceDataset(*data, cfg.chunk_frames)
    sampler = FrameBatchSampler(ds.lengths, cfg.batch_frames, shuffle=False, rank=dist.rank,
                                world_size=dist.world_size)
    return _loader(ds, sampler, device, ResidentFrames([data], device) if cfg.resident else None)


def _loader(ds: PieceDataset, sampler: FrameBatchSampler | StreamBatchSampler, device: torch.device,
            resident: ResidentFrames | None = None, versions: dict[str, int] | None = None) -> Batches:
    """Batches of ``ds`` in ``sampler``'s order: gathered from ``resident`` when given, else
    padded on the host (pinned for a CUDA device). The DataLoader has its own generator:
    one drawing from the global RNG would shift a resumed run's dropout masks."""
    if resident is not None:
        return ResidentBatches(resident, ds, sampler, versions)
    return DataLoader(ds, batch_sampler=sampler, collate_fn=collate, pin_memory=device.type == "cuda",
                      generator=torch.Generator())


def wrap_network(model: AcousticModel, cfg: TrainConfig, device: torch.device) -> nn.Module:
    """What the training steps call: the network (its streaming form for truncated
    BPTT), compiled when asked, inside DistributedDataParallel in a multi-process run."""
    net: nn.Module = StreamingModel(model) if cfg.tbptt else model
    if cfg.compile:
        net = compile_network(net)
    if current().world_size > 1:
        net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    return net


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
    """Train (or resume training) a model in ``exp_dir``; return its state (history included).

    ``train_data`` and ``dev_data`` are ({utt: feats (T, D)}, {utt: pdfs (T,)});
    ``copies`` are augmented copies of ``train_data`` in the same form (each epoch
    reads one version of every utterance, :func:`epoch_data`); ``aug`` switches
    SpecAugment on (:func:`asr.features.augment.spec_augment`).
    ``init_weights`` (a subset of the model's parameters, e.g. the LSTM
    layers of a trained CI model) replace the random initialisation of a
    fresh run; a resumed run reads its checkpoint instead.
    In a multi-process run (:mod:`asr.nn.distributed`) every process calls this
    with the same arguments; process 0 writes the files.
    Writes ``model.yaml``, ``train.yaml``, ``epoch-N.pt`` (the last two),
    ``partial.pt`` (mid-epoch, with ``checkpoint_every``), ``final.pt``,
    ``history.yaml`` and ``training_curve.png``. Raises ModelError when the
    run diverges, or when checkpoints exist but none can be read or none fits
    the model.
    """
    dist = current()
    try:
        cfg.check_model(model_cfg)
    except ValueError as exc:
        raise ModelError(f"{exp_dir}: {exc}") from None
    saved_cfg, cfg = cfg, cfg.at_network_rate(model_cfg.frame_subsampling)
    torch.manual_seed(cfg.seed)
    model = build_model(model_cfg).to(device)  # the same initial weights on every process
    if dist.rank:  # dropout masks and SpecAugment draws of its own (process 0 goes on as one process does)
        torch.manual_seed(cfg.seed + dist.rank)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = Newbob(optimizer, cfg.lr_decay, cfg.min_improvement)
    state = {"epoch": 0, "history": [], "best_loss": float("inf"), "lr": cfg.lr}
    ckpt = load_checkpoint(exp_dir)
    partial = _load_partial(exp_dir, ckpt[1]["state"]["epoch"] if ckpt else 0)
    progress = None
    if partial is not None:
        ckpt, progress = (exp_dir / PARTIAL, partial[0]), partial[1]
        if progress.world_size != dist.world_size:
            raise ModelError(f"{exp_dir / PARTIAL}: written by a run of {progress.world_size} processes; "
                             f"resume it with as many (this run has {dist.world_size}), or delete it to "
                             f"resume from the last epoch's checkpoint")
    if ckpt is None and init_weights is not None:
        missing = model.load_state_dict(init_weights, strict=False).missing_keys
        log.info("initialised %d parameter tensors from a trained model; %s start random",
                 len(init_weights), ", ".join(missing) or "none")
    if ckpt is not None:
        state = _restore(*ckpt, model, optimizer, scheduler, dist)
        log.info("resuming after epoch %d%s (%s)", state["epoch"],
                 f", batch {progress.batch}" if progress else "", ckpt[0].name)
    if dist.is_main:  # only once the checkpoint is known to fit: a refused call leaves the dir as it was
        exp_dir.mkdir(parents=True, exist_ok=True)
        model_cfg.save(exp_dir / "model.yaml")
        atomic_write_text(exp_dir / "train.yaml", yaml.safe_dump(asdict(saved_cfg), sort_keys=True))
    start_epoch = state["epoch"]
    net = wrap_network(model, cfg, device)
    copies = copies or []
    dev_loader = _dev_loader(dev_data, cfg, device)
    delay = model_cfg.output_delay if cfg.tbptt else 0  # fixed pieces carry the delay in their targets
    resident = ResidentFrames([train_data] + copies, device, delay) if cfg.resident else None
    amp = cfg.bf16 and device.type == "cuda"

    def save_partial(p: Progress) -> None:
        rng_states = dist.all_gather(rng_state())
        if dist.is_main:
            save_checkpoint(exp_dir / PARTIAL, _checkpoint(model, optimizer, scheduler, state, rng_states, p))

    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        if lr < cfg.min_lr:
            log.info("learning rate %.2g is below min_lr %.2g: stopping", lr, cfg.min_lr)
            break
        progress = progress or Progress(epoch, world_size=dist.world_size)
        start = time.time()
        versions = epoch_versions(train_data, copies, cfg.seed, epoch)
        loader, sampler = epoch_loader(epoch_data(train_data, copies, versions), versions, model_cfg, cfg,
                                        epoch, progress.batch, device, resident)
        tr = train_one_epoch(net, optimizer, loader, sampler, cfg, device, progress, save_partial, aug)
        dev = evaluate(model, dev_loader, device, amp)
        if not (np.isfinite(tr["loss"]) and np.isfinite(dev["loss"])):
            raise ModelError(f"{exp_dir}: epoch {epoch} diverged (train loss {tr['loss']}, "
                             f"dev loss {dev['loss']}); lower the learning rate")
        seconds = time.time() - start
        new_frames = tr["frames"] - progress.frames
        record = {"epoch": epoch, "lr": lr, "seconds": round(seconds, 1),
                  "frames_per_s": round(new_frames / seconds), **{f"train_{k}": v for k, v in tr.items()},
                  **{f"dev_{k}": v for k, v in dev.items()}}
        log.info("epoch %d: train loss %.3f acc %.3f | dev loss %.3f acc %.3f | lr %.2g | %.0f s (%d frames/s)",
                 epoch, tr["loss"], tr["frame_acc"], dev["loss"], dev["frame_acc"], lr, seconds,
                 record["frames_per_s"])
        progress = None
        state["history"].append(record)
        scheduler.step(dev["loss"])
        state["lr"] = optimizer.param_groups[0]["lr"]
        improved = dev["loss"] < state["best_loss"]
        state["best_loss"] = min(state["best_loss"], dev["loss"])
        state["epoch"] = epoch
        rng_states = dist.all_gather(rng_state())
        if dist.is_main:
            if improved:
                save_checkpoint(exp_dir / "final.pt", {"model": model.state_dict(), "epoch": epoch})
            save_checkpoint(exp_dir / f"epoch-{epoch}.pt",
                             _checkpoint(model, optimizer, scheduler, state, rng_states))
            remove_old_checkpoints(exp_dir, epoch)
            plot_history(state["history"], exp_dir / CURVE_PNG)
    if ckpt is not None and state["epoch"] == start_epoch:
        log.info("%s: training finished already (%d epochs)", exp_dir, state["epoch"])
    if dist.is_main:
        atomic_write_text(exp_dir / "history.yaml", yaml.safe_dump(state["history"], sort_keys=False))
    dist.barrier()
    return state


def load_model(exp_dir: Path, device: torch.device) -> AcousticModel:
    """The best model of ``exp_dir`` (``model.yaml`` + ``final.pt``), in eval mode."""
    cfg = ModelConfig.load(exp_dir / "model.yaml")
    weights = exp_dir / "final.pt"
    if not weights.is_file():
        raise ModelError(f"{weights}: model weights not found (has training finished?)")
    return load_weights(build_model(cfg), weights, device, f"weights for {exp_dir / 'model.yaml'}")
