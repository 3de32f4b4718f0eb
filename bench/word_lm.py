#!/usr/bin/env python3
"""The demo word LM, old defaults against new: perplexity, OOV rate, n-gram
counts, ARPA size and build seconds on Kaldi ``text`` files.

Builds the LM of each setting (text sampled from pocketsphinx's en-us LM with
the dev/test prompts excluded, then kaldingram training and entropy pruning,
as ``asr prepare-lang`` does) in WORK_DIR/<name>/ and scores it:

    python bench/word_lm.py --texts data/dev/text data/test/text \\
        --train-text data/train/text [--sentences 2000 4000] [--ceiling]

or scores LMs that exist (lang dirs holding lm.arpa, or ARPA files):

    python bench/word_lm.py --lm data/lang_words /tmp/new/lm.arpa --texts data/dev/text

A text is named by the dir that holds it (data/dev/text -> dev). The texts
given with --texts are always excluded from the sampled LM text (held-out
prompts never enter it), as are those of --exclude. --ceiling adds the
perplexity of the source LM itself, renormalised over the same vocabulary
(the best a sampled-text LM can approach; ~20 ms per distinct history).

Measured on synth_medium with its training transcripts (--train-text), one
process while another job trained on the other core (10 min 24 s in all):

    LM        sents   prune  2-grams  3-grams    MB  build s  dev  test  test_unseen ppl
    old       20000   1e-07    74023    89762   4.9     46.7  135.9  200.6  166.9
    new      400000   2e-07   376761   253321  17.7    554.3   90.9  114.8   95.5
    source        -       -        -        -     -     20.1   65.7   92.6   71.6

(no OOVs; "source" is the ceiling, its seconds are scoring seconds). Both LMs
are byte-identical to those that ``asr prepare-lang`` builds with the same
settings and inputs.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from asr.errors import AsrError
from asr.lang import word_lm as W
from asr.lang.ngram import read_arpa_counts

#: The defaults before the larger LM text (sentences, pruning threshold).
OLD_SENTENCES, OLD_PRUNE = 20_000, 1e-7


def text_name(path: Path) -> str:
    """data/dev/text -> dev; a file not called ``text`` -> its stem."""
    return path.parent.name if path.name == "text" and path.parent.name else path.stem


def lm_name(path: Path) -> str:
    """A row's name: a lang dir's name, or an ARPA file's dir and stem (n400k/p2e-07.arpa -> n400k/p2e-07)."""
    return path.name if path.is_dir() else f"{path.parent.name}/{path.stem}".lstrip("/")


def arpa_of(path: Path) -> Path:
    """An ARPA file, or a lang dir's lm.arpa."""
    return path / W.LM_ARPA if path.is_dir() else path


def build(work: Path, name: str, sentences: int, prune: float, args: argparse.Namespace) -> dict:
    """Sample the text and train the LM of one setting in ``work/name``; return figures."""
    out = work / name
    out.mkdir(parents=True, exist_ok=True)
    exclude = W.read_excluded_prompts([*args.texts, *args.exclude])
    extra = W.read_text_sentences(args.train_text) if args.train_text else []
    text = W.sample_lm_text(out / W.LM_TEXT, sentences, exclude, args.seed, args.vocab_size, args.nj,
                            extra_sentences=extra, bigrams_cache=work / W.LM_BIGRAMS)
    lm = W.train_word_lm(out / W.LM_TEXT, out / W.LM_ARPA, args.order, prune)
    return {"name": name, "arpa": out / W.LM_ARPA, "sentences": sentences, "prune": prune,
            "tokens": text["tokens"], "sample_s": text["sample_seconds"],
            "build_s": text["seconds"] + lm["train_seconds"] + lm["prune_seconds"]}


def describe(row: dict, texts: dict[str, Path]) -> dict:
    """Add counts, ARPA size and the report on ``texts`` to a row naming an ARPA file."""
    arpa = Path(row["arpa"])
    row["counts"] = read_arpa_counts(arpa)
    row["mb"] = arpa.stat().st_size / 1e6
    row["report"] = W.lm_report(arpa, texts)
    return row


def print_rows(rows: list[dict], texts: dict[str, Path]) -> None:
    """One line per LM: sentences, threshold, n-grams per order, ARPA MB, build seconds
    (the ceiling's: scoring seconds), then perplexity and OOV % per text; '-' where not known."""
    head = f"{'LM':<16} {'sents':>8} {'prune':>8} {'1-grams':>8} {'2-grams':>9} {'3-grams':>9} {'MB':>6} {'build s':>8}"
    print(head + "".join(f" {n + ' ppl':>14} {'OOV%':>5}" for n in texts))
    for r in rows:
        c = r.get("counts", {})
        mb = f"{r['mb']:.1f}" if "mb" in r else "-"
        secs = f"{r['build_s']:.1f}" if "build_s" in r else "-"
        line = (f"{r['name']:<16} {r.get('sentences', '-')!s:>8} {r.get('prune', '-')!s:>8} "
                f"{c.get(1, '-')!s:>8} {c.get(2, '-')!s:>9} {c.get(3, '-')!s:>9} {mb:>6} {secs:>8}")
        for n in texts:
            rep = r["report"][n]
            line += f" {rep['ppl']:>14.1f} {100 * rep['oov_rate']:>5.2f}"
        print(line)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--texts", type=Path, nargs="+", required=True,
                   help="Kaldi text files (<utt> words...) to score on; excluded from the sampled LM text")
    p.add_argument("--lm", type=Path, nargs="+",
                   help="score these LMs (lang dirs with lm.arpa, or ARPA files) instead of building")
    p.add_argument("--train-text", type=Path, help="Kaldi text whose sentences join the LM text (prepare-lang's "
                   "training transcripts); default none")
    p.add_argument("--exclude", type=Path, nargs="*", default=[],
                   help="more Kaldi text files whose sentences never enter the LM text")
    p.add_argument("--sentences", type=int, nargs=2, metavar=("OLD", "NEW"),
                   default=[OLD_SENTENCES, W.DEFAULT_NUM_SENTENCES],
                   help=f"sampled sentences of the old and new LM (default {OLD_SENTENCES} "
                        f"{W.DEFAULT_NUM_SENTENCES}, the defaults; small values for a quick run)")
    p.add_argument("--prune", type=float, nargs=2, metavar=("OLD", "NEW"), default=[OLD_PRUNE, W.DEFAULT_PRUNE],
                   help=f"kaldingram pruning thresholds (default {OLD_PRUNE:g} {W.DEFAULT_PRUNE:g})")
    p.add_argument("--vocab-size", type=int, default=W.DEFAULT_VOCAB_SIZE, help="LM vocabulary (default %(default)s)")
    p.add_argument("--order", type=int, default=W.DEFAULT_ORDER, help="n-gram order (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="LM text seed (default %(default)s)")
    p.add_argument("--nj", type=int, default=1, help="sampling processes (the text does not depend on it)")
    p.add_argument("--work-dir", type=Path, default=Path("exp/bench_word_lm"),
                   help="where the LMs are built (default %(default)s; reused, not cleaned)")
    p.add_argument("--ceiling", action="store_true",
                   help="also the source LM's perplexity restricted to the vocabulary")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    texts = {text_name(t): t for t in args.texts}
    if len(texts) != len(args.texts):
        p.error(f"--texts: two files share a name: {[str(t) for t in args.texts]}")
    if args.lm:
        rows = [{"name": lm_name(a), "arpa": arpa_of(a)} for a in args.lm]
    else:
        if args.seed < 0 or min(args.sentences) < 0:
            p.error("--sentences and --seed must be >= 0")
        rows = [build(args.work_dir, name, n, pr, args)
                for name, n, pr in zip(("old", "new"), args.sentences, args.prune)]
    rows = [describe(r, texts) for r in rows]
    if args.ceiling:
        t0 = time.perf_counter()
        rows.append({"name": "source", "report": W.source_lm_report(texts, args.vocab_size),
                     "build_s": time.perf_counter() - t0})
    print_rows(rows, texts)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except AsrError as exc:  # DataError (e.g. no pocketsphinx model), GraphError (a bad text or ARPA file)
        sys.exit(f"error: {exc}")
