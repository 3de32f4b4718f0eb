#!/usr/bin/env python3
"""WER on a synthetic test set: our hybrid LSTM-HMM systems over the word
trigram, pocketsphinx with the same trigram and a pocketsphinx dictionary of
the same words, and pocketsphinx with its own en-us model and LM, on the
same audio, side by side, in one run.

Run the recipe first (``make demo``), then:
    python bench/wer_synth.py [--size medium]
Prints WER (with sub / del / ins) and the real-time factor of each system:
CPU seconds per second of audio, once models and graphs are loaded (our
front end (filterbank + VAD) + network + search, one thread by default; pocketsphinx's whole
decode, one thread). The hybrid systems use the acoustic scale and word
penalty they chose on dev.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pocketsphinx_words import decode_datadir_words, pocketsphinx_dict, word_decoder  # noqa: E402

from asr.audio import read_audio  # noqa: E402
from asr.corpus.datadir import read_datadir  # noqa: E402
from asr.decode.hybrid import HybridModel, scaled_loglikes  # noqa: E402
from asr.decode.jobs import SearchOptions, faster_utt, init_worker, worker_args  # noqa: E402
from asr.decode.words import load_word_graph, word_decode_params  # noqa: E402
from asr.features.extract import features_and_speech  # noqa: E402
from asr.score.per import score_words  # noqa: E402
from asr.steps.decode import set_features  # noqa: E402


def hybrid_row(model_dir: Path, data_dir: Path, refs: dict) -> tuple[str, dict, float]:
    """(name, scores, CPU seconds) of one hybrid system, decoded in this process.

    The CPU seconds (``time.process_time``: every thread of the process) cover
    what a recognition costs per file once the model and graph are loaded:
    the filterbank from the audio, the network, and the search
    (FasterDecoder over the graph with the word penalty on it) with the
    acoustic scale and word penalty chosen on dev (the WER uses the recipe's
    per-speaker-normalised features of the same files). ``scores`` also holds
    the seconds of each part (fbank, network, search).
    """
    model = HybridModel.load(model_dir, torch.device("cpu"))
    graph = load_word_graph(model)
    acwt, penalty = word_decode_params(model)
    init_worker(*worker_args(str(graph.path), model.context, SearchOptions(), penalty))
    feats = set_features(model, data_dir)
    dd = read_datadir(data_dir)
    parts = {"fbank": 0.0, "network": 0.0, "search": 0.0}
    start = time.process_time()
    for utt in dd.utts:
        audio = read_audio(dd.wav[utt], rate=model.feat_cfg.sample_rate, resample=True)
        features_and_speech(audio.samples, model.feat_cfg, name=utt)  # features + VAD, as transcribe does
    parts["fbank"] = time.process_time() - start
    hyps = {}
    for utt in dd.utts:
        t0 = time.process_time()
        scores = scaled_loglikes(model.posteriors(feats[utt]), model.log_priors, acwt)
        t1 = time.process_time()
        _, path = faster_utt(utt, scores)
        parts["network"] += t1 - t0
        parts["search"] += time.process_time() - t1
        hyps[utt] = " ".join(graph.symbols(path.word_ids))
    cpu = time.process_time() - start
    c = score_words(refs, hyps).counts
    name = f"{model_dir.name} ({model.context.num_pdfs} pdfs) + HCLG trigram"
    return name, {"wer": c.rate, "sub": c.sub, "del": c.dels, "ins": c.ins, "words": c.ref_len, **parts}, cpu


def pocketsphinx_row(name: str, data_dir: Path, refs: dict, **kwargs) -> tuple[str, dict, float]:
    decoder = word_decoder(**kwargs)
    hyps, _, cpu = decode_datadir_words(decoder, data_dir)
    c = score_words(refs, {u: " ".join(h) for u, h in hyps.items()}).counts
    return name, {"wer": c.rate, "sub": c.sub, "del": c.dels, "ins": c.ins, "words": c.ref_len}, cpu


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="medium")
    p.add_argument("--exp", type=Path, action="append",
                   help="model dir, repeatable (default: exp/synth_<size>/ci_lstm and every cd_lstm_*)")
    p.add_argument("--data", type=Path, action="append",
                   help="test data dir, repeatable (default data/synth_<size>/test and test_unseen)")
    p.add_argument("--lang", type=Path, help="word lang dir (default data/synth_<size>/lang_words)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the network (pocketsphinx uses 1)")
    p.add_argument("--out", type=Path, default=Path("exp/bench_wer"), help="where hypotheses go")
    args = p.parse_args()
    exp = Path(f"exp/synth_{args.size}")
    model_dirs = args.exp or [d for d in [exp / "ci_lstm", *sorted(exp.glob("cd_lstm_*"))]
                              if (d / "word_decode.yaml").is_file()]
    data_dirs = args.data or [d for d in (Path(f"data/synth_{args.size}/{n}") for n in ("test", "test_unseen"))
                              if d.is_dir()]
    lang = args.lang or Path(f"data/synth_{args.size}/lang_words")
    if not model_dirs or not data_dirs or not (lang / "lm.arpa").is_file():
        print(f"no tuned word systems under {exp}, no test set or no {lang}/lm.arpa: run the recipe first "
              f"(make demo)", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    words = [w.split()[0] for w in (lang / "words.txt").read_text().splitlines()
             if w and not w.startswith(("<eps>", "#"))]
    sources = pocketsphinx_dict(words, args.out / "pocketsphinx.dict")
    print(f"vocabulary {len(words)} words (pocketsphinx dictionary: {sources.cmudict} from its cmudict, "
          f"{sources.flite} from flite, {sources.skipped} skipped)")
    for data_dir in data_dirs:
        print_table(data_dir, model_dirs, lang, args.out / "pocketsphinx.dict")
    return 0


def print_table(data_dir: Path, model_dirs: list[Path], lang: Path, ps_dict: Path) -> None:
    """WER and RTF of every word system and of pocketsphinx (two LMs) on one test set."""
    dd = read_datadir(data_dir)
    audio_s = sum(sf.info(dd.wav[u]).duration for u in dd.utts)
    rows = [hybrid_row(m, data_dir, dd.text) for m in model_dirs]
    rows.append(pocketsphinx_row("pocketsphinx en-us AM + our trigram + same words", data_dir, dd.text,
                                 lm_path=lang / "lm.arpa", dict_path=ps_dict))
    rows.append(pocketsphinx_row("pocketsphinx en-us AM + its own en-us LM (72k words)", data_dir, dd.text))
    print(f"{data_dir}: {len(dd.utts)} utterances, {audio_s:.1f} s of audio")
    print(f"{'system':<62} {'WER':>6} {'sub':>5} {'del':>5} {'ins':>5} {'RTF':>7}  (front end / network / search)")
    for name, s, cpu in rows:
        split = " / ".join(f"{s[k] / audio_s:.3f}" for k in ("fbank", "network", "search") if k in s)
        print(f"{name:<62} {s['wer']:6.2f} {s['sub']:5d} {s['del']:5d} {s['ins']:5d} {cpu / audio_s:7.3f}"
              + (f"  ({split})" if split else ""))
    peer_name, peer, peer_cpu = rows[-2]  # pocketsphinx with the same trigram and words
    for name, s, cpu in rows[:-2]:
        print(f"{name}: {s['wer'] / peer['wer']:.2f} of pocketsphinx's WER with the same LM "
              f"(aim: at most 0.5), {cpu / peer_cpu:.2f} of its real-time factor")
    print()


if __name__ == "__main__":
    sys.exit(main())
