#!/usr/bin/env python3
"""PER on a synthetic test set: our HMM decoder, plain framewise argmax, and
pocketsphinx's phone decoder (allphone mode) on the same audio, side by side.

Run the recipe first (``make demo``), then:
    python bench/per_synth.py [--size medium]
Prints PER (39 phones, silence scored) and the real-time factor of each, on
the in-domain test set and on test_unseen (voices held out of training).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pocketsphinx_peer import decode_phones as ps_decode_phones  # noqa: E402
from pocketsphinx_peer import pocketsphinx_phone_decoder  # noqa: E402

from asr.audio import read_audio  # noqa: E402
from asr.corpus.datadir import read_datadir  # noqa: E402
from asr.decode.hybrid import HybridModel, argmax_phones  # noqa: E402
from asr.steps.decode import decode_with, set_features  # noqa: E402
from asr.score.per import score_phones  # noqa: E402
from asr.phones.timit import timit_lang  # noqa: E402

TIMIT = timit_lang()  # the synthetic corpus's lang: PER folded to 39


def time_it(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def model_rows(model_dir: Path, data_dir: Path, refs: dict) -> list[tuple[str, object, float]]:
    """HMM and argmax rows of one model: (name, score result, seconds)."""
    model = HybridModel.load(model_dir, torch.device("cpu"))
    decoder, acwt = model.decoder(), model.acwt
    feats = set_features(model, data_dir)
    post, t_nn = time_it(lambda: {u: model.posteriors(x) for u, x in feats.items()})
    hmm, t_search = time_it(lambda: decode_with(model, decoder, post, acwt).hyps)
    argmax, t_argmax = time_it(lambda: {u: argmax_phones(post[u], model.context) for u in post})
    name = f"{model_dir.name} ({model.context.num_pdfs} pdfs, acwt {acwt})"
    return [(f"{name} + HMM", score_phones(refs, hmm, TIMIT), t_nn + t_search),
            (f"{name} argmax", score_phones(refs, argmax, TIMIT), t_nn + t_argmax)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="medium")
    p.add_argument("--exp", type=Path, action="append",
                   help="model dir, repeatable (default exp/synth_<size>/ci_lstm and every cd_lstm_*)")
    p.add_argument("--data", type=Path, action="append",
                   help="test data dir, repeatable (default data/synth_<size>/test and test_unseen)")
    args = p.parse_args()
    exp = Path(f"exp/synth_{args.size}")
    model_dirs = args.exp or [exp / "ci_lstm", *sorted(exp.glob("ci_lstm_realigned")),
                              *sorted(exp.glob("cd_lstm_*"))]
    data_dirs = args.data or [d for d in (Path(f"data/synth_{args.size}/{n}") for n in ("test", "test_unseen"))
                              if d.is_dir()]
    missing = [d for d in model_dirs if not (d / "bundle.yaml").is_file()]
    missing += [d for d in data_dirs if not (d / "feats.scp").is_file()]
    if missing or not data_dirs:
        sys.exit(f"{missing or 'no test set'} missing: run the recipe first (make demo SIZE={args.size})")
    torch.set_num_threads(2)
    for data_dir in data_dirs:
        print_table(data_dir, model_dirs)
    return 0


def print_table(data_dir: Path, model_dirs: list[Path]) -> None:
    """PER and RTF of every model (HMM and argmax) and of pocketsphinx on one test set."""
    dd = read_datadir(data_dir, require_phones=True)
    refs = {u: dd.phone_text(u) for u in dd.utts}
    audio = {u: read_audio(dd.wav[u]) for u in dd.utts}
    seconds = sum(a.seconds for a in audio.values())

    rows = [row for d in model_dirs for row in model_rows(d, data_dir, refs)]
    ps = pocketsphinx_phone_decoder()
    peer, t_peer = time_it(lambda: {u: ps_decode_phones(ps, a.samples, a.rate) for u, a in audio.items()})
    rows.append(("pocketsphinx allphone (en-us-phone.lm)", score_phones(refs, peer, TIMIT), t_peer))
    print(f"test set: {data_dir} ({len(refs)} utterances, {seconds:.0f} s of audio); "
          f"acoustic scales chosen on dev; CPU, 2 threads")
    print(f"{'system':60s} {'PER %':>7s} {'sub':>5s} {'del':>5s} {'ins':>5s} {'RTF':>7s}")
    for name, result, secs in rows:
        c = result.counts
        print(f"{name:60s} {c.rate:7.2f} {c.sub:5d} {c.dels:5d} {c.ins:5d} {secs / seconds:7.4f}")
    peer_per = rows[-1][1].counts.rate
    for name, result, _ in rows[:-1:2]:
        print(f"PER ratio {name} / pocketsphinx: {result.counts.rate / peer_per:.2f}")
    print()


if __name__ == "__main__":
    sys.exit(main())
