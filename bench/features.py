#!/usr/bin/env python3
"""In-domain against unseen-voice PER, one row per front end.

Each row recomputes the features of train, dev, test and test_unseen with
``asr make-feats`` options (per-utterance speech-frame CMVN throughout), trains
the recipe's CI model on them (``recipes/synth/conf/ci_lstm[_<size>].yaml``, speed
perturbation included, so its copies are remade with the row's features),
tunes the acoustic scale on dev and decodes test and test_unseen with the
phone bigram. ``fbank`` is the recipe's front end (40 log-mel bins) on the
recipe's own features, i.e. make demo's CI model (copy ``exp/synth_<size>/ci_lstm`` to
``exp/synth_<size>/features/ci_fbank`` to reuse it rather than train it again).

Run the recipe's stages 0-3 first, e.g. ``recipes/synth/run.sh --size small
--stop-stage 3``, then:
    python bench/features.py [--size small] [--rows fbank,mfcc,fbank_energy,fbank_pitch]
Features go to ``data/synth_<size>/features/<row>/``, models to
``exp/synth_<size>/features/ci_<row>`` (a finished row is reused); the table is
printed and written beside them as RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runs import ROOT, asr, decode_eval_sets, feature_variant, pick_rows, recipe_conf, report  # noqa: E402

#: ``asr make-feats`` options of each row.
ROWS: dict[str, list[str]] = {
    "fbank": [],
    "mfcc": ["--kind", "mfcc"],
    "fbank_energy": ["--energy"],
    "fbank_pitch": ["--pitch"],
    "fbank_energy_pitch": ["--energy", "--pitch"],
}


def train_and_decode(row: str, args, data: Path, out: Path) -> dict:
    """Make the row's features (once), train its model (or reuse it), decode dev, test, test_unseen."""
    start = time.time()
    rdata = feature_variant(data, f"features/{row}", ROWS[row]) if ROWS[row] else data  # fbank: the recipe's
    feats_s = time.time() - start
    model = out / f"ci_{row}"
    asr(out / f"ci_{row}.train.log", "train", str(rdata / "train"), str(rdata / "dev"), str(model),
        "--lang", str(data / "lang"), "--conf", str(recipe_conf("ci", args.size)), "--device", args.device)
    per = decode_eval_sets(model, rdata, data / "lang/HCG.fst", out / f"ci_{row}", args.device)
    history = yaml.safe_load((model / "history.yaml").read_text())
    dim = yaml.safe_load((model / "model.yaml").read_text())["input_dim"]
    return {"row": row, "dim": dim, **per, "epochs": len(history), "train_s": sum(r["seconds"] for r in history),
            "dev_frame_acc": 100 * max(r["dev_frame_acc"] for r in history), "feats_s": feats_s}


def table(results: list[dict]) -> str:
    lines = ["| CI model, features | dim | dev frame acc | dev PER | test PER | unseen PER | gap | epochs | train s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['row']} | {r['dim']} | {r['dev_frame_acc']:.1f} | {r['dev']:.2f} | {r['test']:.2f} | "
                     f"{r['test_unseen']:.2f} | {r['test_unseen'] - r['test']:.2f} | {r['epochs']} | "
                     f"{r['train_s']:.0f} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="small")
    p.add_argument("--rows", default="fbank,mfcc,fbank_energy,fbank_pitch",
                   help=f"comma-separated, from {', '.join(ROWS)}")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    rows = pick_rows(p, args.rows, ROWS)
    data, out = ROOT / f"data/synth_{args.size}", ROOT / f"exp/synth_{args.size}/features"
    if not (data / "test_unseen/wav.scp").is_file() or not (data / "lang/HCG.fst").is_file():
        sys.exit(f"{data} has no test_unseen or lang: run recipes/synth/run.sh --size {args.size} --stop-stage 3")
    results = []
    for row in rows:
        results.append(train_and_decode(row, args, data, out))
        r = results[-1]
        print(f"{row}: dev {r['dev']:.2f} test {r['test']:.2f} unseen {r['test_unseen']:.2f}, "
              f"{r['train_s']:.0f} s training", flush=True)
    report(out / "RESULTS.md", f"Front ends on in-domain and unseen voices ({args.size} corpus)", table(results),
           f"CI BLSTM of {recipe_conf('ci', args.size).relative_to(ROOT)} (speed perturbation) on each front end, per-utterance "
           "speech-frame CMVN; PER on 39 phones (silence scored), phone bigram HMM, acoustic scale tuned on dev. "
           "dev frame acc: the best epoch's. gap: unseen - test.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
