#!/usr/bin/env python3
"""WER on a synthetic test set: our hybrid LSTM-HMM systems over the word
trigram, pocketsphinx with the same trigram and a pocketsphinx dictionary of
the same words, and pocketsphinx with its own en-us model and LM, on the
same audio, side by side, in one run.

Run the recipe first (``make demo``), then:
    python bench/wer_synth.py [--size small] [--nj 2]
Prints WER (with sub / del / ins) and the real-time factor of each system:
CPU seconds of this process and its workers (features + network + search,
or pocketsphinx's whole decode) per second of audio. The hybrid systems
use the acoustic scale and word penalty they chose on dev.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pocketsphinx_words import decode_datadir_words, pocketsphinx_dict, word_decoder  # noqa: E402

from asr.corpus.datadir import read_datadir  # noqa: E402
from asr.decode.hybrid import HybridModel  # noqa: E402
from asr.score.per import score_words  # noqa: E402
from asr.steps.decode_words import decode_words_and_score  # noqa: E402


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (decoding workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def hybrid_row(model_dir: Path, data_dir: Path, out_dir: Path, nj: int) -> tuple[str, dict, float]:
    """(name, scores, CPU seconds) of one hybrid system on ``data_dir``."""
    start = cpu_seconds()
    model = HybridModel.load(model_dir, torch.device("cpu"))
    scores = decode_words_and_score(model, data_dir, out_dir / model_dir.name, nj=nj)
    name = f"{model_dir.name} ({model.context.num_pdfs} pdfs) + HCLG trigram"
    return name, scores, cpu_seconds() - start


def pocketsphinx_row(name: str, data_dir: Path, refs: dict, **kwargs) -> tuple[str, dict, float]:
    decoder = word_decoder(**kwargs)
    hyps, _, cpu = decode_datadir_words(decoder, data_dir)
    c = score_words(refs, {u: " ".join(h) for u, h in hyps.items()}).counts
    return name, {"wer": c.rate, "sub": c.sub, "del": c.dels, "ins": c.ins, "words": c.ref_len}, cpu


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="small")
    p.add_argument("--exp", type=Path, action="append",
                   help="model dir, repeatable (default: exp/synth_<size>/ci_lstm and every cd_lstm_*)")
    p.add_argument("--data", type=Path, help="test data dir (default data/synth_<size>/test)")
    p.add_argument("--lang", type=Path, help="word lang dir (default data/synth_<size>/lang_words)")
    p.add_argument("--nj", type=int, default=2, help="decoding processes of the hybrid systems")
    p.add_argument("--out", type=Path, default=Path("exp/bench_wer"), help="where hypotheses go")
    args = p.parse_args()
    exp = Path(f"exp/synth_{args.size}")
    model_dirs = args.exp or [d for d in [exp / "ci_lstm", *sorted(exp.glob("cd_lstm_*"))]
                              if (d / "word_decode.yaml").is_file()]
    data_dir = args.data or Path(f"data/synth_{args.size}/test")
    lang = args.lang or Path(f"data/synth_{args.size}/lang_words")
    if not model_dirs or not (lang / "lm.arpa").is_file():
        print(f"no tuned word systems under {exp} or no {lang}/lm.arpa: run the recipe first "
              f"(make demo)", file=sys.stderr)
        return 1
    dd = read_datadir(data_dir)
    audio_s = sum(sf.info(dd.wav[u]).duration for u in dd.utts)
    rows = [hybrid_row(m, data_dir, args.out, args.nj) for m in model_dirs]
    args.out.mkdir(parents=True, exist_ok=True)
    words = [w.split()[0] for w in (lang / "words.txt").read_text().splitlines()
             if w and not w.startswith(("<eps>", "#"))]
    sources = pocketsphinx_dict(words, args.out / "pocketsphinx.dict")
    rows.append(pocketsphinx_row("pocketsphinx en-us AM + our trigram + same words", data_dir, dd.text,
                                 lm_path=lang / "lm.arpa", dict_path=args.out / "pocketsphinx.dict"))
    rows.append(pocketsphinx_row("pocketsphinx en-us AM + its own en-us LM (72k words)", data_dir, dd.text))
    print(f"{data_dir}: {len(dd.utts)} utterances, {audio_s:.1f} s of audio; vocabulary "
          f"{len(words)} words (pocketsphinx dictionary: {sources.cmudict} from its cmudict, "
          f"{sources.flite} from flite, {sources.skipped} skipped)")
    print(f"{'system':<62} {'WER':>6} {'sub':>5} {'del':>5} {'ins':>5} {'RTF':>7}")
    for name, s, cpu in rows:
        print(f"{name:<62} {s['wer']:6.2f} {s['sub']:5d} {s['del']:5d} {s['ins']:5d} {cpu / audio_s:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
