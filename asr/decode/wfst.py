"""Viterbi beam decoding of pdf score matrices over a pdf-labelled WFST
(H∘G from :mod:`asr.lang.graph`, or any graph whose input labels are pdf+1)
with kaldi-decoder's ``FasterDecoder``.

The score matrix is ``acwt * (log_posterior - log_prior)``, shape
(T, num_pdfs), already scaled: ``DecodableCtc`` scores input label i at
frame t with ``scores[t, i - 1]`` and has no bounds check, so the wrapper
checks the shape, finiteness and (once, at load) the graph's labels.
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
from asr.lang.graph import load_graph

logger = logging.getLogger(__name__)

#: Graphs with at most this many states get every input label checked at load
#: (Python arc iteration costs ~5 µs an arc; bigger graphs are trusted).
MAX_STATES_TO_CHECK = 200_000


@dataclass
class DecodeResult:
    """The best path of one utterance.

    Attributes:
        phone_ids: output labels along the path (phone ids of phones.txt).
        pdfs: (T,) int64, the pdf of each frame (the alignment).
        graph_cost: graph (LM + transition) cost of the path, -log units.
        acoustic_cost: minus the summed scores along the path.
        reached_final: False when no final state survived and the best
            partial path was returned.
    """

    phone_ids: list[int]
    pdfs: np.ndarray
    graph_cost: float
    acoustic_cost: float
    reached_final: bool


def max_labels(graph: kaldifst.StdFst) -> tuple[int, int]:
    """The largest (input, output) labels on any arc of ``graph`` (~5 µs an arc)."""
    top_in = top_out = 0
    for s in range(graph.num_states):
        for arc in kaldifst.ArcIterator(graph, s):
            top_in, top_out = max(top_in, arc.ilabel), max(top_out, arc.olabel)
    return top_in, top_out


class WfstDecoder:
    """FasterDecoder over one graph, loaded once; reuse it for many utterances
    (one instance per worker: it is not thread-safe)."""

    def __init__(self, graph: Union[kaldifst.StdFst, Path, str], num_pdfs: int,
                 beam: float = 13.0, max_active: int = 7000, min_active: int = 200) -> None:
        """Args:
            graph: a loaded FST or the path of one (vector or const).
            num_pdfs: columns of the score matrices; the graph's input labels
                must lie in 0..num_pdfs.
            beam, max_active, min_active: FasterDecoder pruning options.
        """
        self.graph = load_graph(graph) if isinstance(graph, (str, Path)) else graph
        self.name = str(graph) if isinstance(graph, (str, Path)) else "graph"
        if self.graph is None or self.graph.num_states == 0 or self.graph.start < 0:
            raise GraphError(f"{self.name}: decoding graph is empty")
        if num_pdfs < 1:
            raise GraphError(f"{self.name}: num_pdfs must be positive, got {num_pdfs}")
        self.num_pdfs = num_pdfs
        if self.graph.num_states <= MAX_STATES_TO_CHECK:
            top, _ = max_labels(self.graph)
            if top > num_pdfs:
                raise GraphError(f"{self.name}: input label {top} exceeds num_pdfs={num_pdfs} "
                                 f"(graph and acoustic model do not match, or #0 left in it)")
        opts = kaldi_decoder.FasterDecoderOptions(beam=beam, max_active=max_active,
                                                  min_active=min_active)
        self._decoder = kaldi_decoder.FasterDecoder(self.graph, opts)

    def _check_scores(self, scores: np.ndarray, utt: str) -> np.ndarray:
        """Return ``scores`` as C-contiguous float32 (T, num_pdfs); ModelError if unusable."""
        where = f"{self.name}: utterance {utt}" if utt else self.name
        scores = np.asarray(scores)
        if scores.ndim != 2 or scores.shape[1] != self.num_pdfs:
            raise ModelError(f"{where}: score matrix has shape {scores.shape}, expected "
                             f"(T, {self.num_pdfs}) (acoustic model and graph do not match?)")
        if scores.shape[0] == 0:
            raise ModelError(f"{where}: score matrix has no frames (T=0)")
        scores = np.ascontiguousarray(scores, dtype=np.float32)
        if not np.isfinite(scores).all():
            bad = int(np.argwhere(~np.isfinite(scores))[0, 0])
            raise ModelError(f"{where}: score matrix has NaN or inf (first at frame {bad})")
        return scores

    def decode(self, scores: np.ndarray, utt: str = "") -> DecodeResult:
        """Decode one utterance.

        Args:
            scores: (T, num_pdfs) float32, ``acwt * (log_post - log_prior)``.
            utt: utterance id, only for messages.

        Raises:
            ModelError: wrong shape, T == 0, NaN or inf.
            GraphError: no path survived (the graph cannot produce T frames).
        """
        scores = self._check_scores(scores, utt)
        num_frames = scores.shape[0]
        self._decoder.decode(kaldi_decoder.DecodableCtc(scores))
        reached_final = self._decoder.reached_final()
        ok, lattice = self._decoder.get_best_path()
        if not ok:
            raise GraphError(f"{self.name}: utterance {utt}: no path survived decoding "
                             f"{num_frames} frames (beam too small or graph too restrictive)")
        ok, ilabels, olabels, weight = kaldifst.get_linear_symbol_sequence(lattice)
        if not ok or len(ilabels) != num_frames:
            raise GraphError(f"{self.name}: utterance {utt}: best path has {len(ilabels)} "
                             f"frames, expected {num_frames}")
        if not reached_final:
            logger.warning("%s: utterance %s: no final state reached; using the best "
                           "partial path", self.name, utt)
        return DecodeResult(phone_ids=list(olabels),
                            pdfs=np.asarray(ilabels, dtype=np.int64) - 1,
                            graph_cost=float(weight.value1),
                            acoustic_cost=float(weight.value2),
                            reached_final=bool(reached_final))
