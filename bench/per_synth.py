#!/usr/bin/env python3
"""PER on a synthetic test set: our HMM decoder, plain framewise argmax, and
pocketsphinx's phone decoder (allphone mode) on the same audio, side by side.

Run the recipe first (``make demo``), then:
    python bench/per_synth.py [--size small]
Prints PER (39 phones, silence scored) and the real-time factor of each.
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


def time_it(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="small")
    p.add_argument("--exp", type=Path, help="model dir (default exp/synth_<size>/ci_lstm)")
    p.add_argument("--data", type=Path, help="test data dir (default data/synth_<size>/test)")
    args = p.parse_args()
    model_dir = args.exp or Path(f"exp/synth_{args.size}/ci_lstm")
    data_dir = args.data or Path(f"data/synth_{args.size}/test")
    if not (model_dir / "final.pt").is_file() or not (data_dir / "feats.scp").is_file():
        sys.exit(f"{model_dir} or {data_dir} missing: run the recipe first (make demo SIZE={args.size})")
    torch.set_num_threads(2)
    dd = read_datadir(data_dir, require_phones=True)
    refs = {u: dd.phone_text(u) for u in dd.utts}
    audio = {u: read_audio(dd.wav[u]) for u in dd.utts}
    seconds = sum(a.seconds for a in audio.values())

    model = HybridModel.load(model_dir, torch.device("cpu"))
    decoder, acwt = model.decoder(), model.acwt
    feats = set_features(model, data_dir)
    post, t_nn = time_it(lambda: {u: model.posteriors(x) for u, x in feats.items()})
    hmm, t_search = time_it(lambda: decode_with(model, decoder, post, acwt).hyps)
    argmax, t_argmax = time_it(lambda: {u: argmax_phones(post[u], model.phones) for u in post})
    ps = pocketsphinx_phone_decoder()
    peer, t_peer = time_it(lambda: {u: ps_decode_phones(ps, a.samples, a.rate) for u, a in audio.items()})

    rows = [
        ("LSTM + HMM (phone bigram WFST)", score_phones(refs, hmm), t_nn + t_search),
        ("LSTM framewise argmax (no HMM)", score_phones(refs, argmax), t_nn + t_argmax),
        ("pocketsphinx allphone (en-us-phone.lm)", score_phones(refs, peer), t_peer),
    ]
    print(f"test set: {data_dir} ({len(refs)} utterances, {seconds:.0f} s of audio); "
          f"model {model_dir} (acwt {acwt} chosen on dev); CPU, 2 threads")
    print(f"{'system':42s} {'PER %':>7s} {'sub':>5s} {'del':>5s} {'ins':>5s} {'RTF':>7s}")
    for name, result, secs in rows:
        c = result.counts
        print(f"{name:42s} {c.rate:7.2f} {c.sub:5d} {c.dels:5d} {c.ins:5d} {secs / seconds:7.4f}")
    ours, peer_per = rows[0][1].counts.rate, rows[2][1].counts.rate
    print(f"PER ratio ours / pocketsphinx: {ours / peer_per:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
