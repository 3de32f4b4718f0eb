"""Stage 5: Viterbi (forced) realignment of a data set with a trained model.

Each utterance is aligned within its known phone sequence: the decoder we
decode with runs on the utterance's own graph H∘C∘(linear acceptor of its
phones) (:func:`asr.lang.graph.alignment_graph`), over the model's scaled
log-likelihoods. The result is stored as an alignment directory
(:mod:`asr.hmm.alignment`: CI transition ids per frame, kaldiio ark/scp)
that any model's targets can be made from.

Figures written to ``ali.yaml``: the mean per-frame log-likelihood
(``log p(x|s) - const`` = log posterior - log prior, acoustic scale 1) of
the new alignment and of the uniform split it replaces, under the same
model, and the fraction of frames whose (phone, state) moved.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from pathlib import Path

import numpy as np
from tqdm import tqdm

from asr.corpus.datadir import read_datadir
from asr.decode.hybrid import HybridModel, scaled_loglikes
from asr.decode.wfst import WfstDecoder
from asr.errors import DataError, GraphError, ModelError
from asr.hmm.alignment import AlignmentSet, write_alignments
from asr.hmm.context import ContextDependency
from asr.hmm.transitions import alignment_pdfs, ci_transitions
from asr.lang.graph import DEFAULT_SELF_LOOP_SCALE, alignment_graph
from asr.steps.decode import set_features, set_posteriors
from asr.steps.train_am import uniform_alignments

log = logging.getLogger(__name__)

#: Beams tried in turn (Kaldi's align: beam 10, retry beam 40; scores here are at acwt 1).
ALIGN_BEAMS = (20.0, 80.0)


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


def align_utterance(model: HybridModel, log_post: np.ndarray, phones: list[str], utt: str,
                    acwt: float = 1.0) -> np.ndarray:
    """Forced alignment of one utterance → (T,) int32 CI transition ids.

    Raises:
        GraphError: no path of the phone sequence fits the frames, at any beam.
        ModelError: unusable scores.
    """
    index = {p: i + 1 for i, p in enumerate(model.phones)}
    unknown = [p for p in phones if p not in index]
    if unknown:
        raise DataError(f"utterance {utt}: phone {unknown[0]!r} is not in the model's phone set")
    graph = alignment_graph(model.context, [index[p] for p in phones])
    scores = scaled_loglikes(log_post, model.log_priors, acwt)
    for beam in ALIGN_BEAMS:
        decoder = WfstDecoder(graph, model.transitions, beam=beam, check=False)
        try:
            result = decoder.decode(scores, utt=utt)
        except GraphError:
            continue
        if result.reached_final:
            return model.transitions.to_ci(result.tids)
    raise GraphError(f"utterance {utt}: no alignment of its {len(phones)} phones to "
                     f"{len(scores)} frames (beams {ALIGN_BEAMS})")


def align_set(model: HybridModel, data_dir: Path, ali_dir: Path, acwt: float = 1.0) -> dict:
    """Align every utterance of ``data_dir``; write ``ali_dir``; return its figures.

    Utterances that cannot be aligned (too short for their phones, or no
    path) are logged, counted and left out; the rest are written.
    """
    dd = read_datadir(data_dir, require_phones=True)
    feats = set_features(model, data_dir)
    post = set_posteriors(model, feats)
    uniform = uniform_alignments(Path(data_dir), post, model.phones, model.topology)
    ci = ci_transitions(model.phones, model.topology)
    alignments, failed = {}, {}
    new_score = old_score = 0.0
    moved = frames = 0
    for utt in tqdm(sorted(uniform), desc="align", leave=False, disable=None):
        try:
            ali = align_utterance(model, post[utt], dd.phone_text(utt), utt, acwt)
        except (GraphError, ModelError) as exc:
            log.warning("%s: %s; left out", data_dir, exc)
            failed[utt] = str(exc)
            continue
        alignments[utt] = ali
        scores = scaled_loglikes(post[utt], model.log_priors, 1.0)
        new_score += path_score(scores, ali, model.context).total
        old_score += path_score(scores, uniform[utt], model.context).total
        moved += int((ci.pdfs(ali) != ci.pdfs(uniform[utt])).sum())  # (phone, state) changed
        frames += len(ali)
    if not alignments:
        raise ModelError(f"{data_dir}: no utterance could be aligned with {model.model_dir}")
    info = {
        "source": {"model": str(Path(model.model_dir).resolve()), "data": str(Path(data_dir).resolve()),
                   "acwt": acwt, "context_width": model.context.width},
        "aligned_utterances": len(alignments), "failed_utterances": len(failed),
        "skipped_too_short": len(post) - len(uniform),
        "loglike_per_frame": round(new_score / frames, 4),
        "uniform_loglike_per_frame": round(old_score / frames, 4),
        "frames_moved_pct": round(100.0 * moved / frames, 2),
    }
    shift = model.feat_cfg.frame_shift_ms / 1000
    write_alignments(ali_dir, AlignmentSet(model.phones, model.topology, shift, alignments, info))
    log.info("%s: aligned %d utterances (%d failed); log-likelihood per frame %.3f (uniform split "
             "%.3f); %.1f%% of frames moved", data_dir, len(alignments), len(failed),
             info["loglike_per_frame"], info["uniform_loglike_per_frame"], info["frames_moved_pct"])
    if not math.isfinite(new_score):
        raise ModelError(f"{data_dir}: alignment scores are not finite")
    return info

