"""Maximum mutual information (MMI), the sequence criterion, over graphs whose arcs emit pdfs.

For an utterance of network outputs ``y`` (T, P), scaled log-likelihoods of the pdfs
(e.g. acwt · (log posterior - log prior)), a graph G gives

    log p_G(y) = log Σ_π  final(π_T) · Π_t w(π_t) · exp(y[t, pdf(π_t)])

over every path π of T arcs from G's start state (each arc consumes one frame: the
transition-id graphs H∘C∘G and H∘C∘L∘G with their epsilons removed). MMI maximises

    F = log p_num(y) - log p_den(y)

with the numerator the graph of the utterance's own transcript (or the one path of its
alignment) and the denominator every phone sequence under a phone n-gram, built once
(Povey et al., "Purely sequence-trained neural networks for ASR based on lattice-free
MMI", Interspeech 2016). ∂F/∂y[t, p] = γ_num(t, p) - γ_den(t, p): the pdfs' occupation
posteriors under each graph, from :func:`forward_backward`.

Everything is in log space (the forward and backward variables as log-sum-exps grouped by
state), batched over utterances of different lengths, on the CPU or on CUDA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from asr.errors import GraphError

NEG_INF = float("-inf")


@dataclass(frozen=True)
class ArcGraph:
    """An epsilon-free graph whose arcs each consume one frame and emit a pdf.

    Attributes:
        num_states: S.
        start: the start state.
        final: (S,) float64 log final weights (-inf: not final).
        src, dst: (A,) int64 each arc's states.
        pdf: (A,) int64 the pdf each arc emits (0-based).
        logw: (A,) float64 each arc's log weight (-cost).
    """

    num_states: int
    start: int
    final: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    pdf: np.ndarray
    logw: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.src)
        if not (len(self.dst) == len(self.pdf) == len(self.logw) == n) or len(self.final) != self.num_states:
            raise GraphError("arc graph: arrays of different lengths")
        if not 0 <= self.start < self.num_states:
            raise GraphError(f"arc graph: start state {self.start} of {self.num_states}")
        if n and (min(self.src.min(), self.dst.min()) < 0 or max(self.src.max(), self.dst.max()) >= self.num_states):
            raise GraphError("arc graph: an arc's state is out of range")
        if not np.isfinite(self.final).any():
            raise GraphError("arc graph: no final state")

    @classmethod
    def from_fst(cls, fst, label_pdf: np.ndarray) -> "ArcGraph":
        """From a kaldifst FST over transition ids (``label_pdf[label - 1]`` is a label's pdf,
        :attr:`asr.hmm.transitions.Transitions.tid_pdf`), costs as -log weights. Epsilon input
        arcs must be removed first (``kaldifst.rmepsilon``)."""
        import kaldifst

        src, dst, lab, cost = [], [], [], []
        final = np.full(fst.num_states, NEG_INF)
        for s in range(fst.num_states):
            w = fst.final(s).value
            if math.isfinite(w):
                final[s] = -w
            for arc in kaldifst.ArcIterator(fst, s):
                if arc.ilabel == 0:
                    raise GraphError(f"arc graph: state {s} has an epsilon input arc (remove epsilons first)")
                src.append(s), dst.append(arc.nextstate), lab.append(arc.ilabel), cost.append(arc.weight.value)
        labels = np.asarray(lab, dtype=np.int64)
        if len(labels) and labels.max() > len(label_pdf):
            raise GraphError(f"arc graph: input label {labels.max()} has no pdf ({len(label_pdf)} labels)")
        return cls(fst.num_states, fst.start, final, np.asarray(src, np.int64), np.asarray(dst, np.int64),
                   np.asarray(label_pdf, np.int64)[labels - 1], -np.asarray(cost, np.float64))

    @classmethod
    def linear(cls, pdfs: np.ndarray) -> "ArcGraph":
        """The one path of an alignment: T + 1 states, arc t emits ``pdfs[t]`` with weight 1."""
        t = len(pdfs)
        final = np.full(t + 1, NEG_INF)
        final[t] = 0.0
        return cls(t + 1, 0, final, np.arange(t, dtype=np.int64), np.arange(1, t + 1, dtype=np.int64),
                   np.asarray(pdfs, np.int64), np.zeros(t))

    def tensors(self, device: torch.device, dtype: torch.dtype = torch.float64) -> "_GraphTensors":
        return _GraphTensors(*(torch.as_tensor(a, device=device) for a in (self.src, self.dst, self.pdf)),
                             torch.as_tensor(self.logw, device=device, dtype=dtype),
                             torch.as_tensor(self.final, device=device, dtype=dtype), self.num_states, self.start)


@dataclass(frozen=True)
class _GraphTensors:
    src: torch.Tensor
    dst: torch.Tensor
    pdf: torch.Tensor
    logw: torch.Tensor
    final: torch.Tensor
    num_states: int
    start: int


def scatter_logsumexp(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """log Σ exp(values) grouped by ``index`` along the last dim: (..., A) → (..., size),
    -inf for a group with no finite value."""
    shape = (*values.shape[:-1], size)
    idx = index.expand_as(values)
    peak = torch.full(shape, NEG_INF, dtype=values.dtype, device=values.device)
    peak = peak.scatter_reduce(-1, idx, values, reduce="amax", include_self=True)
    safe = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    total = torch.zeros(shape, dtype=values.dtype, device=values.device)
    total = total.scatter_add(-1, idx, torch.exp(values - safe.gather(-1, idx)))
    return torch.log(total) + safe


def forward_backward(graph: ArcGraph, y: torch.Tensor, lengths: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """log p_G(y) of each utterance and the pdfs' occupation posteriors under G.

    Args:
        y: (B, T, P) log-likelihoods (frames past an utterance's length are ignored).
        lengths: (B,) frames of each utterance.

    Returns:
        (log_z (B,), gamma (B, T, P)) in ``y``'s dtype: gamma[b, t] sums to 1 over the
        pdfs for t < lengths[b] and is 0 after; log_z is -inf (and gamma 0) where G has
        no path of the utterance's length.
    """
    g = graph.tensors(y.device, y.dtype)
    B, T, P = y.shape
    lengths = lengths.to(y.device)[:, None]  # (B, 1)
    final = g.final.expand(B, -1)
    alpha = torch.full((B, T + 1, g.num_states), NEG_INF, dtype=y.dtype, device=y.device)
    alpha[:, 0, g.start] = 0.0
    for t in range(T):  # alpha[:, t + 1, s]: every path of t + 1 arcs from the start into s
        alpha[:, t + 1] = scatter_logsumexp(alpha[:, t, g.src] + y[:, t, g.pdf] + g.logw, g.dst, g.num_states)
    log_z = torch.logsumexp(alpha.gather(1, lengths[:, :, None].expand(-1, 1, g.num_states))[:, 0] + final, -1)
    gamma = torch.zeros_like(y)
    beta = torch.where(lengths == T, final, torch.full_like(final, NEG_INF))  # beta at frame T
    for t in range(T - 1, -1, -1):  # beta holds beta[t + 1]: every way from s to the end
        emit = y[:, t, g.pdf] + g.logw  # (B, A)
        arc_post = alpha[:, t, g.src] + emit + beta[:, g.dst] - log_z[:, None]
        gamma[:, t] = scatter_logsumexp(arc_post, g.pdf, P).exp()
        beta = scatter_logsumexp(emit + beta[:, g.dst], g.src, g.num_states)
        beta = torch.where(lengths == t, final, torch.where(lengths > t, beta, torch.full_like(beta, NEG_INF)))
    return log_z, torch.nan_to_num(gamma, nan=0.0)


def forward_backward_scaled(graph: ArcGraph, y: torch.Tensor, lengths: torch.Tensor
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`forward_backward` in probability space, each frame's forward variables rescaled
    to sum to 1 (Rabiner's scaling; Kaldi's chain denominator computes so): a gather, two
    products and a scatter-add over the arcs a frame, against about twice as many passes in
    log space. The same results (tests: to 1e-9 in float64); float32 is enough for training."""
    g = graph.tensors(y.device, y.dtype)
    B, T, P = y.shape
    lengths = lengths.to(y.device)[:, None]
    peak = y.max(-1, keepdim=True).values  # (B, T, 1): e = exp(y - peak) <= 1
    e = torch.exp(y - peak)
    w, final = g.logw.exp(), g.final.exp()
    alpha = torch.zeros(B, T + 1, g.num_states, dtype=y.dtype, device=y.device)
    alpha[:, 0, g.start] = 1.0
    scale = torch.ones(B, T, dtype=y.dtype, device=y.device)
    for t in range(T):
        nxt = torch.zeros(B, g.num_states, dtype=y.dtype, device=y.device)
        nxt.index_add_(1, g.dst, alpha[:, t, g.src] * w * e[:, t, g.pdf])
        c = nxt.sum(-1, keepdim=True)
        c = torch.where((c > 0) & (lengths > t), c, torch.ones_like(c))
        alpha[:, t + 1] = nxt / c
        scale[:, t] = c[:, 0]
    end = (alpha.gather(1, lengths[:, :, None].expand(-1, 1, g.num_states))[:, 0] * final).sum(-1)  # (B,)
    valid = torch.arange(T, device=y.device)[None, :] < lengths
    log_z = torch.log(end) + (torch.log(scale) + peak[..., 0]).masked_fill(~valid, 0.0).sum(-1)
    gamma = torch.zeros_like(y)
    end_beta = final / torch.where(end > 0, end, torch.ones_like(end))[:, None]  # (B, S)
    beta = torch.where(lengths == T, end_beta, torch.zeros_like(end_beta))
    for t in range(T - 1, -1, -1):  # beta holds beta[t + 1], scaled to match alpha[t + 1]
        emit = w * e[:, t, g.pdf] / scale[:, t:t + 1]  # (B, A)
        arc_post = alpha[:, t, g.src] * emit * beta[:, g.dst]
        gamma[:, t].index_add_(1, g.pdf, arc_post)
        prev = torch.zeros(B, g.num_states, dtype=y.dtype, device=y.device).index_add_(1, g.src, emit * beta[:, g.dst])
        beta = torch.where(lengths == t, end_beta, torch.where(lengths > t, prev, torch.zeros_like(prev)))
    return log_z, gamma


class _GraphLogLikelihood(torch.autograd.Function):
    """log p_G(y) with its gradient γ_G (the forward-backward's posteriors)."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, lengths: torch.Tensor, graph: ArcGraph, scaled: bool) -> torch.Tensor:
        fb = forward_backward_scaled if scaled else forward_backward
        log_z, gamma = fb(graph, y.detach(), lengths)
        ctx.save_for_backward(gamma)
        return log_z

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (gamma,) = ctx.saved_tensors
        return grad[:, None, None] * gamma, None, None, None


def graph_log_likelihood(graph: ArcGraph, y: torch.Tensor, lengths: torch.Tensor,
                         scaled: bool = False) -> torch.Tensor:
    """log p_G(y), (B,), differentiable in ``y`` (B, T, P): its gradient is γ_G (in log space,
    or ``scaled``: :func:`forward_backward_scaled`)."""
    return _GraphLogLikelihood.apply(y, lengths, graph, scaled)


def alignment_log_likelihood(y: torch.Tensor, pdfs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """log p of the one path of each utterance's alignment: Σ_t y[b, t, pdfs[b, t]] over
    t < lengths[b], (B,) (its transition weights, which the network does not change, left out)."""
    mask = torch.arange(y.shape[1], device=y.device)[None, :] < lengths.to(y.device)[:, None]
    picked = y.gather(2, pdfs.clamp(min=0)[:, :, None])[:, :, 0]
    return (picked * mask).sum(1)


def mmi_objective(y: torch.Tensor, lengths: torch.Tensor, den: ArcGraph, num_pdfs: torch.Tensor,
                  scaled: bool = False) -> torch.Tensor:
    """Σ_b (log p_num - log p_den) / Σ_b lengths[b]: the MMI objective per frame (to be
    maximised), the numerator each utterance's alignment (``num_pdfs`` (B, T), its pdf
    each frame), the denominator graph ``den``. y: (B, T, P) scaled log-likelihoods."""
    num = alignment_log_likelihood(y, num_pdfs, lengths)
    return (num - graph_log_likelihood(den, y, lengths, scaled)).sum() / lengths.sum()
