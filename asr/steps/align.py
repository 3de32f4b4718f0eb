"""Stage 5: Viterbi (forced) alignment of a data set with a trained model, and the
flat start's equal alignment.

Each utterance is aligned over its own graph, with the decoder we decode
with, over the model's scaled log-likelihoods:

* phone supervision: H∘C∘(linear acceptor of its phones)
  (:func:`asr.lang.graph.alignment_graph`), the corpus's phone segmentation;
* word supervision: its training graph H∘C∘L∘(its words)
  (:mod:`asr.lang.train_graph`), which chooses each word's pronunciation and
  where optional silence goes (Kaldi's ``align.sh`` over ``compile-train-graphs``).

The result is stored as an alignment directory (:mod:`asr.hmm.alignment`:
CI transition ids per frame, kaldiio ark/scp) that any model's targets can be
made from; with word supervision the words' times go to ``words.ctm`` too.
A flat start begins from :func:`align_equal_set`: each utterance's frames
spread evenly over one path of its training graph.

Figures written to ``ali.yaml``: the mean per-frame log-likelihood
(``log p(x|s) - const`` = log posterior - log prior, acoustic scale 1) of
the new alignment and of the one it replaces (the uniform split of the phone
segmentation, or the equal alignment), under the same model, and the
fraction of frames whose (phone, state) moved.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from tqdm import tqdm

from asr.corpus.datadir import read_datadir
from asr.decode.hybrid import HybridModel, scaled_loglikes
from asr.decode.wfst import WfstDecoder
from asr.decode.words import word_spans
from asr.errors import DataError, GraphError, ModelError
from asr.features.extract import FeatureConfig
from asr.features.storage import load_features
from asr.hmm.alignment import AlignmentSet, write_alignments
from asr.hmm.context import ContextDependency
from asr.hmm.transitions import alignment_pdfs, ci_transitions
from asr.io import atomic_write_text
from asr.lang.graph import DEFAULT_SELF_LOOP_SCALE, alignment_graph
from asr.lang.train_graph import OovCount, TooFewFramesError, TrainingGraphs
from asr.steps.decode import set_features, set_posteriors
from asr.steps.train_am import uniform_alignments

log = logging.getLogger(__name__)

#: Beams tried in turn. Kaldi's align.sh uses beam 10, retry beam 40 at acoustic scale 0.1,
#: i.e. 100 and 400 at the acoustic scale 1 used here; the narrower ones first are faster,
#: and 400 rescues the utterances a flat-start model scores badly.
ALIGN_BEAMS = (20.0, 80.0, 400.0)
#: The words' times of an alignment over training graphs (CTM: utt 1 start duration word).
WORDS_CTM = "words.ctm"
#: The transcript words the lexicon lacked and the pronunciations they got (CMUdict or flite).
NEW_PRONS = "new_prons.txt"


@dataclass
class PathScore:
    """Log-likelihood of an alignment path: acoustic (sum of scaled log-likelihoods) and
    graph (minus the HMM transition costs), natural-log units."""

    acoustic: float
    graph: float

    @property
    def total(self) -> float:
        return self.acoustic + self.graph


def path_score(scores: np.ndarray, ci_tids: np.ndarray, ctx: ContextDependency,
               self_loop_scale: float = DEFAULT_SELF_LOOP_SCALE) -> PathScore:
    """Score of a stored alignment under a model: ``scores`` (T, num_pdfs) scaled log-likelihoods.

    The graph part counts the costs H puts on the path (self-loops, forward
    transitions, each phone's exit), as :func:`asr.lang.graph.make_h` does.
    """
    pdfs = alignment_pdfs(ci_tids, ctx)
    acoustic = float(scores[np.arange(len(pdfs)), pdfs].sum())
    return PathScore(acoustic, -ci_transitions(ctx.phones, ctx.topology).path_cost(ci_tids, self_loop_scale))


def forced_path(model: HybridModel, scores: np.ndarray, graph, utt: str,
                beams: Sequence[float] = ALIGN_BEAMS) -> tuple[np.ndarray, float] | None:
    """(CI transition ids (T,), the beam that found it) of the best path through ``graph`` that
    reaches a final state, trying ``beams`` in turn; None when none does.

    ``scores``: (T, num_pdfs) scaled log-likelihoods. Raises ModelError on unusable scores.
    """
    for beam in beams:
        decoder = WfstDecoder(graph, model.transitions, beam=beam, check=False)
        try:
            result = decoder.decode(scores, utt=utt, warn_partial=False)
        except GraphError:
            continue
        if result.reached_final:
            return model.transitions.to_ci(result.tids), beam
    return None


def align_utterance(model: HybridModel, log_post: np.ndarray, graph, utt: str,
                    acwt: float = 1.0, what: str = "", beams: Sequence[float] = ALIGN_BEAMS) -> np.ndarray:
    """Forced alignment of one utterance over its own ``graph`` → (T,) int32 CI transition ids.

    ``graph``: the paths allowed (:func:`phone_sequence_graph` or a training graph,
    :meth:`asr.lang.train_graph.TrainingGraphs.graph`); ``what`` says what it holds, for
    the message. ``beams`` are tried in turn.

    Raises:
        GraphError: no path of the graph fits the frames, at any beam.
        ModelError: unusable scores.
    """
    scores = scaled_loglikes(log_post, model.log_priors, acwt)
    found = forced_path(model, scores, graph, utt, beams)
    if found is None:
        raise GraphError(f"utterance {utt}: no alignment of {what or 'its transcript'} to "
                         f"{len(scores)} frames (beams {tuple(beams)})")
    return found[0]


def phone_sequence_graph(model: HybridModel, phones: list[str], utt: str):
    """H∘C∘(the linear acceptor of ``phones``) of one utterance; DataError on a phone not in the model."""
    index = {p: i + 1 for i, p in enumerate(model.phones)}
    unknown = [p for p in phones if p not in index]
    if unknown:
        raise DataError(f"utterance {utt}: phone {unknown[0]!r} is not in the model's phone set")
    return alignment_graph(model.context, [index[p] for p in phones])


def _check_lang(model: HybridModel, graphs: TrainingGraphs) -> None:
    if list(model.phones) != list(graphs.lang.phones) or model.topology != graphs.lang.topology:
        raise ModelError(f"{model.model_dir}: its phones or topology differ from those of the word "
                         f"lang dir {graphs.origin}")


def equal_alignments(graphs: TrainingGraphs, texts: Mapping[str, str], num_frames: Mapping[str, int],
                     where: str, oovs: OovCount | None = None) -> dict[str, np.ndarray]:
    """The flat start's alignment of each utterance of ``num_frames`` → {utt: (T,) CI transition ids}.

    Utterances with fewer frames than their transcript's shortest path are
    logged and left out.
    """
    out = {}
    for utt, frames in num_frames.items():
        words = graphs.words(texts[utt], utt, oovs)
        try:
            out[utt] = graphs.equal_alignment(words, frames)
        except TooFewFramesError as exc:
            log.warning("%s: utterance %s: %s; left out", where, utt, exc)
    return out


def align_equal_set(data_dir: Path, lang_dir: Path, ali_dir: Path) -> dict:
    """Write the flat start's equal alignment of ``data_dir`` (Kaldi's align-equal-compiled).

    Each utterance's frames (those of its features) are spread evenly over one
    path of its training graph (:meth:`TrainingGraphs.equal_alignment`); the
    transcripts come from ``data_dir/text``, the pronunciations from the word
    lang dir ``lang_dir``. The words' times go to ``words.ctm``, as :func:`align_set`
    writes them. Returns the figures written to ali.yaml.
    """
    data_dir = Path(data_dir)
    graphs = TrainingGraphs.load(lang_dir)
    dd = read_datadir(data_dir)
    cfg = FeatureConfig.load(data_dir / "feats.yaml")
    feats = load_features(data_dir)
    frames = {u: len(feats[u]) for u in dd.utts if u in feats}
    if not frames:
        raise DataError(f"{data_dir}: no utterance has features")
    oovs = OovCount()
    new_words = graphs.add_new_words(dd.text[u] for u in frames)
    alignments = equal_alignments(graphs, dd.text, frames, str(data_dir), oovs)
    if not alignments:
        raise DataError(f"{data_dir}: no utterance is long enough for its transcript")
    info = {"source": {"kind": "equal", "data": str(data_dir.resolve()), "lang": str(Path(lang_dir).resolve())},
            "aligned_utterances": len(alignments), "failed_utterances": len(frames) - len(alignments),
            "new_words": len(new_words), "oov_tokens": oovs.tokens}
    if oovs.tokens:
        log.info("%s: %s", data_dir, oovs.summary())
    aset = AlignmentSet(list(graphs.lang.phones), graphs.lang.topology, cfg.frame_shift_ms / 1000,
                        alignments, info, frame_offset_s(cfg))
    write_alignments(ali_dir, aset)
    atomic_write_text(Path(ali_dir) / WORDS_CTM, "".join(_word_ctm(aset, graphs, u, graphs.words(dd.text[u], u))
                                                        for u in sorted(alignments)))
    _write_new_words(Path(ali_dir), new_words)
    log.info("%s: equal alignment of %d utterances (%d too short)", data_dir, len(alignments),
             info["failed_utterances"])
    return info


def _write_new_words(ali_dir: Path, new_words: Mapping[str, list]) -> None:
    """``ali_dir/new_prons.txt``: the transcript words the lexicon lacked, with the pronunciations
    they were aligned with (lexicon.txt format)."""
    atomic_write_text(ali_dir / NEW_PRONS, "".join(f"{w} {' '.join(p)}\n" for w in sorted(new_words)
                                                   for p in new_words[w]))


def frame_offset_s(cfg: FeatureConfig) -> float:
    """Seconds from ``t · shift`` to the boundary before frame t: half of (window − shift),
    as frames are labelled by their windows' centres (:mod:`asr.hmm.alignment`)."""
    return (cfg.window_samples - cfg.shift_samples) / 2 / cfg.sample_rate


def _word_ctm(aset: AlignmentSet, graphs: TrainingGraphs, utt: str, words: list[str]) -> str:
    """CTM lines of the words of one alignment (``<unk>`` kept: it is in the transcript)."""
    n = len(aset.tids(utt))
    spans = word_spans(aset.runs(utt), aset.phones, graphs.lang.optional_silence, words, graphs.lexicon,
                       keep_unk=True)
    lines = []
    for s in spans:
        a, b = aset.boundary_s(s.start, n), aset.boundary_s(s.end, n)
        lines.append(f"{utt} 1 {a:.3f} {b - a:.3f} {s.word}\n")
    return "".join(lines)


def align_set(model: HybridModel, data_dir: Path, ali_dir: Path, acwt: float = 1.0,
              words: Path | None = None) -> dict:
    """Align every utterance of ``data_dir``; write ``ali_dir``; return its figures.

    Without ``words``, each utterance is aligned within its phone transcript
    (``phone_segments``), and the result compared with the uniform split. With
    ``words`` (a word lang dir), within its word transcript's training graph
    (:mod:`asr.lang.train_graph`: each word's pronunciations, optional silence),
    compared with the flat start's equal alignment; the words' times are written
    to ``ali_dir/words.ctm`` too.

    Utterances that cannot be aligned (too short, or no path) are logged,
    counted and left out; the rest are written.
    """
    graphs = TrainingGraphs.load(words) if words is not None else None
    if graphs is not None:
        _check_lang(model, graphs)
    dd = read_datadir(data_dir, require_phones=graphs is None)
    feats = set_features(model, data_dir)
    post = set_posteriors(model, feats)
    oovs, new_words = OovCount(), {}
    if graphs is not None:
        new_words = graphs.add_new_words(dd.text[u] for u in post)
    if graphs is None:
        before = uniform_alignments(Path(data_dir), {u: len(feats[u]) for u in post}, model.phones,
                                    model.topology, model.frame_rate)
    else:
        before = equal_alignments(graphs, dd.text, {u: len(p) for u, p in post.items()}, str(data_dir), oovs)
    ci = ci_transitions(model.phones, model.topology)
    shift = model.frame_rate.shift_s
    alignments, failed, transcripts = {}, {}, {}
    new_score = old_score = 0.0
    moved = frames = 0
    for utt in tqdm(sorted(before), desc="align", leave=False, disable=None):
        try:
            if graphs is None:
                graph, what = phone_sequence_graph(model, dd.phone_text(utt), utt), "its phones"
            else:
                utt_words = graphs.words(dd.text[utt], utt)
                graph, what = graphs.graph(model.context, utt_words), "its words"
            ali = align_utterance(model, post[utt], graph, utt, acwt, what)
        except (GraphError, ModelError) as exc:
            log.warning("%s: %s; left out", data_dir, exc)
            failed[utt] = str(exc)
            continue
        alignments[utt] = ali
        if graphs is not None:
            transcripts[utt] = utt_words
        scores = scaled_loglikes(post[utt], model.log_priors, 1.0)
        new_score += path_score(scores, ali, model.context).total
        old_score += path_score(scores, before[utt], model.context).total
        moved += int((ci.pdfs(ali) != ci.pdfs(before[utt])).sum())  # (phone, state) changed
        frames += len(ali)
    if not alignments:
        raise ModelError(f"{data_dir}: no utterance could be aligned with {model.model_dir}")
    start = "uniform" if graphs is None else "equal"
    info = {
        "source": {"kind": "phones" if graphs is None else "words",
                   "model": str(Path(model.model_dir).resolve()), "data": str(Path(data_dir).resolve()),
                   "acwt": acwt, "context_width": model.context.width,
                   **({"lang": str(Path(words).resolve())} if words is not None else {})},
        "aligned_utterances": len(alignments), "failed_utterances": len(failed),
        "skipped_too_short": len(post) - len(before),
        "loglike_per_frame": round(new_score / frames, 4),
        f"{start}_loglike_per_frame": round(old_score / frames, 4),
        "frames_moved_pct": round(100.0 * moved / frames, 2),
    }
    if graphs is not None:
        info["new_words"], info["oov_tokens"] = len(new_words), oovs.tokens
        if oovs.tokens:
            log.info("%s: %s", data_dir, oovs.summary())
    aset = AlignmentSet(model.phones, model.topology, shift, alignments, info, frame_offset_s(model.feat_cfg))
    write_alignments(ali_dir, aset)
    if graphs is not None:
        atomic_write_text(Path(ali_dir) / WORDS_CTM, "".join(_word_ctm(aset, graphs, u, transcripts[u])
                                                            for u in sorted(transcripts)))
        _write_new_words(Path(ali_dir), new_words)
    log.info("%s: aligned %d utterances (%d failed); log-likelihood per frame %.3f (%s alignment "
             "%.3f); %.1f%% of frames moved", data_dir, len(alignments), len(failed),
             info["loglike_per_frame"], start, info[f"{start}_loglike_per_frame"], info["frames_moved_pct"])
    if not math.isfinite(new_score):
        raise ModelError(f"{data_dir}: alignment scores are not finite")
    return info
