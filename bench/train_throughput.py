#!/usr/bin/env python3
"""Training throughput of the acoustic model (forward + backward + Adam step),
side by side with PyTorch's packed bidirectional ``nn.LSTM`` of the same size.

    python bench/train_throughput.py [--device auto|cpu|cuda] [--layers 3] [--hidden 256]

Prints frames per second for batches of utterances of varied lengths (as in
training), the ratio ours / packed, and peak memory.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import torch
from torch import nn

from asr.nn.model import LstmAcousticModel, ModelConfig
from asr.nn.train import resolve_device

FEAT_DIM, NUM_PDFS = 40, 144


class PackedBlstm(nn.Module):
    """The reference: one multi-layer bidirectional nn.LSTM over packed sequences."""

    def __init__(self, layers: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(FEAT_DIM, hidden, layers, batch_first=True, bidirectional=True)
        self.output = nn.Linear(2 * hidden, NUM_PDFS)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = nn.utils.rnn.pad_packed_sequence(self.lstm(packed)[0], batch_first=True)
        return self.output(out)


def frames_per_second(model: nn.Module, device: torch.device, batch: int, steps: int) -> float:
    """Mean training frames/s over ``steps`` batches of lengths 300–800 frames."""
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(300, 801, (batch,), generator=gen)
    x = torch.randn(batch, int(lengths.max()), FEAT_DIM, generator=gen).to(device)
    y = torch.randint(0, NUM_PDFS, (batch, int(lengths.max())), generator=gen).to(device)
    mask = (torch.arange(x.shape[1])[None, :] < lengths[:, None]).to(device)
    opt = torch.optim.Adam(model.parameters())

    def step() -> None:
        logits = model(x, lengths)[:, : x.shape[1]]
        loss = nn.functional.cross_entropy(logits[mask], y[mask])
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * int(lengths.sum()) / (time.perf_counter() - start)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--batch", type=int, default=0, help="utterances per batch (default 12 on CPU, 64 on GPU)")
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args()
    device = resolve_device(args.device)
    batch = args.batch or (64 if device.type == "cuda" else 12)
    torch.manual_seed(0)
    ours = LstmAcousticModel(ModelConfig(input_dim=FEAT_DIM, num_pdfs=NUM_PDFS, num_layers=args.layers,
                                         hidden=args.hidden, dropout=0.0)).to(device)
    peer = PackedBlstm(args.layers, args.hidden).to(device)
    fps_ours = frames_per_second(ours, device, batch, args.steps)
    fps_peer = frames_per_second(peer, device, batch, args.steps)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.layers} x {args.hidden} BLSTM, {batch} utterances of 300-800 frames per batch, {name}")
    print(f"{'model':44s} {'frames/s':>10s}")
    print(f"{'asr LstmAcousticModel (per-direction, padded)':44s} {fps_ours:10.0f}")
    print(f"{'nn.LSTM bidirectional, packed sequences':44s} {fps_peer:10.0f}")
    print(f"ratio ours / packed: {fps_ours / fps_peer:.2f}; peak memory {peak_memory_mb(device):.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
