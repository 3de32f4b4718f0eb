"""Word decoding in worker processes, each loading the graph once: best paths
(FasterDecoder, with max-active pruning). A worker made with a word insertion penalty decodes over the graph with the
penalty on its word arcs (:func:`asr.lang.word_graph.with_word_penalty`).

This module imports no torch (the workers are spawned, and start in about
a second): the parent computes the score matrices and sends them over.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from asr.decode.lattice import DEFAULT_BEAM, DEFAULT_LATTICE_BEAM, BestPath
from asr.decode.wfst import WfstDecoder
from asr.errors import AsrError
from asr.hmm.context import ContextDependency
from asr.hmm.transitions import Transitions
from asr.lang.graph import load_graph
from asr.symbols import read_symbol_table
from asr.lang.word_graph import WORDS_TXT, with_word_penalty

_worker: dict = {}


@dataclass(frozen=True)
class SearchOptions:
    """Beams of the best-path decoder and of the lattice decoder (``asr transcribe``'s word
    confidences; it has no max-active pruning, so it gets a narrower beam)."""

    beam: float = 13.0
    max_active: int = 2000
    lattice_search_beam: float = DEFAULT_BEAM
    lattice_beam: float = DEFAULT_LATTICE_BEAM


def load_word_graph_fst(graph_path: str, penalty: float = 0.0):
    """HCLG.fst of a word graph dir, with ``penalty`` on its word arcs (words.txt beside it)."""
    graph = load_graph(graph_path)
    if penalty == 0.0:
        return graph
    num_words = max(read_symbol_table(Path(graph_path).parent / WORDS_TXT).values())
    return with_word_penalty(graph, penalty, num_words)


def init_worker(graph_path: str, ctx: ContextDependency, opts: SearchOptions, penalty: float = 0.0) -> None:
    """Load the graph (with the word ``penalty`` on it) and make the decoder over it, once per process."""
    graph = load_word_graph_fst(graph_path, penalty)
    transitions = Transitions(ctx)
    _worker["penalty"] = penalty
    _worker["faster"] = WfstDecoder(graph, transitions, beam=opts.beam, max_active=opts.max_active, check=False)


def faster_utt(utt: str, scores: np.ndarray) -> tuple[str, object]:
    """(utt, BestPath of the Viterbi beam search) or (utt, the AsrError that stopped it)."""
    try:
        r = _worker["faster"].decode(scores, utt)
        graph_cost = r.graph_cost - _worker["penalty"] * len(r.olabels)
        return utt, BestPath(r.olabels, r.tids, graph_cost, r.acoustic_cost)
    except AsrError as exc:
        return utt, exc


@contextmanager
def decoding_pool(nj: int, init_args: tuple) -> Iterator[Callable[[Callable, Iterable[tuple]], dict]]:
    """A ``run(task, items)`` that calls ``task(*item)`` for every item in ``nj``
    processes (in this one when nj == 1), each of which called
    ``init_worker(*init_args)`` once; ``run`` returns {utt: value or AsrError}."""
    if nj <= 1:
        init_worker(*init_args)
        yield lambda task, items: dict(task(*item) for item in items)
        return
    with ProcessPoolExecutor(max_workers=nj, mp_context=get_context("spawn"),
                             initializer=init_worker, initargs=init_args) as pool:
        def run(task: Callable, items: Iterable[tuple]) -> dict:
            items = list(items)
            if not items:
                return {}
            return dict(pool.map(task, *zip(*items), chunksize=max(1, len(items) // (4 * nj))))

        yield run


def run_jobs(task: Callable, items: Iterable[tuple], nj: int, init_args: tuple) -> dict[str, object]:
    """One ``task`` over ``items`` in a :func:`decoding_pool` of ``nj`` processes."""
    items = list(items)
    with decoding_pool(min(nj, max(1, len(items))), init_args) as run:
        return run(task, items)
