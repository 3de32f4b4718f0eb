#!/usr/bin/env python3
"""The acoustic models of the literature side by side (Sak, Senior & Beaufays 2014;
Graves & Schmidhuber 2005): DNN, LSTM, LSTMP, peephole LSTM and BLSTM of about
the same parameter count, each with CI and CD targets, on one corpus.

Rows (``recipes/synth/conf``):
- ``dnn``: ``ci_dnn.yaml``, 4 x 1024 ReLU on +-5 spliced frames;
- ``lstm``: ``am_lstm.yaml``, 3 x 432 cells, outputs delayed 5 frames, trained
  as the BLSTM is: pieces of 800 frames from a zero state (``RESET``);
  ``lstm_tbptt64``: the conf's own training, truncated BPTT over 20-frame
  pieces with the state carried (Sak et al.'s), 64 streams (1280-frame
  batches), chosen on dev; ``lstm_tbptt``: the same over 400 streams
  (8000-frame batches);
- ``lstmp``: ``am_lstmp.yaml``, 3 x 640 cells projected to 256, delay 5 (``RESET``);
  ``lstmp_tbptt64``: the conf's own training (as ``lstm_tbptt64``);
- ``peephole``: ``am_peephole.yaml``, ``lstm`` with peephole connections (``RESET``);
  ``peephole_tbptt64``: the conf's own training;
- ``blstm``: ``ci_lstm.yaml``, 3 x 256 cells a direction (the recipe's model).

Every system trains on the same targets: the recipe's CI realignment
(``ci_lstm/ali_*``, stage 5), numbered by CI states or by the recipe's tree
(stage 6); a CD system starts from its own CI system's layers, as the
recipe's CD model does. ``--epochs`` caps every system's epochs alike (the
confs stop early once the learning rate has been halved four times). Dev
(acoustic scale tuned there), test and test_unseen are decoded with the
phone bigram; choose on dev, read test.

Run the recipe's stages 0-6 first (``recipes/synth/run.sh --size small
--stop-stage 6``), then e.g.
    python bench/am_table.py --size small --epochs 8
    python bench/am_table.py --size timit --device cuda        # on a GPU
Systems go to ``exp/synth_<size>/am_table/<ci|cd>_<row>`` (``--out``: another
dir; a finished system is read back, and one copied there with its
checkpoints but without ``history.yaml`` is trained on to ``--epochs``); the
table is printed and written there as RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runs import ROOT, asr, decode_eval_sets, pick_rows, report, write_conf  # noqa: E402

CONF = ROOT / "recipes/synth/conf"
#: Pieces of 800 frames from a zero state in 8000-frame batches, as the BLSTM and DNN train.
RESET = {"tbptt": 0, "batch_frames": 8000}
ROWS = {
    "dnn": ("ci_dnn.yaml", {}),
    "lstm": ("am_lstm.yaml", RESET),
    "lstm_tbptt": ("am_lstm.yaml", {"batch_frames": 8000}),
    "lstm_tbptt64": ("am_lstm.yaml", {}),
    "lstmp": ("am_lstmp.yaml", RESET),
    "lstmp_tbptt64": ("am_lstmp.yaml", {}),
    "peephole": ("am_peephole.yaml", RESET),
    "peephole_tbptt64": ("am_peephole.yaml", {}),
    "blstm": ("ci_lstm.yaml", {}),
}


def train_system(out: Path, row: str, kind: str, exp: Path, data: Path, leaves: str, epochs: int | None,
                 device: str) -> Path:
    """Train system ``kind``_``row`` (kept when finished) → its model dir."""
    model = out / f"{kind}_{row}"
    if (model / "bundle.yaml").is_file() and (model / "history.yaml").is_file():
        return model
    base, train_opts = ROWS[row]
    if epochs:
        train_opts = {**train_opts, "epochs": epochs}
    conf = write_conf(CONF / base, out / "conf" / f"{row}.yaml", train=train_opts)
    opts = ["--ali-train", str(exp / "ci_lstm/ali_train"), "--ali-dev", str(exp / "ci_lstm/ali_dev")]
    if kind == "cd":
        opts += ["--tree", str(exp / f"tree_{leaves}/tree.json"), "--init-from", str(out / f"ci_{row}")]
    asr(out / f"{kind}_{row}.train.log", "train", str(data / "train"), str(data / "dev"), str(model),
        "--lang", str(data / "lang"), "--conf", str(conf), "--device", device, *opts)
    return model


def summary(model: Path, data: Path, graph: Path, device: str) -> dict:
    """Parameters, dev frame accuracy (of the kept, best-dev-loss epoch), PERs, time, frames/s."""
    from asr.nn.model import ModelConfig, build_model, count_parameters

    per = decode_eval_sets(model, data, graph, model.parent / model.name, device)
    history = yaml.safe_load((model / "history.yaml").read_text())
    best = min(history, key=lambda r: r["dev_loss"])
    seconds = sum(r["seconds"] for r in history)
    return {**per, "params": count_parameters(build_model(ModelConfig.load(model / "model.yaml"))),
            "dev_frame_acc": 100 * best["dev_frame_acc"], "epochs": len(history), "train_s": seconds,
            "frames_per_s": sum(r["train_frames"] for r in history) / seconds}


def table(rows: list[tuple[str, str, dict]]) -> str:
    lines = ["| system | targets | params | epochs | dev frame acc | dev PER | test PER | unseen PER "
             "| train s | frames/s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row, kind, r in rows:
        lines.append(f"| {row} | {kind.upper()} | {r['params'] / 1e6:.2f}M | {r['epochs']} | "
                     f"{r['dev_frame_acc']:.1f} | {r['dev']:.2f} | {r['test']:.2f} | {r['test_unseen']:.2f} | "
                     f"{r['train_s']:.0f} | {r['frames_per_s']:,.0f} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="small")
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {list(ROWS)}")
    p.add_argument("--targets", default="ci,cd", help="ci, cd or ci,cd")
    p.add_argument("--epochs", type=int, default=0, help="cap on every system's epochs (default: the confs')")
    p.add_argument("--leaves", default="1000", help="the recipe's tree size")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="am_table", help="dir under exp/synth_<size>/ for the systems")
    args = p.parse_args()
    rows = pick_rows(p, args.rows, ROWS)
    kinds = pick_rows(p, args.targets, ("ci", "cd"))
    data, exp = ROOT / f"data/synth_{args.size}", ROOT / f"exp/synth_{args.size}"
    tree = exp / f"tree_{args.leaves}"
    for need in (data / "test_unseen/feats.scp", data / "lang/HCG.fst", exp / "ci_lstm/ali_train/ali.yaml",
                 tree / "tree.json", tree / "HCG.fst"):
        if not need.exists():
            sys.exit(f"{need} is missing: run recipes/synth/run.sh --size {args.size} --stop-stage 6")
    out = exp / args.out
    results = []
    for kind in ("ci", "cd"):
        if kind not in kinds:
            continue
        graph = data / "lang/HCG.fst" if kind == "ci" else tree / "HCG.fst"
        for row in rows:
            if kind == "cd" and "ci" not in kinds and not (out / f"ci_{row}/final.pt").is_file():
                sys.exit(f"{out / f'ci_{row}'}: the CD system starts from the CI one; train it first")
            model = train_system(out, row, kind, exp, data, args.leaves, args.epochs or None, args.device)
            results.append((row, kind, summary(model, data, graph, args.device)))
            r = results[-1][2]
            print(f"{kind} {row}: dev {r['dev']:.2f} test {r['test']:.2f} unseen {r['test_unseen']:.2f}, "
                  f"{r['train_s']:.0f} s, {r['frames_per_s']:,.0f} frames/s", flush=True)
    cap = f"at most {args.epochs} epochs each" if args.epochs else "the confs' epochs"
    report(out / "RESULTS.md", f"Acoustic models, synth_{args.size}", table(results),
           f"`python bench/am_table.py --size {args.size}{f' --epochs {args.epochs}' if args.epochs else ''}`: "
           f"{cap}; CD: tree_{args.leaves}, each started from its CI system.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
