#!/usr/bin/env python3
"""Wall-clock time of generating a synthetic corpus with flite, and of the
rerun on the finished corpus (which should return at once).

    python bench/synth_speed.py [--size tiny] [--num-jobs 2] [--seed 0]

Measured ~7 s for the tiny corpus on 2 idle cores (much more on a loaded
machine); the rerun takes milliseconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from asr.synth.corpus import SIZES, generate_corpus


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="tiny", choices=sorted(SIZES))
    p.add_argument("--num-jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / args.size
        start = time.perf_counter()
        generate_corpus(out, args.size, seed=args.seed, num_jobs=args.num_jobs)
        fresh = time.perf_counter() - start
        n_utts = sum(1 for _ in out.glob("*/DR*/*/*.WAV"))
        start = time.perf_counter()
        generate_corpus(out, args.size, seed=args.seed, num_jobs=args.num_jobs)
        rerun = time.perf_counter() - start
    print(f"{args.size} corpus, {n_utts} utterances, {args.num_jobs} jobs: {fresh:.1f} s "
          f"({n_utts / fresh:.1f} utterances/s)")
    print(f"rerun on the complete corpus: {rerun * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
