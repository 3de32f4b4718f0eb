import pytest
import torch
from torch import nn

from asr.nn.peephole import PeepholeLSTM

D, H, N, T = 5, 4, 3, 7


def _layer(proj: int, seed: int = 0, **kw) -> PeepholeLSTM:
    torch.manual_seed(seed)
    return PeepholeLSTM(D, H, proj, **kw).double()


def _state(proj: int) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.randn(1, N, proj or H, dtype=torch.float64, requires_grad=True),
            torch.randn(1, N, H, dtype=torch.float64, requires_grad=True))


def _reference(m: PeepholeLSTM, x, state):
    """The equations gate by gate, one sequence and one frame at a time."""
    w_ii, w_if, w_ig, w_io = m.weight_ih_l0.chunk(4)
    w_hi, w_hf, w_hg, w_ho = m.weight_hh_l0.chunk(4)
    b_ii, b_if, b_ig, b_io = m.bias_ih_l0.chunk(4)
    b_hi, b_hf, b_hg, b_ho = m.bias_hh_l0.chunk(4)
    p_i, p_f, p_o = m.weight_peep
    outputs, hs, cs = [], [], []
    for n in range(x.shape[0]):
        h = state[0][0, n] if state else torch.zeros(m.proj_size or H, dtype=x.dtype)
        c = state[1][0, n] if state else torch.zeros(H, dtype=x.dtype)
        out = []
        for t in range(x.shape[1]):
            x_t = x[n, t]
            i = torch.sigmoid(w_ii @ x_t + b_ii + w_hi @ h + b_hi + p_i * c)
            f = torch.sigmoid(w_if @ x_t + b_if + w_hf @ h + b_hf + p_f * c)
            g = torch.tanh(w_ig @ x_t + b_ig + w_hg @ h + b_hg)
            c = f * c + i * g
            o = torch.sigmoid(w_io @ x_t + b_io + w_ho @ h + b_ho + p_o * c)
            h = o * torch.tanh(c)
            if m.proj_size:
                h = m.weight_hr_l0 @ h
            out.append(h)
        outputs.append(torch.stack(out))
        hs.append(h)
        cs.append(c)
    return torch.stack(outputs), (torch.stack(hs)[None], torch.stack(cs)[None])


def _loss_and_grads(run, inputs: list[torch.Tensor], weights: list[torch.Tensor]):
    """Values of run(), and gradients of a random weighting of its outputs w.r.t. inputs."""
    y, (h, c) = run()
    loss = sum((w * v).sum() for w, v in zip(weights, (y, h, c)))
    return (y, h, c), torch.autograd.grad(loss, inputs)


@pytest.mark.parametrize("proj", [0, 2])
@pytest.mark.parametrize("with_state", [False, True])
def test_matches_plain_loop_reference_values_and_gradients(proj, with_state):
    m = _layer(proj)
    x = torch.randn(N, T, D, dtype=torch.float64, requires_grad=True)
    state = _state(proj) if with_state else None
    inputs = [x, *(state or ()), *m.parameters()]
    assert len(list(m.parameters())) == (6 if proj else 5)
    out_dim = proj or H
    weights = [torch.randn(N, T, out_dim, dtype=torch.float64), torch.randn(1, N, out_dim, dtype=torch.float64),
               torch.randn(1, N, H, dtype=torch.float64)]

    got, got_grads = _loss_and_grads(lambda: m(x, state), inputs, weights)
    want, want_grads = _loss_and_grads(lambda: _reference(m, x, state), inputs, weights)

    assert [v.shape for v in got] == [(N, T, out_dim), (1, N, out_dim), (1, N, H)]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
    for g, w in zip(got_grads, want_grads):
        assert g.abs().sum() > 0
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("proj", [0, 2])
@pytest.mark.parametrize("with_state", [False, True])
def test_zero_peepholes_equal_torch_lstm(proj, with_state):
    m = _layer(proj)
    torch.manual_seed(1)
    ref = nn.LSTM(D, H, proj_size=proj, batch_first=True).double()
    shared = dict(ref.named_parameters())
    assert {k: v.shape for k, v in m.named_parameters() if k != "weight_peep"} == \
        {k: v.shape for k, v in shared.items()}
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(shared[name] if name != "weight_peep" else torch.zeros_like(p))
    x = torch.randn(N, T, D, dtype=torch.float64)
    state = _state(proj) if with_state else None

    y, (h, c) = m(x, state)
    y_ref, (h_ref, c_ref) = ref(x, state)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(c, c_ref)


@pytest.mark.parametrize("proj", [0, 2])
def test_state_carries_across_pieces(proj):
    m = _layer(proj)
    x = torch.randn(N, T, D, dtype=torch.float64)
    state = _state(proj)
    y, (h, c) = m(x, state)
    y1, state1 = m(x[:, :3], state)
    y2, (h2, c2) = m(x[:, 3:], state1)
    torch.testing.assert_close(torch.cat([y1, y2], dim=1), y)
    torch.testing.assert_close(h2, h)
    torch.testing.assert_close(c2, c)


@pytest.mark.slow  # torch.compile: ~20 s with a cold inductor cache on 2 CPU cores, ~4 s warm
@pytest.mark.parametrize("proj", [0, 2])
def test_compiled_matches_uncompiled(proj):
    m = _layer(proj)
    mc = _layer(proj, compiled=True)
    mc.load_state_dict(m.state_dict())
    x = torch.randn(N, T, D, dtype=torch.float64, requires_grad=True)
    state = _state(proj)
    weights = [torch.randn(N, T, proj or H, dtype=torch.float64), torch.randn(1, N, proj or H, dtype=torch.float64),
               torch.randn(1, N, H, dtype=torch.float64)]
    want, want_grads = _loss_and_grads(lambda: m(x, state), [x, *state, *m.parameters()], weights)
    got, got_grads = _loss_and_grads(lambda: mc(x, state), [x, *state, *mc.parameters()], weights)
    for g, w in zip([*got, *got_grads], [*want, *want_grads]):
        torch.testing.assert_close(g, w)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="proj_size"):
        PeepholeLSTM(D, H, proj_size=H)
    with pytest.raises(ValueError, match="expected input"):
        PeepholeLSTM(D, H)(torch.randn(T, D))


def test_outer_torch_compile_runs_the_layer_eagerly():
    """Like nn.LSTM, the layer is opaque to an outer torch.compile: no time loop unrolled per T."""
    from torch._dynamo.testing import CompileCounter

    m = _layer(2)
    counter = CompileCounter()
    net = torch.compile(m, backend=counter)
    for t in (T, T + 1):
        x = torch.randn(N, t, D, dtype=torch.float64)
        torch.testing.assert_close(net(x)[0], m(x)[0])
    assert counter.frame_count == 0


@pytest.mark.parametrize("proj", [0, 2])
def test_runs_under_bf16_autocast(proj):
    torch.manual_seed(0)
    m = PeepholeLSTM(D, H, proj)
    x = torch.randn(N, T, D, requires_grad=True)
    want = m(x)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, (h, c) = m(x)
    assert c.dtype == torch.float32  # the cell state stays in float32
    y.float().square().sum().backward()
    assert x.grad is not None and m.weight_peep.grad is not None
    torch.testing.assert_close(y.float(), want, rtol=0, atol=0.05)
