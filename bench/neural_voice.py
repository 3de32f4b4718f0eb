"""Systems trained and tuned differently, read on the same sets: WER (and PER where the set has
phone transcripts) on dev, test, test_unseen and the neural voice's test_neural, the decoding
weights each used, and the paired bootstrap interval of chosen differences.

A system is a model dir whose decodes are in it (``decode_words_<set>/``, ``decode_<set>/``,
``decode_rnn_<set>/``: what recipes/synth/run.sh writes); the same model tuned two ways is two
copies of its dir, each decoded with its own weights. All systems are scored against one data
dir root's references, so their utterance ids must match (the synthetic corpus keeps every flite
utterance's id and words when the neural voice is added).

    python bench/neural_voice.py --data data/synth_medium \\
        --system old=exp_old/cd_lstm_1000 --system new=exp/synth_medium/cd_lstm_1000 --compare old,new
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Optional

import yaml

SETS = ("dev", "test", "test_unseen", "test_neural")


def _scores(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {} if path.is_file() else {}


def _fmt(value, spec: str = ".2f") -> str:
    return "—" if value is None else format(value, spec)


def system_row(name: str, model: Path, sets: list[str]) -> str:
    """One table row: WER per set, HMM and RNN PER per set, and the word decoder's weights."""
    wer = [_scores(model / f"decode_words_{s}" / "scores.yaml").get("wer") for s in sets]
    per = [_scores(model / f"decode_{s}" / "scores.yaml").get("per") for s in sets]
    rnn = [_scores(model / f"decode_rnn_{s}" / "scores.yaml").get("per") for s in sets]
    words = _scores(model / "word_decode.yaml")
    weights = f"{_fmt(words.get('acwt'), 'g')} / {_fmt(words.get('word_penalty'), 'g')}"
    cells = [_fmt(v) for v in wer] + [_fmt(v) for v in per] + [_fmt(v) for v in rnn]
    return f"| {name} | " + " | ".join(cells) + f" | {weights} |"


def compare(a: Path, b: Path, data: Path, set_name: str) -> Optional[tuple[float, float, tuple[float, float], float]]:
    """(WER a, WER b, 95% interval of b − a, P(b better)) on one set; None without both decodes."""
    from asr.score.per import read_transcripts, score_words
    from asr.score.significance import paired_bootstrap

    hyps = [m / f"decode_words_{set_name}" / "hyp.txt" for m in (a, b)]
    if not all(h.is_file() for h in hyps):
        return None
    refs = read_transcripts(data / set_name / "text")
    cmp = paired_bootstrap(*(score_words(refs, read_transcripts(h)) for h in hyps))
    return cmp.rate_a, cmp.rate_b, cmp.interval, cmp.p_b_better


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--system", action="append", required=True, metavar="NAME=MODEL_DIR",
                   help="a model dir holding its decodes, repeatable (rows in this order)")
    p.add_argument("--data", type=Path, required=True, help="the data dir root whose <set>/text are the references")
    p.add_argument("--sets", nargs="+", default=list(SETS), help="sets to report (default: %(default)s)")
    p.add_argument("--compare", action="append", default=[], metavar="A,B",
                   help="two systems' names: the bootstrap interval of B − A's WER on each set, repeatable")
    args = p.parse_args(argv)
    systems: dict[str, Path] = {}
    for spec in args.system:
        name, sep, model = spec.partition("=")
        if not sep or not name or not model:
            p.error(f"--system {spec!r}: expected NAME=MODEL_DIR")
        if not Path(model).is_dir():
            sys.exit(f"--system {spec!r}: {model} is not a directory")
        systems[name] = Path(model)
    pairs = []
    for spec in args.compare:
        names = spec.split(",")
        if len(names) != 2 or any(n not in systems for n in names):
            p.error(f"--compare {spec!r}: expected A,B, two names given with --system")
        pairs.append(names)
    print("python " + " ".join(shlex.quote(a) for a in (sys.argv if argv is None else ["bench/neural_voice.py", *argv])))
    head = [f"{s} WER" for s in args.sets] + [f"{s} PER" for s in args.sets] + [f"{s} PER RNN" for s in args.sets]
    print("| system | " + " | ".join(head) + " | acwt / word penalty |")
    print("|---" * (len(head) + 2) + "|")
    for name, model in systems.items():
        print(system_row(name, model, args.sets))
    if pairs:
        print("\n| A → B | set | WER A | WER B | B − A [95% interval] | B better in |\n|---|---|---:|---:|---|---:|")
    for a, b in pairs:
        for set_name in args.sets:
            r = compare(systems[a], systems[b], args.data, set_name)
            if r is None:
                print(f"{a} / {b} / {set_name}: no word decode of both, skipped", file=sys.stderr)
                continue
            wa, wb, (lo, hi), pb = r
            print(f"| {a} → {b} | {set_name} | {wa:.2f} | {wb:.2f} | {wb - wa:+.2f} [{lo:+.2f}, {hi:+.2f}] "
                  f"| {100 * pb:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
