"""Sequence training with MMI: the denominator graph of a model (the criterion itself is
:mod:`asr.nn.mmi`).

The denominator is lattice-free, as Kaldi's chain models' (Povey et al., Interspeech 2016):
every phone sequence under the phone n-gram the recipe already trains for phone decoding
(``G.fst`` of the phone lang dir, :func:`asr.lang.graph.make_decoding_graph`), through the
model's context dependency and HMMs: H∘C∘G, made once, rather than lattices of the training
data decoded with the cross-entropy model (Kaldi nnet1's and Sak et al.'s way), which would
need a decode of all the training speech before every epoch.
"""

from __future__ import annotations

from pathlib import Path

import kaldifst

from asr.errors import GraphError
from asr.hmm.context import ContextDependency
from asr.hmm.transitions import Transitions
from asr.lang.graph import DEFAULT_SELF_LOOP_SCALE, compose_hcg, g_disambig_label
from asr.nn.mmi import ArcGraph


def input_acceptor(fst) -> kaldifst.StdVectorFst:
    """The input side of a transducer as an acceptor (every arc's output label := its input
    label), weights and final weights kept."""
    out = kaldifst.StdVectorFst()
    for _ in range(fst.num_states):
        out.add_state()
    out.start = fst.start
    for s in range(fst.num_states):
        out.set_final(s, fst.final(s).value)
        for arc in kaldifst.ArcIterator(fst, s):
            out.add_arc(s, kaldifst.StdArc(arc.ilabel, arc.ilabel, arc.weight.value, arc.nextstate))
    return out


def denominator_graph(g_path: Path, ctx: ContextDependency,
                      self_loop_scale: float = DEFAULT_SELF_LOOP_SCALE) -> ArcGraph:
    """H∘C∘G of the phone n-gram ``g_path`` for ``ctx`` (:func:`asr.lang.graph.compose_hcg`, the
    transition costs as the decoder's), as an :class:`ArcGraph` over pdfs.

    Its epsilons (G's back-off arcs) are removed in the tropical semiring, as the decoder
    reads the graph: where a back-off path and a direct one reach the same state, the better
    one counts, not their sum.

    Raises:
        GraphError: G missing or unreadable, or an empty result.
    """
    g = kaldifst.StdVectorFst.read(str(g_path)) if Path(g_path).is_file() else None
    if g is None or g.num_states == 0:
        raise GraphError(f"{g_path}: phone LM G.fst is missing, unreadable or empty")
    hcg = compose_hcg(g, ctx, [g_disambig_label(len(ctx.phones))], self_loop_scale)
    den = input_acceptor(hcg)
    kaldifst.rmepsilon(den)
    if den.num_states == 0:
        raise GraphError(f"{g_path}: the denominator graph is empty")
    return ArcGraph.from_fst(den, Transitions(ctx).tid_pdf)
