"""A single-layer LSTM with peephole connections, optionally with a recurrent projection (LSTMP).

This is the cell of Gers & Schmidhuber (2000) as used by Sak, Senior & Beaufays
(2014, "LSTM recurrent neural network architectures for large scale acoustic
modeling"). The input, forget and output gates also see the cell through
diagonal (elementwise) peephole weights p_i, p_f, p_o::

    i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi + p_i ⊙ c_{t-1})
    f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf + p_f ⊙ c_{t-1})
    g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho + p_o ⊙ c_t)     (the new cell)
    m_t = o_t ⊙ tanh(c_t)
    h_t = W_hr m_t if proj_size > 0 else m_t

cuDNN (and so ``torch.nn.LSTM``) has no peephole LSTM, which is why this layer
exists. It is a drop-in replacement for a single-layer
``nn.LSTM(input_size, hidden_size, proj_size=proj_size, batch_first=True)``:
the same parameter names and shapes (gate order i, f, g, o) plus
``weight_peep`` (3, H) holding p_i, p_f, p_o; with ``weight_peep`` zero it
computes exactly what ``nn.LSTM`` does. Shapes (H = hidden_size, P =
proj_size or H):

    x (N, T, input_size) → output (N, T, P), (h_n (1, N, P), c_n (1, N, H))

Padded frames are processed like any other (no packing, no lengths); the
caller ignores their outputs. The input projection of all T frames is one
matmul; the loop over time does the recurrent matmul and
:func:`peephole_cell`, the elementwise gate math, which ``compiled=True``
runs through ``torch.compile`` (off by default: compiling takes a while).
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

CellFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def peephole_cell(gates: torch.Tensor, c_prev: torch.Tensor, weight_peep: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """One time step's elementwise part.

    gates (N, 4H): the pre-activations W_x x_t + W_h h_{t-1} + b of gates i, f, g, o;
    c_prev (N, H); weight_peep (3, H): p_i, p_f, p_o → (m_t (N, H), c_t (N, H)).
    """
    i, f, g, o = gates.chunk(4, dim=1)
    i = torch.sigmoid(i + weight_peep[0] * c_prev)
    f = torch.sigmoid(f + weight_peep[1] * c_prev)
    c = f * c_prev + i * torch.tanh(g)
    o = torch.sigmoid(o + weight_peep[2] * c)
    return o * torch.tanh(c), c


@functools.cache
def compiled_peephole_cell() -> CellFn:
    """:func:`peephole_cell` wrapped in ``torch.compile`` (shared by all layers;
    the compilation itself happens at the first call, per device/dtype/shape)."""
    return torch.compile(peephole_cell)


class PeepholeLSTM(nn.Module):
    """Single-layer, unidirectional, batch-first LSTM(P) with diagonal peepholes.

    Parameters are initialised like ``nn.LSTM``'s, uniform in ±1/sqrt(H); so
    are the peephole weights. ``compiled=True`` runs the per-step gate math
    through ``torch.compile``.
    """

    def __init__(self, input_size: int, hidden_size: int, proj_size: int = 0,
                 compiled: bool = False) -> None:
        super().__init__()
        if proj_size < 0 or (proj_size and proj_size >= hidden_size):
            raise ValueError(f"proj_size ({proj_size}) must be 0 or smaller than hidden_size ({hidden_size})")
        self.input_size, self.hidden_size, self.proj_size = input_size, hidden_size, proj_size
        self.compiled = compiled
        H, out = hidden_size, proj_size or hidden_size
        self.weight_ih_l0 = nn.Parameter(torch.empty(4 * H, input_size))
        self.weight_hh_l0 = nn.Parameter(torch.empty(4 * H, out))
        self.bias_ih_l0 = nn.Parameter(torch.empty(4 * H))
        self.bias_hh_l0 = nn.Parameter(torch.empty(4 * H))
        self.weight_hr_l0 = nn.Parameter(torch.empty(proj_size, H)) if proj_size else None
        self.weight_peep = nn.Parameter(torch.empty(3, H))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def extra_repr(self) -> str:
        proj = f", proj_size={self.proj_size}" if self.proj_size else ""
        return f"{self.input_size}, {self.hidden_size}{proj}, compiled={self.compiled}"

    # Dynamo would unroll the time loop (a new graph for every T), so an outer
    # torch.compile of the network runs this layer eagerly, as it does nn.LSTM.
    @torch.compiler.disable
    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (N, T, input_size), state (h_0 (1, N, P), c_0 (1, N, H)) or None for zeros
        → output (N, T, P), (h_n (1, N, P), c_n (1, N, H)); P = proj_size or hidden_size."""
        if x.dim() != 3 or x.size(2) != self.input_size:
            raise ValueError(f"expected input (N, T, {self.input_size}), got {tuple(x.shape)}")
        N, T, _ = x.shape
        H, out = self.hidden_size, self.proj_size or self.hidden_size
        if state is None:
            h = x.new_zeros(N, out)
            c = x.new_zeros(N, H)
        else:
            h, c = state[0][0], state[1][0]
        cell = compiled_peephole_cell() if self.compiled else peephole_cell
        # All frames' input projections (and both biases) at once, time-major: (T, N, 4H).
        gates_x = F.linear(x.transpose(0, 1), self.weight_ih_l0, self.bias_ih_l0 + self.bias_hh_l0)
        w_hh_t = self.weight_hh_l0.t()
        w_hr_t = self.weight_hr_l0.t() if self.weight_hr_l0 is not None else None
        outputs = []
        # unbind, not gates_x[t]: the backward of T selects would each zero-fill a (T, N, 4H) grad.
        for gates_x_t in gates_x.unbind(0):
            m, c = cell(torch.addmm(gates_x_t, h, w_hh_t), c, self.weight_peep)
            h = m @ w_hr_t if w_hr_t is not None else m
            outputs.append(h)
        if T:
            output = torch.stack(outputs, dim=1)
        else:
            output = x.new_zeros(N, 0, out)
        return output, (h.unsqueeze(0), c.unsqueeze(0))
