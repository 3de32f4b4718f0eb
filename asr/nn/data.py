"""Framewise training data through ``torch.utils.data``: utterances cut into
pieces, batched by padded frames.

Two ways to batch a training epoch:

- :class:`FrameBatchSampler` (every model): pieces of up to ``chunk_frames``
  frames, grouped by length (length bucketing keeps padding low) into batches
  of at most ``batch_frames`` padded frames, the batch order shuffled and
  (``bucket_width``) the pieces reshuffled within length buckets every epoch,
  so that the batches change. Each piece starts from a zero recurrent state.
- :class:`StreamBatchSampler` (unidirectional models, truncated BPTT):
  utterances are dealt to parallel streams, each cut into pieces of a fixed
  number of frames; batch k holds the k-th piece of every stream, so the
  recurrent state at the end of one batch carries into the next one for
  every stream whose utterance goes on (``Batch.reset`` marks the others).

Both split every batch over the ``world_size`` processes of a distributed
run (process ``rank`` takes its share, never an empty one), and both can
start an epoch at a given batch (a run resumed mid-epoch). Padded tensors are
built batch by batch, never a whole epoch at once: on the host by
:func:`collate` (through a ``DataLoader``), or, with the features resident
on the training device (:class:`ResidentFrames`), gathered there by
:class:`ResidentBatches` with one indexing operation per batch and no
host-to-device copy of features.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

#: Target value of padding frames (ignored by the loss).
IGNORE = -100
#: Dataset index of an empty piece: a stream with no utterance left this epoch.
EMPTY = -1


@dataclass
class Batch:
    """A padded batch. feats (N, T, D) float32; targets (N, T) int64 with
    ``IGNORE`` on padding; lengths (N,) int64 (on the CPU); reset (N,) bool: the
    piece starts its utterance (the recurrent state starts from zero)."""

    feats: torch.Tensor
    targets: torch.Tensor
    lengths: torch.Tensor
    reset: torch.Tensor | None = None

    @property
    def num_frames(self) -> int:
        return int(self.lengths.sum())

    def pin_memory(self) -> "Batch":
        """The batch in page-locked memory (what a DataLoader with ``pin_memory`` calls),
        so that ``to(cuda)`` copies without blocking."""
        reset = None if self.reset is None else self.reset.pin_memory()
        return Batch(self.feats.pin_memory(), self.targets.pin_memory(), self.lengths, reset)

    def to(self, device: torch.device) -> "Batch":
        nb = device.type == "cuda"
        reset = None if self.reset is None else self.reset.to(device, non_blocking=nb)
        return Batch(self.feats.to(device, non_blocking=nb), self.targets.to(device, non_blocking=nb),
                     self.lengths, reset)


Piece = tuple[np.ndarray, np.ndarray, bool]  # feats (t, D), targets (t,), starts its utterance


class PieceDataset(Dataset):
    """The pieces of a set of utterances, indexed 0..len-1 (:data:`EMPTY`: no frames).

    ``fixed``: cut pieces of exactly ``chunk_frames`` from each utterance's start
    (the last one shorter), as truncated BPTT reads them; otherwise cut each
    utterance into equal pieces of at most ``chunk_frames``.
    ``delay`` (fixed pieces only): each utterance is extended by ``delay``
    zero frames and its targets are shifted by ``delay`` (the first ``delay``
    frames have none): a network run over it without delay is trained to
    output each target ``delay`` frames late, as an ``output_delay`` model does.
    """

    def __init__(self, feats: dict[str, np.ndarray], targets: dict[str, np.ndarray], chunk_frames: int,
                 fixed: bool = False, delay: int = 0) -> None:
        if delay and not fixed:
            raise ValueError("delay applies to fixed pieces (truncated BPTT) only")
        self.feats, self.targets, self.delay = feats, targets, delay
        self.dim = next(iter(feats.values())).shape[1]
        self.pieces: list[tuple[str, int, int]] = []  # utterance, first frame, end frame
        self.utterance_pieces: list[list[int]] = []  # piece indices of each utterance, in order
        for utt in sorted(feats):
            x, y = feats[utt], targets[utt]
            if len(x) != len(y):
                raise ValueError(f"utterance {utt}: {len(x)} feature frames but {len(y)} targets")
            n = len(x) + delay
            if fixed:
                bounds = list(range(0, n, chunk_frames)) + [n]
            else:
                bounds = np.linspace(0, n, max(1, int(np.ceil(n / chunk_frames))) + 1).astype(int).tolist()
            first = len(self.pieces)
            self.pieces += [(utt, a, b) for a, b in zip(bounds[:-1], bounds[1:])]
            self.utterance_pieces.append(list(range(first, len(self.pieces))))
        self.lengths = np.array([b - a for _, a, b in self.pieces], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.pieces)

    def __getitem__(self, i: int) -> Piece:
        if i == EMPTY:
            return np.zeros((0, self.dim), np.float32), np.zeros(0, np.int64), True
        utt, a, b = self.pieces[i]
        x, y = self.feats[utt], self.targets[utt]
        if not self.delay:
            return x[a:b], y[a:b], a == 0
        # frames a..b of the utterance extended by ``delay`` zero frames, targets shifted by ``delay``
        x = x[a:b]
        if len(x) < b - a:
            x = np.concatenate([x, np.zeros((b - a - len(x), x.shape[1]), x.dtype)])
        y = y[max(0, a - self.delay): max(0, b - self.delay)]
        if len(y) < b - a:
            y = np.concatenate([np.full(b - a - len(y), IGNORE, np.int64), y])
        return x, y, a == 0


def collate(pieces: list[Piece]) -> Batch:
    """Pad a list of pieces into a Batch."""
    lengths = torch.tensor([len(y) for _, y, _ in pieces], dtype=torch.int64)
    n, t_max, dim = len(pieces), max(1, int(lengths.max())), pieces[0][0].shape[1]
    feats = torch.zeros(n, t_max, dim)
    targets = torch.full((n, t_max), IGNORE, dtype=torch.int64)
    for i, (x, y, _) in enumerate(pieces):
        feats[i, : len(y)] = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        targets[i, : len(y)] = torch.from_numpy(np.asarray(y, dtype=np.int64))
    return Batch(feats, targets, lengths, torch.tensor([r for _, _, r in pieces], dtype=torch.bool))


class ResidentFrames:
    """Every frame of one or more versions of a set of utterances (the originals, their
    augmented copies), held on one device: feats (F + 1, D) float32 and targets (F + 1,)
    int64, utterance after utterance, the last row padding (zeros, ``IGNORE``).

    ``delay``: each utterance is extended by ``delay`` zero frames and its targets are
    shifted by ``delay``, as :class:`PieceDataset` does for fixed pieces. Built once
    per run: one host-to-device copy of F x D floats (a GPU holds the ``timit``
    size's 1.1M frames x 40 in 180 MB a version).
    """

    def __init__(self, versions: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]],
                 device: torch.device, delay: int = 0) -> None:
        feats: list[np.ndarray] = []
        targets: list[np.ndarray] = []
        self.offset: dict[tuple[int, str], int] = {}  # (version, utterance) -> its first row
        rows = 0
        for v, (xs, ys) in enumerate(versions):
            for utt in sorted(xs):
                x, y = xs[utt], ys[utt]
                self.offset[(v, utt)] = rows
                feats += [x, np.zeros((delay, x.shape[1]), np.float32)]
                targets += [np.full(delay, IGNORE, np.int64), y]
                rows += len(x) + delay
        dim = feats[0].shape[1] if feats else 1
        feats.append(np.zeros((1, dim), np.float32))
        targets.append(np.full(1, IGNORE, np.int64))
        self.pad = rows  # the padding row
        self.device = device
        self.feats = torch.from_numpy(np.concatenate(feats).astype(np.float32, copy=False)).to(device)
        self.targets = torch.from_numpy(np.concatenate(targets).astype(np.int64, copy=False)).to(device)


class ResidentBatches:
    """The batches of ``sampler`` (lists of piece indices of ``ds``), gathered from
    ``frames`` on its device; iterated like a DataLoader. ``versions`` says which
    version of ``frames`` each utterance of ``ds`` is (default: version 0). Each batch
    equals :func:`collate` of the same pieces, its lengths on the host (they come
    from the sampler's table: no step waits for the device)."""

    def __init__(self, frames: ResidentFrames, ds: PieceDataset, sampler: "_EpochSampler",
                 versions: dict[str, int] | None = None) -> None:
        versions = versions or {}
        starts = [frames.offset[(versions.get(utt, 0), utt)] + a for utt, a, _ in ds.pieces]
        device = frames.device
        self.frames, self.sampler = frames, sampler
        # one row per piece, and last (index EMPTY = -1) an empty piece
        self.lengths = np.append(ds.lengths, 0)
        self.starts = torch.tensor(starts + [frames.pad], dtype=torch.int64, device=device)
        self.first = torch.tensor([a == 0 for _, a, _ in ds.pieces] + [True], dtype=torch.bool, device=device)
        self.device_lengths = torch.from_numpy(self.lengths).to(device)

    def batch(self, indices: list[int]) -> Batch:
        """Pieces ``indices`` (:data:`EMPTY`: none) padded into a Batch on the frames' device."""
        ids = np.asarray(indices, dtype=np.int64)
        ids[ids == EMPTY] = len(self.lengths) - 1
        lengths = torch.from_numpy(self.lengths[ids])
        t_max = max(1, int(lengths.max()))
        rows = torch.from_numpy(ids).to(self.frames.device)
        pos = torch.arange(t_max, device=self.frames.device)
        index = torch.where(pos < self.device_lengths[rows, None], self.starts[rows, None] + pos, self.frames.pad)
        return Batch(self.frames.feats[index], self.frames.targets[index], lengths, self.first[rows])

    def __iter__(self):
        for indices in self.sampler:
            yield self.batch(indices)

    def __len__(self) -> int:
        return len(self.sampler)


class _EpochSampler(Sampler[list[int]]):
    """Shared parts: the epoch's global batches (built by ``_global_batches``), this
    process's share of each, and a first batch to start from."""

    def __init__(self, lengths: np.ndarray, seed: int, shuffle: bool, rank: int, world_size: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.lengths, self.seed, self.shuffle = lengths, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0
        self._batches: list[list[int]] | None = None

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Batches of ``epoch`` (the shuffle depends on it), from batch ``start`` on."""
        self.epoch, self.start = epoch, start
        self._batches = self._global_batches(np.random.default_rng([self.seed, epoch]) if self.shuffle else None)

    def global_batches(self) -> list[list[int]]:
        """Every process's pieces of each batch of the epoch."""
        if self._batches is None:
            self.set_epoch(self.epoch, self.start)
        return self._batches

    def global_frames(self, k: int) -> int:
        """Real frames of batch ``k`` over all processes."""
        return int(sum(self.lengths[i] for i in self.global_batches()[k] if i != EMPTY))

    def loss_frames(self, k: int) -> int:
        """The frames batch ``k``'s summed loss is divided by: its real frames."""
        return self.global_frames(k)

    def share(self, batch: list[int]) -> list[int]:
        """This process's pieces of ``batch``: every ``world_size``-th from ``rank`` on, or
        ``[EMPTY]`` when the batch has fewer pieces than processes (a dev set smaller
        than the run: the process scores an empty piece, and joins every all-reduce)."""
        return batch[self.rank:: self.world_size] or [EMPTY]

    def __iter__(self):
        for batch in self.global_batches()[self.start:]:
            yield self.share(batch)

    def __len__(self) -> int:
        return len(self.global_batches()) - self.start

    def _global_batches(self, rng: np.random.Generator | None) -> list[list[int]]:
        raise NotImplementedError


class FrameBatchSampler(_EpochSampler):
    """Pieces grouped by length into batches of at most ``batch_frames`` padded
    frames and at least ``world_size`` pieces, so that every process has one
    (a last group of fewer pieces joins the group before it, which may then
    exceed ``batch_frames`` by up to ``world_size - 1`` pieces).

    With ``shuffle`` the batch order is drawn from (seed, epoch), and with
    ``bucket_width`` > 0 the batches themselves change from epoch to epoch: the
    pieces are put in length buckets of relative width ``bucket_width`` (piece
    lengths in [w^(k - o), w^(k + 1 - o)) frames for w = 1 + bucket_width, the
    offset o drawn from (seed, epoch)), shuffled within each bucket, and cut into
    batches in that order (padded frames: pieces times the longest of them).
    """

    def __init__(self, lengths: np.ndarray, batch_frames: int, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1, bucket_width: float = 0.0) -> None:
        super().__init__(lengths, seed, shuffle, rank, world_size)
        if bucket_width < 0:
            raise ValueError(f"bucket_width must be at least 0, not {bucket_width}")
        self.batch_frames, self.bucket_width = batch_frames, bucket_width

    def _order(self, rng: np.random.Generator | None) -> list[int]:
        """Piece indices by length (ties by index), or with ``rng`` and a
        ``bucket_width`` by length bucket, shuffled within each bucket."""
        if rng is None or not self.bucket_width:
            return sorted(range(len(self.lengths)), key=lambda i: self.lengths[i])
        offset = rng.random()
        log_len = np.log(np.maximum(self.lengths, 1)) / np.log1p(self.bucket_width)
        bucket = np.floor(log_len + offset)
        within = rng.permutation(len(self.lengths))
        return np.lexsort((within, bucket)).tolist()

    def _global_batches(self, rng: np.random.Generator | None) -> list[list[int]]:
        groups: list[list[int]] = [[]]
        longest = 0  # the longest piece of the newest group
        for i in self._order(rng):
            size = max(longest, int(self.lengths[i]))
            if len(groups[-1]) >= self.world_size and (len(groups[-1]) + 1) * size > self.batch_frames:
                groups.append([])
                size = int(self.lengths[i])
            groups[-1].append(i)
            longest = size
        if len(groups) > 1 and len(groups[-1]) < self.world_size:
            last = groups.pop()
            groups[-1] += last
        if rng is not None:
            rng.shuffle(groups)
        return groups


class StreamBatchSampler(_EpochSampler):
    """Truncated-BPTT batches: each epoch the utterances (in an order drawn from
    (seed, epoch) with ``shuffle``) are dealt, each to the stream with the fewest
    pieces so far, over ``streams`` streams; batch k holds the k-th piece of each
    stream (:data:`EMPTY` once a stream has run out). Stream s belongs to process
    s mod world_size, so each process keeps the same streams from batch to batch."""

    def __init__(self, utterance_pieces: list[list[int]], lengths: np.ndarray, streams: int, seed: int = 0,
                 shuffle: bool = True, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(lengths, seed, shuffle, rank, world_size)
        self.utterance_pieces = utterance_pieces
        self.streams = max(world_size, streams - streams % world_size)  # the same number per process
        self.piece_frames = int(lengths.max()) if len(lengths) else 1

    def loss_frames(self, k: int) -> int:
        """The frames of a full batch (every stream, whole pieces), whatever batch ``k`` holds:
        the batches at an epoch's end, where few streams still run, take steps of their size."""
        return self.streams * self.piece_frames

    def _global_batches(self, rng: np.random.Generator | None) -> list[list[int]]:
        order = rng.permutation(len(self.utterance_pieces)) if rng is not None else range(len(self.utterance_pieces))
        queues: list[list[int]] = [[] for _ in range(self.streams)]
        heap = [(0, s) for s in range(self.streams)]
        for u in order:
            size, s = heapq.heappop(heap)
            queues[s] += self.utterance_pieces[u]
            heapq.heappush(heap, (size + len(self.utterance_pieces[u]), s))
        steps = max(len(q) for q in queues)
        return [[q[k] if k < len(q) else EMPTY for q in queues] for k in range(steps)]
