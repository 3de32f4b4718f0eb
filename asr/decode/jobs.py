"""Word decoding in worker processes, each loading the graph once: best paths
(FasterDecoder, with max-active pruning). A worker made with a word insertion penalty decodes over the graph with the
penalty on its word arcs (:func:`asr.lang.word_graph.with_word_penalty`), made once and kept
beside the graph (:func:`penalised_graph`).

This module imports no torch (the workers are spawned, and start in about
a second): the parent computes the score matrices and sends them over.
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from asr.decode.lattice import DEFAULT_BEAM, DEFAULT_LATTICE_BEAM, BestPath
from asr.decode.wfst import WfstDecoder
from asr.errors import AsrError, GraphError
from asr.io import file_sha256
from asr.hmm.context import ContextDependency
from asr.hmm.transitions import Transitions
from asr.lang.graph import load_graph, write_fst
from asr.symbols import read_symbol_table
from asr.lang.word_graph import HCLG_FST, WORDS_TXT, with_word_penalty

log = logging.getLogger(__name__)

_worker: dict = {}


@dataclass(frozen=True)
class SearchOptions:
    """Beams of the best-path decoder and of the lattice decoder (``asr transcribe``'s word
    confidences; it has no max-active pruning, so it gets a narrower beam)."""

    beam: float = 13.0
    max_active: int = 2000
    lattice_search_beam: float = DEFAULT_BEAM
    lattice_beam: float = DEFAULT_LATTICE_BEAM


def penalised_graph(graph_path: str, penalty: float) -> tuple[str, bool]:
    """HCLG with ``penalty`` on its word arcs, as (path, whether the file carries it).

    Penalty 0: the graph itself. Else a const FST beside it, ``HCLG.fst.wp<penalty>.<SHA-256
    prefix of HCLG.fst>``, made when missing (:func:`with_word_penalty` on the medium corpus's
    109 MB CD graph takes ~5.5 s; reading the result 0.1 s), so that every worker and every
    later set reads it instead of composing it again. Where the directory is not writable,
    (the graph, False): the worker composes it itself.
    """
    if penalty == 0.0:
        return graph_path, True
    path = Path(graph_path)
    cached = path.with_name(f"{path.name}.wp{penalty:g}.{file_sha256(path)[:16]}")
    if cached.is_file():
        return str(cached), True
    graph = with_word_penalty(load_graph(path), penalty, _num_words(path))
    try:
        write_fst(graph, cached, const=True)
    except (OSError, GraphError) as exc:
        log.warning("%s: cannot keep the penalised graph (%s); each process composes it", cached, exc)
        return graph_path, False
    return str(cached), True


def drop_penalised_graphs(graph_dir: Path, keep: float | None = None) -> None:
    """Delete the penalised copies of ``graph_dir``'s HCLG.fst (but the one of penalty ``keep``)."""
    for path in Path(graph_dir).glob(f"{HCLG_FST}.wp*"):
        if keep is None or not path.name.startswith(f"{HCLG_FST}.wp{keep:g}."):
            path.unlink(missing_ok=True)


def _num_words(graph_path: Path) -> int:
    return max(read_symbol_table(Path(graph_path).parent / WORDS_TXT).values())


def init_worker(graph_path: str, ctx: ContextDependency, opts: SearchOptions, penalty: float = 0.0,
                on_graph: bool = False) -> None:
    """Load the graph and make the decoder over it, once per process. ``penalty``: the word
    penalty on the graph's word arcs, put there now, or already there when ``on_graph``
    (:func:`penalised_graph`'s file; :func:`worker_args` gives both)."""
    graph = load_graph(graph_path)
    if penalty != 0.0 and not on_graph:
        graph = with_word_penalty(graph, penalty, _num_words(Path(graph_path)))
    transitions = Transitions(ctx)
    _worker["penalty"] = penalty
    _worker["faster"] = WfstDecoder(graph, transitions, beam=opts.beam, max_active=opts.max_active, check=False)


def worker_args(graph_path: str, ctx: ContextDependency, opts: SearchOptions, penalty: float = 0.0) -> tuple:
    """:func:`init_worker`'s arguments for decoding over ``graph_path`` with the word ``penalty``
    (its penalised copy made first: :func:`penalised_graph`)."""
    path, on_graph = penalised_graph(graph_path, penalty)
    return path, ctx, opts, penalty, on_graph


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
