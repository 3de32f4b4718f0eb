#!/usr/bin/env python3
"""PER against the amount of training speech and the training time it costs.

Trains the recipe's CI model (``recipes/synth/conf/ci_lstm.yaml``: the BLSTM,
speed perturbation) on the first N training speakers of one corpus, for
several N, and decodes it after several epoch counts. Every point is scored
on the same dev (acoustic scale tuned there), test and test_unseen sets with
the same phone bigram (from the full training texts), so that only the
acoustic model's data and epochs change along the curve. The speakers come
in the corpus's own order, in which the flite voices take turns: every
subset of a multiple of the voice count holds each voice equally.

A model continued to more epochs is the run that had asked for them from the
start (the trainer resumes from its last checkpoint, and the learning-rate
schedule does not depend on the number of epochs), so one training per N
gives every epoch point of that N; each point's bundle is kept in
``e<epochs>/`` beside it.

Run the recipe's stages 0-3 for the corpus first, e.g.
``recipes/synth/run.sh --size timit --stop-stage 3``, then:
    python bench/data_size.py [--size timit] [--plan 48:4,8,12,20 144:4,8,12 462:2,4,8]
Models go to ``exp/synth_<size>/data_size/spk<N>``; the table is printed and
written there as RESULTS.md. ``--plot`` also draws it (PNG, matplotlib).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runs import ROOT, asr, copies_seconds, epoch_counts, epoch_point, report  # noqa: E402

from asr.corpus.datadir import read_datadir  # noqa: E402
from asr.synth.corpus import DEFAULT_UNSEEN_VOICES, SIZES, make_speakers  # noqa: E402


def parse_plan(text: list[str]) -> dict[int, list[int]]:
    """``["48:4,8", "462:2,4"]`` → {48: [4, 8], 462: [2, 4]} (speakers: epoch points, ascending)."""
    plan = {}
    for item in text:
        spk, sep, epochs = item.partition(":")
        try:
            points = epoch_counts(epochs)
            if not sep or int(spk) < 1:
                raise ValueError
        except ValueError:
            raise SystemExit(f"--plan {item!r}: expected SPEAKERS:EPOCHS,EPOCHS,... e.g. 48:4,8,20") from None
        plan[int(spk)] = points
    return plan


def speaker_order(size: str, seed: int, data: Path) -> list[str]:
    """The corpus's training speakers in generation order (the voices take turns)."""
    spks = [s.spk_id.lower() for s in make_speakers(SIZES[size], seed, DEFAULT_UNSEEN_VOICES)
            if s.partition == "train"]
    have = set(read_datadir(data / "train").spk2utt)
    if set(spks) != have:
        raise SystemExit(f"{data}/train does not hold the speakers of the {size} corpus (seed {seed}); "
                         "was it made with other settings?")
    return spks


def subset(data: Path, out: Path, speakers: list[str]) -> Path:
    """The train data dir of ``speakers`` (made once)."""
    dst = out / f"train_spk{len(speakers)}"
    if not (dst / "feats.yaml").is_file():
        lst = out / f"train_spk{len(speakers)}.list"
        lst.parent.mkdir(parents=True, exist_ok=True)
        lst.write_text("".join(s + "\n" for s in speakers))
        asr(out / "subset.log", "subset-data", str(data / "train"), str(dst), "--speakers", str(lst))
    return dst


def table(rows: list[dict]) -> str:
    lines = ["| train speakers | utterances | speech h | epochs | dev frame acc | dev PER | test PER | unseen PER "
             "| train s | copies s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['speakers']} | {r['utts']} | {r['hours']:.2f} | {r['epochs_run']} | "
                     f"{r['dev_frame_acc']:.1f} | {r['dev']:.2f} | {r['test']:.2f} | {r['test_unseen']:.2f} | "
                     f"{r['train_s']:.0f} | {r['copies_s']:.0f} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    """Dev and unseen PER against training seconds, one line per speaker count."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for spk in sorted({r["speakers"] for r in rows}):
        rs = [r for r in rows if r["speakers"] == spk]
        hours = rs[0]["hours"]
        line, = ax.plot([r["train_s"] / 60 for r in rs], [r["dev"] for r in rs], "o-",
                        label=f"{spk} speakers ({hours:.1f} h), dev")
        ax.plot([r["train_s"] / 60 for r in rs], [r["test_unseen"] for r in rs], "s--", color=line.get_color(),
                label=f"{spk} speakers, unseen voice")
    ax.set_xlabel("training minutes (2 CPU cores)")
    ax.set_ylabel("PER %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="timit", choices=sorted(SIZES))
    p.add_argument("--seed", type=int, default=0, help="the corpus's seed (recipe --seed)")
    p.add_argument("--plan", nargs="+", default=["48:4,8,12,20", "144:4,8,12", "462:2,4,8"],
                   help="SPEAKERS:EPOCHS,... points; speakers are the corpus's first N training speakers")
    p.add_argument("--device", default="auto")
    p.add_argument("--plot", action="store_true", help="also write data_size.png")
    args = p.parse_args()
    plan = parse_plan(args.plan)
    data, out = ROOT / f"data/synth_{args.size}", ROOT / f"exp/synth_{args.size}/data_size"
    for need in ("train/feats.scp", "dev/feats.scp", "test_unseen/feats.scp", "lang/HCG.fst"):
        if not (data / need).is_file():
            sys.exit(f"{data / need} is missing: run recipes/synth/run.sh --size {args.size} --stop-stage 3")
    order = speaker_order(args.size, args.seed, data)
    rows = []
    for n_spk, points in plan.items():
        if n_spk > len(order):
            sys.exit(f"--plan: the {args.size} corpus has {len(order)} training speakers, not {n_spk}")
        train = subset(data, out, order[:n_spk]) if n_spk < len(order) else data / "train"
        dd = read_datadir(train, require_phones=True)
        hours = sum(segs[-1][1] for segs in dd.phone_segments.values()) / 3600
        for epochs in points:
            r = epoch_point(out / f"spk{n_spk}", ROOT / "recipes/synth/conf/ci_lstm.yaml", train, data,
                            data / "lang/HCG.fst", epochs, args.device)
            r.update(speakers=n_spk, utts=len(dd.utts), copies_s=copies_seconds(train),
                     hours=hours)
            rows.append(r)
            print(f"{n_spk} speakers, {epochs} epochs: dev {r['dev']:.2f} test {r['test']:.2f} "
                  f"unseen {r['test_unseen']:.2f}, {r['train_s']:.0f} s training", flush=True)
    report(out / "RESULTS.md", f"PER against training data and time ({args.size} corpus)", table(rows),
           "CI BLSTM of recipes/synth/conf/ci_lstm.yaml (speed perturbation), trained on the corpus's first N "
           "training speakers; PER on 39 phones (silence scored), one phone bigram HMM for every point, acoustic "
           "scale tuned on dev. speech h: the training audio (without its speed copies). train s: the epochs' "
           "seconds; copies s: making the speed copies (once per N).")
    if args.plot:
        plot(rows, out / "data_size.png")
        print(f"plot: {out / 'data_size.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
