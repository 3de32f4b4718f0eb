#!/usr/bin/env python3
"""Training throughput of each acoustic model type: frames per second of the
training step (forward, backward, Adam), on the CPU or a CUDA device.

    python bench/train_throughput.py [--device auto|cpu|cuda] [--rows dnn,lstm,...]
        [--batch-frames N] [--chunk T] [--steps S] [--no-bf16] [--compile] [--frame-subsampling K]

Every row trains on batches of ``batch-frames`` frames: ``batch-frames / chunk``
chunks of ``chunk`` frames (the unidirectional models' truncated-BPTT pieces;
the BLSTM and DNN read the same shapes). Data stay on the device, as a
trainer with resident features has them; bf16 autocast on CUDA (``--no-bf16``:
float32). With ``--frame-subsampling K`` every network reads K stacked frames and emits one
output every K (a lower frame rate model): batches, chunks and frames/s still count feature
(10 ms) frames, so the rows say how much audio a second trains. The rows:

- the systems of ``bench/am_table.py`` at their sizes (``recipes/synth/conf/am_*.yaml``,
  40 inputs, 144 CI pdfs): dnn, lstm, lstmp, peephole (our cell; ``--compile``
  compiles it), blstm;
- ``lstmp_4x512``: 4 layers of 512 cells, projection 256 (Sak et al. 2014's
  shape), nn.LSTM (cuDNN on CUDA), and ``peephole_4x512`` the same with peepholes.

Two figures a row: ``step`` frames/s times the training step alone on one batch
held on the device; ``trainer`` frames/s times the trainer's whole epoch
(``asr.nn.train.train_one_epoch``: batches gathered from the features resident
on the device, the state carried from batch to batch for the unidirectional
LSTMs, gradient clipping, loss sums) over synthetic utterances of
``chunk x steps`` frames, one per stream, so every batch is full. Their ratio
shows what the trainer's own work costs. Prints frames/s, ratios and peak
memory per row.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch
import yaml
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from asr.nn.model import ModelConfig, StreamingModel, build_model, compile_network, count_parameters  # noqa: E402
from asr.nn.train import (Progress, TrainConfig, epoch_loader, resolve_device, train_one_epoch,  # noqa: E402
                          wrap_network)

FEAT_DIM, NUM_PDFS = 40, 144
CONF = ROOT / "recipes/synth/conf"
ROWS = {
    "dnn": CONF / "ci_dnn.yaml",
    "lstm": CONF / "am_lstm.yaml",
    "lstmp": CONF / "am_lstmp.yaml",
    "peephole": CONF / "am_peephole.yaml",
    "blstm": CONF / "ci_lstm.yaml",
    "lstmp_4x512": dict(num_layers=4, hidden=512, proj=256, bidirectional=False),
    "peephole_4x512": dict(num_layers=4, hidden=512, proj=256, bidirectional=False, peephole=True),
}


def model_config(row: str, frame_subsampling: int = 1) -> ModelConfig:
    spec = ROWS[row]
    opts = spec if isinstance(spec, dict) else yaml.safe_load(spec.read_text())["model"]
    return ModelConfig(input_dim=FEAT_DIM, num_pdfs=NUM_PDFS,
                       **{**opts, "dropout": 0.0, "frame_subsampling": frame_subsampling})


def frames_per_second(cfg: ModelConfig, device: torch.device, batch_frames: int, chunk: int, steps: int,
                      bf16: bool, compile_: bool) -> tuple[float, float]:
    """Mean training (feature) frames/s over ``steps`` steps after two warm-up steps, and peak MiB."""
    torch.manual_seed(0)
    k = cfg.frame_subsampling
    chunk = max(1, chunk // k)  # output frames a chunk
    model = build_model(cfg).to(device)
    streaming = cfg.kind == "lstm" and not cfg.bidirectional
    net = StreamingModel(model) if streaming else model
    if compile_:
        net = compile_network(net)
    n = max(1, batch_frames // (chunk * k))
    x = torch.randn(n, chunk, cfg.input_width, device=device)
    y = torch.randint(0, NUM_PDFS, (n, chunk), device=device)
    lengths = torch.full((n,), chunk)
    opt = torch.optim.Adam(model.parameters())
    amp = bf16 and device.type == "cuda"

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = net(x, None)[0] if streaming else net(x, lengths)
        loss = nn.functional.cross_entropy(logits.float().reshape(-1, NUM_PDFS), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return steps * n * chunk * k / (time.perf_counter() - start), peak


def utterances(n: int, frames: int, seed: int, width: int = FEAT_DIM) -> tuple[dict, dict]:
    """``n`` random utterances of ``frames`` network frames of ``width`` inputs (features, CI pdf targets)."""
    g = torch.Generator().manual_seed(seed)
    feats = {f"u{i:05d}": torch.randn(frames, width, generator=g).numpy() for i in range(n)}
    return feats, {u: torch.randint(0, NUM_PDFS, (frames,), generator=g).numpy() for u in feats}


def trainer_frames_per_second(cfg: ModelConfig, device: torch.device, batch_frames: int, chunk: int, steps: int,
                              bf16: bool, compile_: bool) -> float:
    """Training (feature) frames/s of ``train_one_epoch`` over an epoch of ``steps`` full batches
    (after a warm-up epoch of 2), the features resident on ``device``."""
    from asr.nn.data import ResidentFrames

    torch.manual_seed(0)
    k = cfg.frame_subsampling
    batch_frames, chunk = max(1, batch_frames // k), max(1, chunk // k)  # output frames
    model = build_model(cfg).to(device)
    streaming = cfg.kind == "lstm" and not cfg.bidirectional
    tcfg = TrainConfig(epochs=1, batch_frames=batch_frames, chunk_frames=chunk, tbptt=chunk if streaming else 0,
                       bf16=bf16, compile=compile_)
    net = wrap_network(model, tcfg, device)
    opt = torch.optim.Adam(model.parameters())
    streams = max(1, batch_frames // chunk)
    delay = cfg.output_delay if streaming else 0
    seconds = frames = 0.0
    for epoch, n_steps in ((1, 2), (2, steps)):
        data = utterances(streams, chunk * n_steps, epoch, cfg.input_width)
        loader, sampler = epoch_loader(data, {}, cfg, tcfg, epoch, 0, device, ResidentFrames([data], device, delay))
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = train_one_epoch(net, opt, loader, sampler, tcfg, device, Progress(epoch), lambda p: None)
        seconds, frames = time.perf_counter() - start, out["frames"]
    return frames * k / seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--rows", default="dnn,lstm,lstmp,peephole,blstm")
    p.add_argument("--batch-frames", type=int, default=0, help="frames per batch (default 4000 on CPU, "
                   "163840 on CUDA: 8192 chunks of 20)")
    p.add_argument("--chunk", type=int, default=20, help="frames per chunk (the TBPTT piece)")
    p.add_argument("--steps", type=int, default=0, help="timed steps (default 3 on CPU, 20 on CUDA)")
    p.add_argument("--no-bf16", action="store_true", help="float32 on CUDA too")
    p.add_argument("--compile", action="store_true", help="torch.compile each network")
    p.add_argument("--frame-subsampling", type=int, default=1, metavar="K",
                   help="networks of one output every K frames (K stacked frames an input row)")
    args = p.parse_args()
    rows = [r for r in args.rows.split(",") if r]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        p.error(f"unknown rows {unknown}; choose from {list(ROWS)}")
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    batch_frames = args.batch_frames or (163840 if cuda else 4000)
    steps = args.steps or (20 if cuda else 3)
    name = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    precision = "bf16 autocast" if cuda and not args.no_bf16 else "float32"
    print(f"{name}; {batch_frames} frames a batch in chunks of {args.chunk}; {precision}"
          f"{'; torch.compile' if args.compile else ''}; frame subsampling {args.frame_subsampling}")
    print("| model | params | step frames/s | ratio | trainer frames/s | trainer/step | peak MiB |\n"
          "|---|---|---|---|---|---|---|")
    first = None
    for row in rows:
        cfg = model_config(row, args.frame_subsampling)
        bf16 = not args.no_bf16
        fps, peak = frames_per_second(cfg, device, batch_frames, args.chunk, steps, bf16, args.compile)
        whole = trainer_frames_per_second(cfg, device, batch_frames, args.chunk, steps, bf16, args.compile)
        first = first or fps
        params = count_parameters(build_model(cfg))
        print(f"| {row} | {params / 1e6:.2f}M | {fps:,.0f} | {fps / first:.2f} | {whole:,.0f} | {whole / fps:.2f} "
              f"| {peak:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
