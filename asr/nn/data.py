"""Framewise training data: utterances cut into chunks, batched by frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Batch:
    """A padded batch. feats (N, T, D) float32; targets (N, T) int64 with
    ``IGNORE`` on padding; lengths (N,) int64."""

    feats: torch.Tensor
    targets: torch.Tensor
    lengths: torch.Tensor

    @property
    def num_frames(self) -> int:
        return int(self.lengths.sum())

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.feats.to(device), self.targets.to(device), self.lengths)


#: Target value of padding frames (ignored by the loss).
IGNORE = -100


def make_chunks(
    feats: dict[str, np.ndarray], targets: dict[str, np.ndarray], chunk_frames: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cut each utterance into pieces of at most ``chunk_frames`` frames.

    Returns (feats (t, D), targets (t,)) pairs, in sorted utterance order.
    """
    chunks = []
    for utt in sorted(feats):
        x, y = feats[utt], targets[utt]
        assert len(x) == len(y), (utt, len(x), len(y))
        n_pieces = max(1, int(np.ceil(len(x) / chunk_frames)))
        bounds = np.linspace(0, len(x), n_pieces + 1).astype(int)
        for a, b in zip(bounds[:-1], bounds[1:]):
            chunks.append((x[a:b], y[a:b]))
    return chunks


def collate(chunks: list[tuple[np.ndarray, np.ndarray]]) -> Batch:
    """Pad a list of (feats (t, D), targets (t,)) into a Batch."""
    lengths = torch.tensor([len(y) for _, y in chunks], dtype=torch.int64)
    n, t_max, dim = len(chunks), int(lengths.max()), chunks[0][0].shape[1]
    feats = torch.zeros(n, t_max, dim)
    targets = torch.full((n, t_max), IGNORE, dtype=torch.int64)
    for i, (x, y) in enumerate(chunks):
        feats[i, : len(y)] = torch.from_numpy(x)
        targets[i, : len(y)] = torch.from_numpy(y)
    return Batch(feats, targets, lengths)


def make_batches(
    chunks: list[tuple[np.ndarray, np.ndarray]], batch_frames: int, rng: np.random.Generator | None
) -> list[Batch]:
    """Group chunks of similar length into batches of at most ``batch_frames``
    padded frames. With ``rng`` the batch order is shuffled (sorting by
    length first keeps padding low); without it the order is fixed."""
    order = sorted(range(len(chunks)), key=lambda i: len(chunks[i][1]))
    groups: list[list[int]] = [[]]
    for i in order:
        longest = len(chunks[i][1])  # sorted: the newest chunk is the longest
        if groups[-1] and (len(groups[-1]) + 1) * longest > batch_frames:
            groups.append([])
        groups[-1].append(i)
    if rng is not None:
        rng.shuffle(groups)
    return [collate([chunks[i] for i in g]) for g in groups]
