"""Stage 8 (words): decode a data set over the word graph HCLG and score WER.

Dev, in two steps, every figure a FasterDecoder WER (Viterbi beam search with
max-active pruning, the decoder test uses): (1) the acoustic scale — dev is
decoded at the scales of a grid from the largest (the fastest decode) down,
until two in a row are no better than the best
(:func:`asr.steps.decode.sweep_down`); (2) the word insertion penalty — from
0 at that scale, the neighbouring penalty of a grid is decoded (over the
graph with the penalty on its word arcs), first on the negative side, and
the walk goes on in the direction that lowered the WER until a step does not.
Test is decoded once with the pair. Decoding runs in ``nj`` worker processes,
each loading the graph once. An utterance that cannot be decoded is logged,
counted and scored as all deletions, as in the phone decoding.

Measured here (small corpus, CD model, dev): reading other acoustic scales
off lattices made at one scale, as Kaldi's LM-weight sweep does, misled —
a lattice beam of 6 keeps too few paths, and the sweep picked the edge of its
grid at 11 points worse WER than decoding at that scale; and
LatticeSimpleDecoder, which has no max-active pruning, runs away at small
acoustic scales (over 10 minutes for dev at 0.05), so the scale is swept
with FasterDecoder. Reading the penalties off lattices at the chosen scale
(the tuning before) cost more than the decodes it replaced (the medium CD
model on dev_mixed: 84 s for the lattices, 38 s to check their choice by
decoding; their best penalty, −3, read 22.70 there and 23.88 decoded), and
lost to penalty 0.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import yaml

from asr.corpus.datadir import read_datadir
from asr.decode.hybrid import HybridModel, scaled_loglikes
from asr.decode.jobs import SearchOptions, decoding_pool, drop_penalised_graphs, faster_utt, run_jobs, worker_args
from asr.decode.lattice import BestPath
from asr.decode.words import (WordGraph, install_word_graph, load_word_graph, save_word_decode,
                              word_decode_params, word_spans)
from asr.errors import AsrError
from asr.io import atomic_write_text
from asr.symbols import RESERVED, is_garbage_word
from asr.score.per import score_words
from asr.score.report import write_report
from asr.steps.decode import grid_at_rate, set_features, set_posteriors, sweep_down, write_hyps

log = logging.getLogger(__name__)

#: Acoustic scales tried on dev (each a decode of dev).
ACWT_GRID = (0.07, 0.1, 0.14, 0.2, 0.28, 0.4, 0.56, 0.8)
#: Word insertion penalties tried on dev (-ln units, added to the graph cost per word).
WORD_PENALTIES = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)

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


def _wer_of(results: dict, refs: dict, graph: WordGraph) -> tuple[float, dict[str, list[str]]]:
    hyps = {u: graph.symbols(r.word_ids) for u, r in results.items()}
    return score_words(refs, hyps).counts.rate, hyps


def _faster_wer(run, scaled, refs: dict, graph: WordGraph) -> tuple[float, int]:
    """WER of a FasterDecoder pass over dev, and the number of utterances that failed."""
    results, failed = _split_failures(run(faster_utt, scaled))
    return _wer_of(results, refs, graph)[0], len(failed)


def climb_penalty(wer_at: Callable[[float], float], wer_at_zero: float,
                  penalties: Sequence[float] = WORD_PENALTIES) -> dict[float, float]:
    """{penalty: WER} from 0 along the sorted grid ``penalties`` (which holds 0): the negative
    neighbour first, then on down while each step lowers the WER; the positive side (and on
    up) only when the first negative step did not lower it."""
    grid = sorted(set(penalties))
    if 0.0 not in grid:
        raise ValueError(f"the penalty grid {grid} must hold 0")
    table = {0.0: wer_at_zero}
    zero = grid.index(0.0)
    for step in (-1, 1):
        i = zero
        while 0 <= i + step < len(grid):
            table[grid[i + step]] = wer_at(grid[i + step])
            if table[grid[i + step]] >= table[grid[i]]:
                break
            i += step
        if i != zero:  # this direction helped: the other side is not tried
            break
    return table


def tune_word_decoding(model: HybridModel, dev_dir: Path, graph_dir: Path, out_dir: Path, nj: int = 1,
                       opts: SearchOptions = SearchOptions(), acwt_grid=ACWT_GRID,
                       penalties=WORD_PENALTIES) -> dict:
    """Install the word graph, choose the acoustic scale and word penalty on dev, store them.

    (1) the acoustic scale by :func:`~asr.steps.decode.sweep_down` over ``acwt_grid`` times the
    model's frame subsampling (:func:`~asr.steps.decode.grid_at_rate`), penalty 0;
    (2) the penalty by :func:`climb_penalty` over ``penalties`` at that scale. Equal WERs go to
    the smaller scale and the penalty nearer 0.
    """
    install_word_graph(model, graph_dir)
    graph = load_word_graph(model)
    dd = read_datadir(dev_dir)
    post = set_posteriors(model, set_features(model, dev_dir))
    scaled = lambda acwt: ((u, scaled_loglikes(lp, model.log_priors, acwt)) for u, lp in sorted(post.items()))
    failures = 0

    def wer(acwt: float, penalty: float, run) -> float:
        nonlocal failures
        rate, failed = _faster_wer(run, scaled(acwt), dd.text, graph)
        failures = max(failures, failed)
        log.info("dev acwt %g, word penalty %g: WER %.2f%%", acwt, penalty, rate)
        return rate

    with decoding_pool(nj, worker_args(str(graph.path), model.context, opts)) as run:
        acwt_table = sweep_down(grid_at_rate(acwt_grid, model.frame_rate.factor), lambda a: wer(a, 0.0, run))
    acwt = min(acwt_table, key=lambda a: (acwt_table[a], a))

    def wer_with_penalty(penalty: float) -> float:
        with decoding_pool(nj, worker_args(str(graph.path), model.context, opts, penalty)) as run:
            return wer(acwt, penalty, run)

    penalty_table = climb_penalty(wer_with_penalty, acwt_table[acwt], penalties)
    penalty = min(penalty_table, key=lambda p: (penalty_table[p], abs(p)))
    drop_penalised_graphs(graph.path.parent, keep=penalty)  # the sets after read the chosen one's
    table = {**{(a, 0.0): w for a, w in acwt_table.items()}, **{(acwt, p): w for p, w in penalty_table.items()}}
    dev_wer = table[(acwt, penalty)]
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "wer_sweep.txt", "acwt\tword_penalty\twer\tdecoder\n"
                      + "".join(f"{a:g}\t{p:g}\t{w:.2f}\tfaster\n" for (a, p), w in table.items()))
    save_word_decode(model, acwt, penalty, dev_dir, dev_wer, table)
    log.info("chosen on dev: acwt %g, word penalty %g (WER %.2f%%); %d utterances failed",
             acwt, penalty, dev_wer, failures)
    return {"acwt": acwt, "word_penalty": penalty, "wer": round(dev_wer, 2), "failed_utterances": failures}


def format_ctm(utt: str, spans, shift_s: float) -> str:
    """CTM lines ``<utt> 1 <start s> <duration s> <word>`` of one utterance."""
    return "".join(f"{utt} 1 {s.start * shift_s:.2f} {(s.end - s.start) * shift_s:.2f} {s.word}\n"
                   for s in spans)


def decode_words_and_score(model: HybridModel, data_dir: Path, out_dir: Path, nj: int = 1,
                           opts: SearchOptions = SearchOptions()) -> dict:
    """Decode ``data_dir`` with the tuned settings; write hyp.txt, hyp.ctm, wer_report.txt, scores.yaml."""
    acwt, penalty = word_decode_params(model)
    graph = load_word_graph(model)
    dd = read_datadir(data_dir)
    scores, nn_seconds, frames = _set_scores(model, data_dir, acwt)
    start = time.time()
    items = run_jobs(faster_utt, sorted(scores.items()), nj, worker_args(str(graph.path), model.context, opts, penalty))
    results, failed = _split_failures(items)
    search_seconds = time.time() - start
    hyps = {u: graph.symbols(r.word_ids) for u, r in results.items()}
    result = score_words(dd.text, hyps)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_hyps(out_dir / "hyp.txt", hyps)
    atomic_write_text(out_dir / "hyp.ctm", "".join(
        format_ctm(u, _spans(model, graph, r, hyps[u]), model.frame_rate.shift_s)
        for u, r in sorted(results.items())))
    vocab = {w for w in graph.words[1:] if w not in RESERVED and not w.startswith("#") and not is_garbage_word(w)}
    vocab -= set(graph.settings.get("words_without_lm", ()))  # in L for training, never in G
    write_report(result, out_dir / "wer_report.txt", f"{data_dir} words, acwt {acwt:g}, penalty {penalty:g}",
                 utt2spk=dd.utt2spk, vocab=vocab)
    audio_seconds = frames * model.frame_rate.shift_s
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
        return word_spans(model.transitions.phone_runs(path.tids), model.phones, model.lang.optional_silence,
                          words, graph.lexicon)
    except AsrError as exc:
        log.warning("%s", exc)
        return []
