"""Viterbi beam decoding of pdf score matrices over a WFST whose input labels
are transition ids (H∘C∘G from :mod:`asr.lang.graph`, or a per-utterance
alignment graph) with kaldi-decoder's ``FasterDecoder``.

The score matrix is ``acwt * (log_posterior - log_prior)``, shape
(T, num_pdfs), already scaled. ``DecodableCtc`` scores input label i at
frame t with column i - 1 and has no bounds check, so the decoder gathers
the pdf column of every transition id into a (T, num_tids) matrix
(:meth:`Transitions.label_scores`) and checks the shape, finiteness and
(once, at load, for graphs of moderate size) the graph's labels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import kaldi_decoder
import kaldifst
import numpy as np

from asr.errors import GraphError, ModelError
from asr.hmm.transitions import PhoneRun, Transitions
from asr.lang.graph import load_graph

logger = logging.getLogger(__name__)

#: Graphs with at most this many states get every input label checked at load
#: (Python arc iteration costs ~5 µs an arc; bigger graphs are trusted).
MAX_STATES_TO_CHECK = 200_000


@dataclass
class DecodeResult:
    """The best path of one utterance.

    Attributes:
        olabels: the non-epsilon output labels along the path: phone ids of
            phones.txt for a phone graph, word ids of words.txt for a word graph.
        tids: (T,) int64, the transition id of each frame (the alignment).
        pdfs: (T,) int64, the pdf of each frame.
        runs: the phones of the path with their frames (from ``tids``).
        graph_cost: graph (LM + transition) cost of the path, -log units.
        acoustic_cost: minus the summed scores along the path.
        reached_final: False when no final state survived and the best
            partial path was returned.
    """

    olabels: list[int]
    tids: np.ndarray
    pdfs: np.ndarray
    runs: list[PhoneRun]
    graph_cost: float
    acoustic_cost: float
    reached_final: bool

    @property
    def phones(self) -> list[int]:
        """The phone ids of the path (over a phone graph), as every phone decoder gives them."""
        return self.olabels


def max_labels(graph: kaldifst.StdFst) -> tuple[int, int]:
    """The largest (input, output) labels on any arc of ``graph`` (~5 µs an arc)."""
    top_in = top_out = 0
    for s in range(graph.num_states):
        for arc in kaldifst.ArcIterator(graph, s):
            top_in, top_out = max(top_in, arc.ilabel), max(top_out, arc.olabel)
    return top_in, top_out


def check_labels(graph: kaldifst.StdFst, num_ilabels: int, num_olabels: int | None, name: str) -> None:
    """GraphError when an input label exceeds ``num_ilabels`` (transition ids) or an
    output label exceeds ``num_olabels`` (phones). Only graphs of at most
    ``MAX_STATES_TO_CHECK`` states are walked; bigger ones are trusted."""
    if graph.num_states > MAX_STATES_TO_CHECK:
        logger.debug("%s: %d states, labels not checked", name, graph.num_states)
        return
    top_in, top_out = max_labels(graph)
    if top_in > num_ilabels:
        raise GraphError(f"{name}: input label {top_in} exceeds the model's {num_ilabels} transition "
                         f"ids (graph and acoustic model do not match, or a disambiguation symbol "
                         f"left in it)")
    if num_olabels is not None and top_out > num_olabels:
        raise GraphError(f"{name}: output label {top_out} is not one of the {num_olabels} phones "
                         f"(a disambiguation symbol left in the graph?)")


def check_scores(scores: np.ndarray, num_pdfs: int, where: str) -> np.ndarray:
    """Return ``scores`` as C-contiguous float32 (T, num_pdfs); ModelError naming ``where`` if unusable."""
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] != num_pdfs:
        raise ModelError(f"{where}: score matrix has shape {scores.shape}, expected "
                         f"(T, {num_pdfs}) (acoustic model and graph do not match?)")
    if scores.shape[0] == 0:
        raise ModelError(f"{where}: score matrix has no frames (T=0)")
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    if not np.isfinite(scores).all():
        bad = int(np.argwhere(~np.isfinite(scores))[0, 0])
        raise ModelError(f"{where}: score matrix has NaN or inf (first at frame {bad})")
    return scores


class WfstDecoder:
    """FasterDecoder over one graph, loaded once; reuse it for many utterances
    (one instance per worker: it is not thread-safe)."""

    def __init__(self, graph: Union[kaldifst.StdFst, Path, str], transitions: Transitions,
                 beam: float = 13.0, max_active: int = 7000, min_active: int = 200,
                 check: bool = True) -> None:
        """Args:
            graph: a loaded FST or the path of one (vector or const).
            transitions: the model's transition ids; the graph's input labels
                must lie in 0..num_tids; score matrices have num_pdfs columns.
            beam, max_active, min_active: FasterDecoder pruning options.
            check: walk the graph's labels (skip for graphs built here, e.g.
                per-utterance alignment graphs).
        """
        self.graph = load_graph(graph) if isinstance(graph, (str, Path)) else graph
        self.name = str(graph) if isinstance(graph, (str, Path)) else "graph"
        if self.graph is None or self.graph.num_states == 0 or self.graph.start < 0:
            raise GraphError(f"{self.name}: decoding graph is empty")
        self.transitions = transitions
        self.num_pdfs = transitions.num_pdfs
        if check:
            check_labels(self.graph, transitions.num_tids, None, self.name)
        opts = kaldi_decoder.FasterDecoderOptions(beam=beam, max_active=max_active,
                                                  min_active=min_active)
        self._decoder = kaldi_decoder.FasterDecoder(self.graph, opts)

    def decode(self, scores: np.ndarray, utt: str = "", warn_partial: bool = True) -> DecodeResult:
        """Decode one utterance.

        Args:
            scores: (T, num_pdfs) float32, ``acwt * (log_post - log_prior)``.
            utt: utterance id, only for messages.
            warn_partial: log a warning when no final state is reached (a caller
                that retries at a wider beam says so itself).

        Raises:
            ModelError: wrong shape, T == 0, NaN or inf.
            GraphError: no path survived (the graph cannot produce T frames).
        """
        scores = check_scores(scores, self.num_pdfs, f"{self.name}: utterance {utt}" if utt else self.name)
        num_frames = scores.shape[0]
        self._decoder.decode(kaldi_decoder.DecodableCtc(self.transitions.label_scores(scores)))
        reached_final = self._decoder.reached_final()
        ok, lattice = self._decoder.get_best_path()
        if not ok:
            raise GraphError(f"{self.name}: utterance {utt}: no path survived decoding "
                             f"{num_frames} frames (beam too small or graph too restrictive)")
        ok, ilabels, olabels, weight = kaldifst.get_linear_symbol_sequence(lattice)
        if not ok or len(ilabels) != num_frames:
            raise GraphError(f"{self.name}: utterance {utt}: best path has {len(ilabels)} "
                             f"frames, expected {num_frames}")
        if not reached_final and warn_partial:
            logger.warning("%s: utterance %s: no final state reached; using the best "
                           "partial path", self.name, utt)
        tids = np.asarray(ilabels, dtype=np.int64)
        return DecodeResult(olabels=[o for o in olabels if o],
                            tids=tids, pdfs=self.transitions.pdfs(tids),
                            runs=self.transitions.phone_runs(tids),
                            graph_cost=float(weight.value1),
                            acoustic_cost=float(weight.value2),
                            reached_final=bool(reached_final))
