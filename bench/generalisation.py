#!/usr/bin/env python3
"""In-domain against unseen-voice PER, one row per augmentation setting.

Each row trains the recipe's acoustic model (CI by default; ``--cd`` for the
CD model on the recipe's tree and realignment, started from the same row's
CI model) with one ``augment:`` setting added to its training YAML, tunes
the acoustic scale on dev, and decodes the in-domain test set and
``test_unseen`` (voices held out of training and dev) with the phone bigram.
The row ``speaker-cmvn`` is the model as it was before speech-frame CMVN:
per-speaker statistics over all frames, no augmentation.

Run the recipe's stages 0-3 first (stages 0-6 for ``--cd``), e.g.
``recipes/synth/run.sh --size small --stop-stage 3``, then:
    python bench/generalisation.py [--size small] [--rows none,speed,...] [--cd]
Models go to ``exp/synth_<size>/generalisation/<ci|cd>_<row>`` (a finished
row is reused); the table is printed and written beside them as RESULTS.md.
Training runs one model at a time: two trainings sharing 2 cores each run
at a fraction of their speed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runs import (ROOT, asr, copies_seconds, decode_eval_sets, feature_variant, pick_rows, recipe_conf,  # noqa: E402
                  report, write_conf)

#: The augment: section of each row (speaker-cmvn also switches the features' CMVN).
ROWS: dict[str, dict] = {
    "speaker-cmvn": {},
    "none": {},
    "speed": {"speed": [0.9, 1.1]},
    "vtlp": {"vtlp": 0.1},
    "reverb_noise": {"reverb_noise": True, "snr_db": [5, 25]},
    "specaugment": {"freq_masks": 2, "freq_width": 8, "time_masks": 2, "time_width": 20},
}
ROWS["all"] = {k: v for row in ROWS.values() for k, v in row.items()}


def train_and_decode(row: str, args, out: Path, data: Path, exp: Path) -> dict:
    """Train one row's model (or reuse it), decode dev (tuning acwt), test and test_unseen."""
    kind = "cd" if args.cd else "ci"
    model = out / f"{kind}_{row}"
    rdata = feature_variant(data, "speaker_cmvn", ["--cmvn", "speaker"]) if row == "speaker-cmvn" else data
    base = recipe_conf(kind, args.size)
    conf = write_conf(base, out / "conf" / f"{kind}_{row}.yaml", augment=ROWS[row])  # replaces the recipe's
    extra: list[str] = []
    if args.cd:
        tree = exp / f"tree_{args.leaves}"
        extra = ["--tree", str(tree / "tree.json"), "--ali-train", str(exp / "ci_lstm/ali_train"),
                 "--ali-dev", str(exp / "ci_lstm/ali_dev"), "--init-from", str(out / f"ci_{row}")]
        graph = tree / "HCG.fst"
    else:
        graph = data / "lang/HCG.fst"
    start = time.time()
    asr(out / f"{kind}_{row}.train.log", "train", str(rdata / "train"), str(rdata / "dev"), str(model),
        "--lang", str(data / "lang"), "--conf", str(conf), "--device", args.device, *extra)
    wall = time.time() - start
    per = decode_eval_sets(model, rdata, graph, out / f"{kind}_{row}", args.device)
    history = yaml.safe_load((model / "history.yaml").read_text())
    copies = copies_seconds(data / "train", _copies(ROWS[row]))
    return {"row": row, **per, "epochs": len(history), "train_s": sum(r["seconds"] for r in history),
            "copies_s": copies, "wall_s": wall}


def _copies(augment: dict) -> list[str]:
    from asr.features.augment import AugmentConfig

    return AugmentConfig.from_dict(augment).copies


def table(results: list[dict], kind: str) -> str:
    lines = [f"| {kind} model, augmentation | dev PER | test PER | unseen PER | gap | epochs | train s | copies s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['row']} | {r['dev']:.2f} | {r['test']:.2f} | {r['test_unseen']:.2f} | "
                     f"{r['test_unseen'] - r['test']:.2f} | {r['epochs']} | {r['train_s']:.0f} | {r['copies_s']:.0f} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="small")
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from {', '.join(ROWS)}")
    p.add_argument("--cd", action="store_true", help="CD models (needs the recipe's stages 0-6)")
    p.add_argument("--leaves", default="1000", help="the recipe's tree size (with --cd)")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    rows = pick_rows(p, args.rows, ROWS)
    data, exp = ROOT / f"data/synth_{args.size}", ROOT / f"exp/synth_{args.size}"
    if not (data / "test_unseen/feats.scp").is_file():
        sys.exit(f"{data}/test_unseen has no features: run recipes/synth/run.sh --size {args.size} --stop-stage 3")
    out = exp / "generalisation"
    results = []
    for row in rows:
        results.append(train_and_decode(row, args, out, data, exp))
        print(f"{row}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                     for k, v in results[-1].items() if k != "row"), flush=True)
    report(out / f"RESULTS_{'cd' if args.cd else 'ci'}.md", f"Generalisation to unseen voices ({args.size} corpus)",
           table(results, "CD" if args.cd else "CI"),
           "PER on 39 phones (silence scored), phone bigram HMM, acoustic scale tuned on dev. "
           "unseen: test_unseen, voices held out of training and dev. gap: unseen - test. "
           "train s: the epochs' seconds; copies s: making the row's augmented copies (made once, shared).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
