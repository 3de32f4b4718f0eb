#!/usr/bin/env python3
"""PER against epochs for the recipe's CI or CD model on one corpus: how many to train.

Trains the model of the recipe's training YAML for the corpus
(``recipes/synth/conf/<ci|cd>_lstm[_<size>].yaml``; ``--cd``: on the recipe's
tree and realignment, started from the recipe's CI model, as stage 7 does) on
to each epoch count of ``--epochs`` in turn, resuming from the last checkpoint:
a run continued to more epochs is the run that had asked for them from the
start, so one training gives every point. Each point's bundle is kept in
``e<epochs>/``; dev (acoustic scale tuned there), test and test_unseen are
decoded with the phone bigram. Choose on dev; test and test_unseen are only
read.

Run the recipe's stages 0-3 first (0-6 for ``--cd``), e.g.
``recipes/synth/run.sh --size medium --stop-stage 6``, then:
    python bench/epochs.py --size medium --cd --epochs 3,5,7
Models go to ``exp/synth_<size>/epochs/<ci|cd>``; the table is printed and
written there as RESULTS_<ci|cd>.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runs import ROOT, epoch_counts, epoch_point, recipe_conf, report  # noqa: E402


def table(rows: list[dict], kind: str) -> str:
    lines = [f"| {kind} model, epochs | dev frame acc | dev PER | test PER | unseen PER | train s |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['epochs_run']} | {r['dev_frame_acc']:.1f} | {r['dev']:.2f} | {r['test']:.2f} | "
                     f"{r['test_unseen']:.2f} | {r['train_s']:.0f} |")
    return "\n".join(lines)


def parse_epochs(parser: argparse.ArgumentParser, text: str) -> list[int]:
    """``"3,5,7"`` → [3, 5, 7]; a parser error for anything but positive integers."""
    try:
        return epoch_counts(text)
    except ValueError:
        parser.error(f"--epochs {text!r}: expected comma-separated positive epoch counts, e.g. 3,5,7")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="medium")
    p.add_argument("--cd", action="store_true", help="the CD model (needs the recipe's stages 0-6)")
    p.add_argument("--leaves", default="1000", help="the recipe's tree size (with --cd)")
    p.add_argument("--epochs", default="3,5,7", help="comma-separated epoch counts")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    points = parse_epochs(p, args.epochs)
    kind = "cd" if args.cd else "ci"
    data, exp = ROOT / f"data/synth_{args.size}", ROOT / f"exp/synth_{args.size}"
    tree = exp / f"tree_{args.leaves}"
    needs = [data / "train/feats.scp", data / "test_unseen/feats.scp", data / "lang/HCG.fst"]
    if args.cd:
        needs += [tree / "tree.json", tree / "HCG.fst", exp / "ci_lstm/final.pt", exp / "ci_lstm/ali_train"]
    for need in needs:
        if not need.exists():
            sys.exit(f"{need} is missing: run recipes/synth/run.sh --size {args.size} --stop-stage "
                     f"{6 if args.cd else 3}")
    opts: tuple[str, ...] = ()
    graph = data / "lang/HCG.fst"
    if args.cd:
        opts = ("--tree", str(tree / "tree.json"), "--ali-train", str(exp / "ci_lstm/ali_train"),
                "--ali-dev", str(exp / "ci_lstm/ali_dev"), "--init-from", str(exp / "ci_lstm"))
        graph = tree / "HCG.fst"
    base = recipe_conf(kind, args.size)
    out = exp / "epochs"
    rows = []
    for epochs in points:
        rows.append(epoch_point(out / kind, base, data / "train", data, graph, epochs, args.device, opts))
        r = rows[-1]
        print(f"{kind}, {epochs} epochs: dev {r['dev']:.2f} test {r['test']:.2f} unseen {r['test_unseen']:.2f}, "
              f"{r['train_s']:.0f} s training", flush=True)
    report(out / f"RESULTS_{kind}.md", f"PER against epochs ({kind.upper()} model, {args.size} corpus)",
           table(rows, kind.upper()),
           f"{base.relative_to(ROOT)} trained on to each epoch count (one run, resumed); PER on 39 phones "
           "(silence scored), phone bigram HMM, acoustic scale tuned on dev. train s: the epochs' seconds "
           "(each includes its dev pass). An epoch count past the point where the learning rate fell below "
           "min_lr reads as the epochs actually run.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
