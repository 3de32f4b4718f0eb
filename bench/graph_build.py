#!/usr/bin/env python3
"""Wall-clock time of building the phone decoding graph (phone bigram with
kaldingram → G with kaldilm → H∘C∘G with kaldifst) from random 48-phone text,
and of the up-to-date rerun that skips every step.

    python bench/graph_build.py [--utts 300] [--order 2] [--repeat 3]

Measured ~0.25 s for a fresh build (mostly the two child processes) and a few
milliseconds for the skipped rerun.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from asr.hmm.context import ContextDependency
from asr.lang.graph import load_graph, make_decoding_graph
from asr.phones.timit import PHONES48


def write_phone_text(path: Path, num_utts: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    lines = []
    for u in range(num_utts):
        body = [rng.choice(PHONES48) for _ in range(rng.randint(5, 40))]
        lines.append(f"utt{u:04d} " + " ".join(["sil", *body, "sil"]))
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--utts", type=int, default=300, help="training sentences for the phone LM")
    p.add_argument("--order", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3, help="fresh builds to time (the best is printed)")
    p.add_argument("--tree", type=Path, help="a CD model's tree.json (default: CI, 144 pdfs)")
    args = p.parse_args()
    ctx = ContextDependency.load(args.tree) if args.tree else ContextDependency.ci(list(PHONES48))
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "text"
        write_phone_text(text, args.utts)
        fresh = []
        for i in range(args.repeat):
            start = time.perf_counter()
            graph = make_decoding_graph(Path(tmp) / f"lang{i}", ctx, text, order=args.order)
            fresh.append(time.perf_counter() - start)
        start = time.perf_counter()
        make_decoding_graph(Path(tmp) / "lang0", ctx, text, order=args.order)
        skipped = time.perf_counter() - start
        fst = load_graph(graph)
        arcs = sum(fst.num_arcs(s) for s in range(fst.num_states))
    print(f"H∘C∘G for {ctx.num_pdfs} pdfs (context width {ctx.width}), phone {args.order}-gram: "
          f"{fst.num_states} states, {arcs} arcs")
    print(f"fresh build: {min(fresh):.3f} s (best of {args.repeat}; all: {', '.join(f'{t:.3f}' for t in fresh)})")
    print(f"up-to-date rerun: {skipped * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
