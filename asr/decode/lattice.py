"""Lattice decoding over a word graph, and the best path at any acoustic scale
and word insertion penalty (Kaldi's ``lattice-scale | lattice-add-penalty |
lattice-best-path``).

kaldi-decoder's ``LatticeSimpleDecoder`` gives the raw state-level lattice
of an utterance: arcs labelled (transition id : word id) with a
``LatticeWeight`` (graph cost, acoustic cost). The acoustic costs are those
of the score matrix it decoded, i.e. at the acoustic scale ``acwt0`` the
matrix was made with; the best path at another scale multiplies them by
``acwt / acwt0`` (as Kaldi sweeps the LM weight over lattices made at 0.1).
The word insertion penalty is added to the graph cost of every arc with a
word on it. This module imports no torch, so decoding workers start fast.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import kaldi_decoder
import kaldifst
import numpy as np
from kaldifst.lib._kaldifst import _ArcIteratorLattice

from asr.decode.wfst import check_scores
from asr.errors import GraphError
from asr.hmm.transitions import Transitions

logger = logging.getLogger(__name__)

#: Default search and lattice beams. LatticeSimpleDecoder has no max-active pruning, so
#: its search beam is narrower than FasterDecoder's 13. Measured (small corpus, CD model,
#: dev, acwt 0.1, 1 thread): FasterDecoder 14.94% WER in 3.6 s; lattice beam 10: 16.52% in
#: 5.8 s, 11: 15.11% in 8.8 s, 12: 14.94% in 14.2 s, 13: 14.59% in 25.4 s.
DEFAULT_BEAM = 11.0
DEFAULT_LATTICE_BEAM = 6.0


@dataclass
class BestPath:
    """One utterance's best path through its lattice.

    Attributes:
        word_ids: the words (ids of words.txt) along the path.
        tids: (T,) int64, the transition id of each frame.
        graph_cost: graph (LM, lexicon, transition) cost, -ln units, without the penalty.
        acoustic_cost: acoustic cost at the scale asked for.
    """

    word_ids: list[int]
    tids: np.ndarray
    graph_cost: float
    acoustic_cost: float


class LatticeDecoder:
    """LatticeSimpleDecoder over one graph, loaded once (one per worker)."""

    def __init__(self, graph: kaldifst.StdFst, transitions: Transitions, beam: float = DEFAULT_BEAM,
                 lattice_beam: float = DEFAULT_LATTICE_BEAM, name: str = "graph") -> None:
        self.graph = graph  # the decoder does not keep the FST alive: this reference does
        self.transitions = transitions
        self.name = name
        config = kaldi_decoder.LatticeSimpleDecoderConfig()
        config.beam, config.lattice_beam = beam, lattice_beam
        self._decoder = kaldi_decoder.LatticeSimpleDecoder(graph, config)

    def lattice(self, scores: np.ndarray, utt: str = "") -> kaldifst.Lattice:
        """The raw lattice of one utterance.

        Args:
            scores: (T, num_pdfs) float32, ``acwt0 * (log_post - log_prior)``.

        Raises:
            ModelError: unusable scores. GraphError: no path survived.
        """
        scores = check_scores(scores, self.transitions.num_pdfs, f"{self.name}: utterance {utt}")
        self._decoder.decode(kaldi_decoder.DecodableCtc(self.transitions.label_scores(scores)))
        ok, lat = self._decoder.get_raw_lattice(use_final_probs=True)
        if not ok or lat.num_states == 0:
            logger.warning("%s: utterance %s: no final state reached; using the partial lattice",
                           self.name, utt)
            ok, lat = self._decoder.get_raw_lattice(use_final_probs=False)
        if not ok or lat.num_states == 0:
            raise GraphError(f"{self.name}: utterance {utt}: no path survived decoding "
                             f"{scores.shape[0]} frames (beam too small or graph too restrictive)")
        return lat


def lattice_arcs(lattice: kaldifst.Lattice, state: int) -> list[kaldifst.LatticeArc]:
    """The arcs leaving ``state`` (kaldifst's public ArcIterator takes only Std FSTs)."""
    it = _ArcIteratorLattice(lattice, state)
    arcs = []
    while not it.done:
        arcs.append(it.value)
        it.next()
    return arcs


def with_penalty(lattice: kaldifst.Lattice, penalty: float) -> kaldifst.Lattice:
    """A copy of ``lattice`` with ``penalty`` added to the graph cost of every word arc."""
    out = lattice.copy()
    if penalty == 0.0:
        return out
    for s in range(out.num_states):
        arcs = lattice_arcs(out, s)
        if not any(a.olabel for a in arcs):
            continue
        new = [kaldifst.LatticeArc(a.ilabel, a.olabel,
                                   kaldifst.LatticeWeight(a.weight.value1 + (penalty if a.olabel else 0.0),
                                                          a.weight.value2), a.nextstate)
               for a in arcs]
        out.delete_arcs(s, len(arcs))
        for a in new:
            out.add_arc(s, a)
    return out


def best_path(lattice: kaldifst.Lattice, acoustic_ratio: float = 1.0, penalty: float = 0.0,
              penalised: kaldifst.Lattice | None = None) -> BestPath:
    """The best path with acoustic costs times ``acoustic_ratio`` (``acwt / acwt0``)
    and ``penalty`` per word.

    ``penalised`` may pass ``with_penalty(lattice, penalty)`` already made
    (sweeps reuse it across acoustic scales).
    """
    lat = (penalised if penalised is not None else with_penalty(lattice, penalty)).copy()
    kaldifst.scale_lattice(kaldifst.lattice_scale(1.0, acoustic_ratio), lat)
    ok, ilabels, olabels, weight = kaldifst.get_linear_symbol_sequence(kaldifst.shortest_path(lat))
    if not ok:
        raise GraphError("the lattice's best path is not linear")
    words = [o for o in olabels if o]
    return BestPath(words, np.asarray([i for i in ilabels if i], dtype=np.int64),
                    float(weight.value1) - penalty * len(words), float(weight.value2))


def sweep(lattice: kaldifst.Lattice, ratios: Sequence[float], penalties: Sequence[float]
          ) -> dict[tuple[float, float], list[int]]:
    """The best word sequence for every (acoustic ratio, penalty) pair."""
    out: dict[tuple[float, float], list[int]] = {}
    for penalty in penalties:
        penalised = with_penalty(lattice, penalty)
        for ratio in ratios:
            out[(ratio, penalty)] = best_path(lattice, ratio, penalty, penalised).word_ids
    return out


#: Distinct word sequences read off a lattice for word confidences.
NBEST_FOR_CONFIDENCE = 20


def word_acceptor(lattice: kaldifst.Lattice, acoustic_ratio: float, penalty: float) -> kaldifst.StdVectorFst:
    """The lattice as a tropical acceptor over words: cost = graph + penalty per word + ratio * acoustic."""
    out = kaldifst.StdVectorFst()
    for _ in range(lattice.num_states):
        out.add_state()
    out.start = lattice.start
    for s in range(lattice.num_states):
        final = lattice.final(s)
        if np.isfinite(final.value1) and np.isfinite(final.value2):
            out.set_final(s, final.value1 + acoustic_ratio * final.value2)
        for a in lattice_arcs(lattice, s):
            cost = a.weight.value1 + acoustic_ratio * a.weight.value2 + (penalty if a.olabel else 0.0)
            out.add_arc(s, kaldifst.StdArc(a.olabel, a.olabel, cost, a.nextstate))
    return out


def nbest_words(lattice: kaldifst.Lattice, acoustic_ratio: float = 1.0, penalty: float = 0.0,
                n: int = NBEST_FOR_CONFIDENCE) -> list[tuple[list[int], float]]:
    """The ``n`` best distinct word sequences of a lattice with their costs, best first."""
    words = word_acceptor(lattice, acoustic_ratio, penalty)
    kaldifst.rmepsilon(words)
    best = kaldifst.shortest_path(kaldifst.determinize(words), n=n)
    out = []
    for path in kaldifst.convert_nbest_to_vector(best):
        ok, _, olabels, weight = kaldifst.get_linear_symbol_sequence(path)
        if ok:
            out.append(([o for o in olabels if o], float(weight.value)))
    return sorted(out, key=lambda p: p[1])


def word_confidences(best: Sequence[int], nbest: Sequence[tuple[list[int], float]]) -> list[float]:
    """Confidence of each word of ``best``: the posterior mass of the n-best sequences
    (weights ``exp(-cost)``, normalised over the list) that have the same word at the
    aligned position. 1.0 for every word when the list has only ``best``."""
    from asr.score.align import align_indices

    if not nbest:
        return [1.0] * len(best)
    costs = np.array([c for _, c in nbest])
    post = np.exp(-(costs - costs.min()))
    post /= post.sum()
    conf = np.zeros(len(best))
    for (hyp, _), p in zip(nbest, post):
        for i, k in align_indices(list(best), hyp):
            if i is not None and k is not None and best[i] == hyp[k]:
                conf[i] += p
    return [round(float(c), 3) for c in conf]
