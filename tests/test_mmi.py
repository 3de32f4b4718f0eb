"""The MMI criterion's forward-backward against brute force: every path of a toy graph
enumerated, its log-likelihood and posteriors to 1e-9; gradients by finite differences;
the numerator of one path is the cross-entropy of that path's pdfs."""

from __future__ import annotations

import itertools

import kaldifst
import numpy as np
import pytest
import torch

from asr.errors import GraphError
from asr.nn.mmi import (ArcGraph, alignment_log_likelihood, forward_backward, forward_backward_scaled,
                        graph_log_likelihood, mmi_objective)

NUM_PDFS = 3


def toy_graph(seed: int = 0) -> ArcGraph:
    """4 states, 11 arcs (self-loops, skips, a cycle back to the start), random pdfs and
    weights, two final states."""
    rng = np.random.default_rng(seed)
    src = np.array([0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3])
    dst = np.array([0, 1, 2, 1, 2, 3, 2, 3, 3, 0, 1])
    final = np.array([-np.inf, -np.inf, -0.3, -1.2])
    return ArcGraph(4, 0, final, src, dst, rng.integers(0, NUM_PDFS, len(src)), np.log(rng.uniform(0.1, 1, len(src))))


def brute_force(graph: ArcGraph, y: np.ndarray) -> tuple[float, np.ndarray]:
    """(log p, gamma (T, P)) by enumerating every path of len(y) arcs."""
    T = len(y)
    scores, pdf_paths = [], []
    for arcs in itertools.product(range(len(graph.src)), repeat=T):
        if graph.src[arcs[0]] != graph.start or any(graph.dst[a] != graph.src[b] for a, b in zip(arcs, arcs[1:])):
            continue
        end = graph.final[graph.dst[arcs[-1]]]
        if not np.isfinite(end):
            continue
        scores.append(end + sum(graph.logw[a] + y[t, graph.pdf[a]] for t, a in enumerate(arcs)))
        pdf_paths.append([graph.pdf[a] for a in arcs])
    scores = np.array(scores)
    log_z = np.logaddexp.reduce(scores)
    gamma = np.zeros_like(y)
    for score, pdfs in zip(scores, pdf_paths):
        gamma[np.arange(T), pdfs] += np.exp(score - log_z)
    return float(log_z), gamma


@pytest.mark.parametrize("T", [1, 2, 5])
def test_forward_backward_equals_every_path_enumerated(T):
    graph = toy_graph()
    y = np.random.default_rng(T).normal(size=(T, NUM_PDFS))
    want_z, want_gamma = brute_force(graph, y)
    log_z, gamma = forward_backward(graph, torch.tensor(y)[None], torch.tensor([T]))
    assert log_z.item() == pytest.approx(want_z, abs=1e-9)
    np.testing.assert_allclose(gamma[0].numpy(), want_gamma, atol=1e-9)
    np.testing.assert_allclose(gamma[0].sum(-1).numpy(), 1.0, atol=1e-9)


def test_a_batch_of_lengths_equals_each_utterance_alone():
    graph = toy_graph(1)
    rng = np.random.default_rng(7)
    lengths = [5, 2, 4]
    y = torch.tensor(rng.normal(size=(3, 5, NUM_PDFS)))
    y[1, 2:] = 1e3  # padding must not count
    log_z, gamma = forward_backward(graph, y, torch.tensor(lengths))
    for b, n in enumerate(lengths):
        want_z, want_gamma = brute_force(graph, y[b, :n].numpy())
        assert log_z[b].item() == pytest.approx(want_z, abs=1e-9)
        np.testing.assert_allclose(gamma[b, :n].numpy(), want_gamma, atol=1e-9)
        assert not gamma[b, n:].any()


def test_no_path_of_that_length_is_minus_infinity():
    # a chain of two arcs: only paths of exactly 2 frames
    graph = ArcGraph(3, 0, np.array([-np.inf, -np.inf, 0.0]), np.array([0, 1]), np.array([1, 2]),
                     np.array([0, 1]), np.zeros(2))
    log_z, gamma = forward_backward(graph, torch.zeros(2, 3, NUM_PDFS, dtype=torch.float64), torch.tensor([3, 2]))
    assert log_z[0].item() == -np.inf and not gamma[0].any()
    assert log_z[1].item() == pytest.approx(0.0) and gamma[1, 0, 0] == 1.0 and gamma[1, 1, 1] == 1.0


def test_the_gradient_is_the_posteriors_and_matches_finite_differences():
    graph = toy_graph(2)
    rng = np.random.default_rng(3)
    y = torch.tensor(rng.normal(size=(2, 4, NUM_PDFS)), requires_grad=True)
    lengths = torch.tensor([4, 3])
    graph_log_likelihood(graph, y, lengths).sum().backward()
    _, gamma = forward_backward(graph, y.detach(), lengths)
    torch.testing.assert_close(y.grad, gamma)
    pdfs = torch.tensor(rng.integers(0, NUM_PDFS, (2, 4)))
    assert torch.autograd.gradcheck(lambda x: mmi_objective(x, lengths, graph, pdfs), (y.detach().requires_grad_(),),
                                    eps=1e-6, atol=1e-7)


def test_the_numerator_of_one_path_is_the_cross_entropy_of_its_pdfs():
    rng = np.random.default_rng(4)
    logits = torch.tensor(rng.normal(size=(6, NUM_PDFS)), requires_grad=True)
    pdfs = torch.tensor(rng.integers(0, NUM_PDFS, 6))
    y = torch.log_softmax(logits, -1)
    path = graph_log_likelihood(ArcGraph.linear(pdfs.numpy()), y[None], torch.tensor([6]))
    assert path.item() == pytest.approx(alignment_log_likelihood(y[None], pdfs[None], torch.tensor([6])).item())
    ce = torch.nn.functional.cross_entropy(logits, pdfs, reduction="sum")
    assert -path.item() == pytest.approx(ce.item(), abs=1e-12)
    (g_path,) = torch.autograd.grad(-path.sum(), logits)
    (g_ce,) = torch.autograd.grad(ce, logits)
    torch.testing.assert_close(g_path, g_ce)


def test_the_objective_rises_when_the_alignment_is_the_only_path():
    """Denominator = the numerator's own path: MMI is 0 (its maximum); any other graph: below 0."""
    pdfs = np.array([0, 0, 1, 2])
    y = torch.tensor(np.random.default_rng(5).normal(size=(1, 4, NUM_PDFS)))
    lengths = torch.tensor([4])
    assert mmi_objective(y, lengths, ArcGraph.linear(pdfs), torch.tensor(pdfs)[None]).item() == pytest.approx(0.0)
    assert mmi_objective(y, lengths, toy_graph(), torch.tensor(pdfs)[None]).item() < 0.0


def test_from_fst_reads_labels_as_pdfs_and_costs_as_weights():
    fst = kaldifst.StdVectorFst()
    for _ in range(3):
        fst.add_state()
    fst.start = 0
    fst.set_final(2, 0.5)
    fst.add_arc(0, kaldifst.StdArc(3, 0, 1.25, 1))  # transition id 3 → pdf label_pdf[2]
    fst.add_arc(1, kaldifst.StdArc(1, 0, 0.0, 1))
    fst.add_arc(1, kaldifst.StdArc(2, 7, 0.75, 2))
    label_pdf = np.array([0, 0, 1, 1])
    graph = ArcGraph.from_fst(fst, label_pdf)
    np.testing.assert_array_equal(graph.pdf, [1, 0, 0])
    np.testing.assert_allclose(graph.logw, [-1.25, 0.0, -0.75])
    np.testing.assert_allclose(graph.final, [-np.inf, -np.inf, -0.5])
    y = np.random.default_rng(6).normal(size=(3, 2))
    want, _ = brute_force(graph, y)
    assert graph_log_likelihood(graph, torch.tensor(y)[None], torch.tensor([3])).item() == pytest.approx(want)
    with pytest.raises(GraphError, match="no pdf"):
        ArcGraph.from_fst(fst, label_pdf[:2])
    fst.add_arc(2, kaldifst.StdArc(0, 0, 0.0, 0))
    with pytest.raises(GraphError, match="epsilon"):
        ArcGraph.from_fst(fst, label_pdf)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_scaled_forward_backward_equals_the_log_space_one(seed):
    graph = toy_graph(seed)
    rng = np.random.default_rng(10 + seed)
    y = torch.tensor(rng.normal(scale=3.0, size=(3, 6, NUM_PDFS)))
    lengths = torch.tensor([6, 1, 4])
    want_z, want_gamma = forward_backward(graph, y, lengths)
    log_z, gamma = forward_backward_scaled(graph, y, lengths)
    torch.testing.assert_close(log_z, want_z, rtol=0, atol=1e-9)
    torch.testing.assert_close(gamma, want_gamma, rtol=0, atol=1e-9)
    log_z32, gamma32 = forward_backward_scaled(graph, y.float(), lengths)
    torch.testing.assert_close(log_z32.double(), want_z, rtol=0, atol=1e-4)
    torch.testing.assert_close(gamma32.double(), want_gamma, rtol=0, atol=1e-5)
    chain = ArcGraph(3, 0, np.array([-np.inf, -np.inf, 0.0]), np.array([0, 1]), np.array([1, 2]),
                     np.array([0, 1]), np.zeros(2))  # only 2-frame paths: none of 3 frames
    z, gam = forward_backward_scaled(chain, y[:1, :3], torch.tensor([3]))
    assert z.item() == -np.inf and not gam.any()
