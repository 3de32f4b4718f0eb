"""Lattice decoding in worker processes, each loading the graph once.

This module imports no torch (the workers are spawned, and start in about
a second): the parent computes the score matrices and sends them over.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Callable, Iterable

import numpy as np

from asr.decode.lattice import LatticeDecoder, best_path, sweep
from asr.errors import AsrError
from asr.hmm.context import ContextDependency
from asr.hmm.transitions import Transitions
from asr.lang.graph import load_graph

_worker: dict = {}


def init_worker(graph_path: str, ctx: ContextDependency, beam: float, lattice_beam: float) -> None:
    """Load the graph and make the decoder, once per process."""
    graph = load_graph(graph_path)
    _worker["decoder"] = LatticeDecoder(graph, Transitions(ctx), beam, lattice_beam, name=graph_path)


def sweep_utt(utt: str, scores: np.ndarray, ratios, penalties) -> tuple[str, object]:
    """(utt, {(ratio, penalty): word ids}) or (utt, the AsrError that stopped it)."""
    try:
        return utt, sweep(_worker["decoder"].lattice(scores, utt), ratios, penalties)
    except AsrError as exc:
        return utt, exc


def best_utt(utt: str, scores: np.ndarray, penalty: float) -> tuple[str, object]:
    """(utt, BestPath at ``penalty``) or (utt, the AsrError that stopped it)."""
    try:
        return utt, best_path(_worker["decoder"].lattice(scores, utt), 1.0, penalty)
    except AsrError as exc:
        return utt, exc


def run_jobs(task: Callable, items: Iterable[tuple], nj: int, init_args: tuple) -> dict[str, object]:
    """``task(*item)`` for every item, in ``nj`` processes (in this one when nj == 1).

    Each process calls ``init_worker(*init_args)`` first; the result is
    {utt: value or AsrError}.
    """
    items = list(items)
    if nj <= 1 or len(items) <= 1:
        init_worker(*init_args)
        return dict(task(*item) for item in items)
    with ProcessPoolExecutor(max_workers=nj, mp_context=get_context("spawn"),
                             initializer=init_worker, initargs=init_args) as pool:
        return dict(pool.map(task, *zip(*items), chunksize=max(1, len(items) // (4 * nj))))
