"""Stage 8 (words): decode a data set over the word graph HCLG and score WER.

Dev: every utterance is decoded once into a lattice at a base acoustic scale
(the model's phone-decoding scale when one was tuned, else 0.1); the best
path is then read at every (acoustic scale, word insertion penalty) of the
grid and the pair with the lowest dev WER is stored in the bundle. Test is
decoded once with that pair. Decoding runs in ``nj`` worker processes, each
loading the graph once. An utterance that cannot be decoded is logged,
counted and scored as all deletions, as in the phone decoding.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import yaml

from asr.corpus.datadir import read_datadir
from asr.decode.hybrid import HybridModel, scaled_loglikes
from asr.decode.jobs import best_utt, run_jobs, sweep_utt
from asr.decode.lattice import DEFAULT_BEAM, DEFAULT_LATTICE_BEAM, BestPath
from asr.decode.words import (WordGraph, install_word_graph, load_word_graph, save_word_decode,
                              word_decode_params, word_spans)
from asr.errors import AsrError
from asr.io import atomic_write_text
from asr.score.per import score_words
from asr.score.report import write_report
from asr.steps.decode import set_features, set_posteriors, write_hyps

log = logging.getLogger(__name__)

#: Acoustic scales tried on dev, as multiples of the base scale the lattices were made at.
ACWT_RATIOS = (0.5, 0.6, 0.7, 0.85, 1.0, 1.2, 1.4, 1.7, 2.0)
#: Word insertion penalties tried on dev (-ln units, added to the graph cost per word).
WORD_PENALTIES = (-2.0, -1.0, 0.0, 1.0, 2.0, 4.0)
#: Base acoustic scale when the model has no tuned phone-decoding scale.
DEFAULT_ACWT = 0.1

def _set_scores(model: HybridModel, data_dir: Path, acwt: float) -> tuple[dict[str, np.ndarray], float, int]:
    """Scaled log-likelihoods of a data set, the network's seconds and the frame count."""
    start = time.time()
    post = set_posteriors(model, set_features(model, data_dir))
    scores = {u: scaled_loglikes(lp, model.log_priors, acwt) for u, lp in post.items()}
    return scores, time.time() - start, sum(len(p) for p in post.values())


def _split_failures(results: dict[str, object]) -> tuple[dict[str, object], dict[str, str]]:
    ok = {u: r for u, r in results.items() if not isinstance(r, AsrError)}
    failed = {u: str(r) for u, r in results.items() if isinstance(r, AsrError)}
    for why in failed.values():
        log.warning("%s", why)
    return ok, failed


def base_acwt(model: HybridModel) -> float:
    """The model's phone-decoding acoustic scale when tuned, else DEFAULT_ACWT."""
    return float(model.components["decode"]["acwt"]) if "decode" in model.components else DEFAULT_ACWT


def tune_word_decoding(model: HybridModel, dev_dir: Path, graph_dir: Path, out_dir: Path, nj: int = 1,
                       beam: float = DEFAULT_BEAM, lattice_beam: float = DEFAULT_LATTICE_BEAM) -> dict:
    """Install the word graph, sweep (acoustic scale, word penalty) on dev, store the best."""
    install_word_graph(model, graph_dir)
    graph = load_word_graph(model)
    dd = read_datadir(dev_dir)
    base = base_acwt(model)
    scores, _, _ = _set_scores(model, dev_dir, base)
    init = (str(graph.path), model.context, beam, lattice_beam)
    results, failed = _split_failures(run_jobs(
        sweep_utt, ((u, s, ACWT_RATIOS, WORD_PENALTIES) for u, s in sorted(scores.items())), nj, init))
    table = {}  # (ratio, penalty) -> dev WER
    for key in ((r, p) for p in WORD_PENALTIES for r in ACWT_RATIOS):
        hyps = {u: graph.symbols(res[key]) for u, res in results.items()}
        table[key] = score_words(dd.text, hyps).counts.rate
    ratio, penalty = min(table, key=lambda k: (table[k], abs(k[1]), abs(np.log(k[0]))))
    acwt = base * ratio
    hyps = {u: graph.symbols(res[(ratio, penalty)]) for u, res in results.items()}
    result = score_words(dd.text, hyps)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_hyps(out_dir / "hyp.txt", hyps)
    write_report(result, out_dir / "wer_report.txt", f"{dev_dir} words, acwt {acwt:g}, penalty {penalty:g}",
                 utt2spk=dd.utt2spk, vocab=set(graph.words[1:]))
    swept = {(base * r, p): w for (r, p), w in table.items()}
    atomic_write_text(out_dir / "wer_sweep.txt", "acwt\tword_penalty\twer\n" + "".join(
        f"{a:.4g}\t{p:g}\t{w:.2f}\n" for (a, p), w in sorted(swept.items())))
    save_word_decode(model, acwt, penalty, dev_dir, table[(ratio, penalty)], swept)
    log.info("chosen on dev: acwt %.4g, word penalty %g (WER %.2f%%); %d utterances failed",
             acwt, penalty, table[(ratio, penalty)], len(failed))
    return {"acwt": acwt, "word_penalty": penalty, "wer": round(table[(ratio, penalty)], 2),
            "failed_utterances": len(failed)}


def format_ctm(utt: str, spans, shift_s: float) -> str:
    """CTM lines ``<utt> 1 <start s> <duration s> <word>`` of one utterance."""
    return "".join(f"{utt} 1 {s.start * shift_s:.2f} {(s.end - s.start) * shift_s:.2f} {s.word}\n"
                   for s in spans)


def decode_words_and_score(model: HybridModel, data_dir: Path, out_dir: Path, nj: int = 1,
                           beam: float = DEFAULT_BEAM, lattice_beam: float = DEFAULT_LATTICE_BEAM) -> dict:
    """Decode ``data_dir`` with the tuned settings; write hyp.txt, hyp.ctm, wer_report.txt, scores.yaml."""
    acwt, penalty = word_decode_params(model)
    graph = load_word_graph(model)
    dd = read_datadir(data_dir)
    scores, nn_seconds, frames = _set_scores(model, data_dir, acwt)
    start = time.time()
    init = (str(graph.path), model.context, beam, lattice_beam)
    results, failed = _split_failures(run_jobs(
        best_utt, ((u, s, penalty) for u, s in sorted(scores.items())), nj, init))
    search_seconds = time.time() - start
    hyps = {u: graph.symbols(r.word_ids) for u, r in results.items()}
    result = score_words(dd.text, hyps)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_hyps(out_dir / "hyp.txt", hyps)
    atomic_write_text(out_dir / "hyp.ctm", "".join(
        format_ctm(u, _spans(model, graph, r, hyps[u]), model.feat_cfg.frame_shift_ms / 1000)
        for u, r in sorted(results.items())))
    vocab = set(graph.words[1:])
    write_report(result, out_dir / "wer_report.txt", f"{data_dir} words, acwt {acwt:g}, penalty {penalty:g}",
                 utt2spk=dd.utt2spk, vocab=vocab)
    audio_seconds = frames * model.feat_cfg.frame_shift_ms / 1000
    ref_words = [w for t in dd.text.values() for w in t.split()]
    c = result.counts
    summary = {
        "data": str(data_dir), "utterances": len(scores), "acwt": acwt, "word_penalty": penalty,
        "wer": round(c.rate, 2), "words": c.ref_len, "sub": c.sub, "del": c.dels, "ins": c.ins,
        "oov_rate": round(100.0 * sum(w not in vocab for w in ref_words) / max(1, len(ref_words)), 2),
        "vocabulary": len(vocab), "failed_utterances": len(failed), "nj": nj,
        "rtf_network": round(nn_seconds / audio_seconds, 4),
        "rtf_search": round(search_seconds / audio_seconds, 4),
    }
    atomic_write_text(out_dir / "scores.yaml", yaml.safe_dump(summary, sort_keys=False))
    if failed:
        atomic_write_text(out_dir / "failed_utts.txt", "".join(f"{u} {w}\n" for u, w in sorted(failed.items())))
    log.info("%s: WER %.2f%% (%d words, OOV %.2f%%), %d failed, RTF network %.4f search %.4f (nj %d)",
             data_dir, summary["wer"], c.ref_len, summary["oov_rate"], len(failed),
             summary["rtf_network"], summary["rtf_search"], nj)
    return summary


def _spans(model: HybridModel, graph: WordGraph, path: BestPath, words: list[str]):
    """Word spans of a best path; [] with a warning when they cannot be found."""
    try:
        return word_spans(model.transitions.phone_runs(path.tids), model.phones, words, graph.lexicon)
    except AsrError as exc:
        log.warning("%s", exc)
        return []
