from dataclasses import replace

import numpy as np
import pytest
import torch

from asr.nn.data import IGNORE, FrameBatchSampler, PieceDataset, collate
from asr.nn.model import DnnAcousticModel, LstmAcousticModel, ModelConfig, splice
from asr.nn.priors import estimate_log_priors, load_log_priors, save_log_priors
from asr.nn.train import TrainConfig, load_model, train
from asr.errors import ModelError

DIM, PDFS = 8, 6


def toy_data(n_utts: int, seed: int):
    """Frames whose class shows, noisily, in the first PDFS feature dims;
    classes come in runs of 3-8 frames, like HMM states."""
    rng = np.random.default_rng(seed)
    feats, targets = {}, {}
    for u in range(n_utts):
        runs = [np.full(rng.integers(3, 9), rng.integers(PDFS)) for _ in range(rng.integers(5, 15))]
        y = np.concatenate(runs).astype(np.int64)
        x = rng.normal(0, 1.0, size=(len(y), DIM)).astype(np.float32)
        x[np.arange(len(y)), y] += 2.0
        feats[f"u{u:03d}"], targets[f"u{u:03d}"] = x, y
    return feats, targets


@pytest.mark.parametrize("opts", [
    dict(bidirectional=True, proj=0),
    dict(bidirectional=False, proj=8, output_delay=3),
])
def test_forward_shapes(opts):
    model = LstmAcousticModel(ModelConfig(input_dim=DIM, num_pdfs=PDFS, num_layers=2, hidden=16, **opts))
    x = torch.randn(3, 20, DIM)
    out = model(x, torch.tensor([20, 11, 5]))
    assert out.shape == (3, 20, PDFS)


def test_bad_config():
    with pytest.raises(ValueError, match="proj"):
        ModelConfig(input_dim=4, num_pdfs=3, hidden=8, proj=8)
    with pytest.raises(ValueError, match="output_delay"):
        ModelConfig(input_dim=4, num_pdfs=3, output_delay=2, bidirectional=True)
    with pytest.raises(ValueError, match="kind 'cnn'"):
        ModelConfig(input_dim=4, num_pdfs=3, kind="cnn")
    with pytest.raises(ValueError, match="a dnn has neither"):
        ModelConfig(input_dim=4, num_pdfs=3, hidden=8, proj=4, kind="dnn")
    with pytest.raises(ValueError, match="context"):
        ModelConfig(input_dim=4, num_pdfs=3, context=5)


def test_batches_cover_all_frames_and_respect_budget():
    feats, targets = toy_data(30, 0)
    ds = PieceDataset(feats, targets, chunk_frames=25)
    assert max(ds.lengths) <= 25
    sampler = FrameBatchSampler(ds.lengths, batch_frames=100, seed=0)
    sampler.set_epoch(1)
    batches = [collate([ds[i] for i in b]) for b in sampler]
    assert sum(b.num_frames for b in batches) == sum(len(y) for y in targets.values())
    for b in batches:
        assert b.feats.shape[0] * b.feats.shape[1] <= 100
        assert (b.targets == IGNORE).sum() == b.feats.shape[0] * b.feats.shape[1] - b.num_frames


def test_priors_roundtrip(tmp_path):
    lp = estimate_log_priors([np.array([0, 0, 1]), np.array([1, 1])], 3)
    np.testing.assert_allclose(np.exp(lp), [3 / 8, 4 / 8, 1 / 8], rtol=1e-5)
    save_log_priors(tmp_path / "p.txt", lp)
    np.testing.assert_allclose(load_log_priors(tmp_path / "p.txt", 3), lp, atol=1e-6)
    with pytest.raises(ModelError, match="expected 4 finite log priors"):
        load_log_priors(tmp_path / "p.txt", 4)


def _train(exp, epochs, **model_opts):
    cfg = ModelConfig(input_dim=DIM, num_pdfs=PDFS, num_layers=1, hidden=32, dropout=0.0, **model_opts)
    tcfg = TrainConfig(epochs=epochs, lr=0.01, batch_frames=600, chunk_frames=100)
    return train(exp, toy_data(40, 1), toy_data(10, 2), cfg, tcfg, torch.device("cpu"))


def test_training_learns_and_resumes_identically(tmp_path):
    torch.set_num_threads(1)
    state = _train(tmp_path / "a", epochs=4)
    # a learnable toy task: chance is 1/6; a working trainer passes 85%
    assert state["history"][-1]["dev_frame_acc"] > 0.85, state["history"]
    # interrupted after 2 epochs, then resumed to 4: the same weights
    _train(tmp_path / "b", epochs=2)
    _train(tmp_path / "b", epochs=4)
    wa = load_model(tmp_path / "a", torch.device("cpu")).state_dict()
    wb = load_model(tmp_path / "b", torch.device("cpu")).state_dict()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k])
    assert sorted(p.name for p in (tmp_path / "a").glob("epoch-*.pt")) == ["epoch-3.pt", "epoch-4.pt"]


def test_dnn_learns_the_toy_task(tmp_path):
    torch.set_num_threads(1)
    state = _train(tmp_path / "dnn", epochs=4, kind="dnn", context=2)
    assert state["history"][-1]["dev_frame_acc"] > 0.85, state["history"]
    model = load_model(tmp_path / "dnn", torch.device("cpu"))
    assert isinstance(model, DnnAcousticModel) and model.cfg.context == 2


def test_splice_repeats_the_edge_frames():
    """Against a plain loop: frame t reads frames t-c..t+c, clamped into its own sequence."""
    feats, lengths, c = torch.randn(3, 7, 2), torch.tensor([7, 4, 1]), 2
    out = splice(feats, lengths, c)
    assert out.shape == (3, 7, (2 * c + 1) * 2)
    for n, length in enumerate(lengths.tolist()):
        for t in range(length):
            want = torch.cat([feats[n, min(max(t + k, 0), length - 1)] for k in range(-c, c + 1)])
            torch.testing.assert_close(out[n, t], want)
    assert splice(feats, lengths, 0) is feats


def test_dnn_shapes_and_padding():
    cfg = ModelConfig(input_dim=DIM, num_pdfs=PDFS, num_layers=2, hidden=16, kind="dnn", context=3)
    model = DnnAcousticModel(cfg).eval()
    x = torch.randn(2, 12, DIM)
    out = model(x, torch.tensor([12, 5]))
    assert out.shape == (2, 12, PDFS) and model.encode(x, torch.tensor([12, 5])).shape == (2, 12, 16)
    alone = model(x[1:, :5], torch.tensor([5]))  # the short sequence without the padding
    torch.testing.assert_close(out[1, :5], alone[0])


def test_load_model_without_weights(tmp_path):
    ModelConfig(input_dim=DIM, num_pdfs=PDFS).save(tmp_path / "model.yaml")
    with pytest.raises(ModelError, match="final.pt: model weights not found"):
        load_model(tmp_path, torch.device("cpu"))


@pytest.mark.parametrize("content", [b"garbage", b"", b"PK\x03\x04 truncated zip"])
def test_damaged_weights_are_named_not_a_traceback(tmp_path, content):
    ModelConfig(input_dim=DIM, num_pdfs=PDFS).save(tmp_path / "model.yaml")
    (tmp_path / "final.pt").write_bytes(content)
    with pytest.raises(ModelError, match=r"final.pt: cannot load weights for .*model.yaml \(\w+"):
        load_model(tmp_path, torch.device("cpu"))


def test_padding_does_not_change_outputs():
    """A sequence scored alone and inside a padded batch gives the same logits
    (the backward direction must not read the padding)."""
    torch.manual_seed(0)
    model = LstmAcousticModel(ModelConfig(input_dim=DIM, num_pdfs=PDFS, num_layers=2, hidden=16)).eval()
    x = torch.randn(2, 30, DIM)
    batch = model(x, torch.tensor([30, 17]))
    alone = model(x[1:, :17], torch.tensor([17]))
    torch.testing.assert_close(batch[1, :17], alone[0], atol=1e-5, rtol=1e-5)


def test_reverse_padded_is_an_involution():
    from asr.nn.model import reverse_padded

    x = torch.arange(12.0).reshape(2, 6, 1)
    lengths = torch.tensor([6, 4])
    r = reverse_padded(x, lengths)
    assert r[1, :, 0].tolist() == [9.0, 8.0, 7.0, 6.0, 10.0, 11.0]
    torch.testing.assert_close(reverse_padded(r, lengths), x)


def test_long_inputs_are_scored_in_pieces(monkeypatch):
    import asr.decode.hybrid as hybrid

    torch.manual_seed(0)
    model = LstmAcousticModel(ModelConfig(input_dim=DIM, num_pdfs=PDFS, num_layers=2, hidden=16)).eval()
    feats = np.random.default_rng(0).standard_normal((130, DIM)).astype(np.float32)
    whole = hybrid.log_posteriors(model, feats, torch.device("cpu"))
    monkeypatch.setattr(hybrid, "MAX_CHUNK_FRAMES", 50)
    # context covering the whole input: every piece sees everything, same output
    monkeypatch.setattr(hybrid, "CHUNK_CONTEXT", 200)
    np.testing.assert_allclose(hybrid.log_posteriors(model, feats, torch.device("cpu")), whole, atol=1e-5)
    # short context: same shape, normalised rows, close to the whole-input scores
    monkeypatch.setattr(hybrid, "CHUNK_CONTEXT", 10)
    pieces = hybrid.log_posteriors(model, feats, torch.device("cpu"))
    assert pieces.shape == whole.shape == (130, PDFS)
    np.testing.assert_allclose(np.exp(pieces).sum(1), 1, atol=1e-5)
    # max |pieces - whole| measured: 6.4e-4 with 10 frames of context, 0.031 with none
    # (each piece starts its recurrence cold); the bound lies between the two
    bound = 5e-3
    assert np.abs(pieces - whole).max() < bound
    # and it tells them apart: without the context the pieces miss it
    monkeypatch.setattr(hybrid, "CHUNK_CONTEXT", 0)
    cold = hybrid.log_posteriors(model, feats, torch.device("cpu"))
    assert np.abs(cold - whole).max() > bound


def test_a_lower_frame_rate_network_whole_and_in_pieces(monkeypatch):
    """k = 3: the network reads 3 stacked frames and emits ceil(T / 3) outputs, the same
    whether an utterance is scored whole, in pieces or in a padded batch; its output j is
    the network run on stacked rows, so it depends only on frames 3j … 3j + 2 and the
    recurrence."""
    import asr.decode.hybrid as hybrid
    from asr.features.frame_rate import stack_frames

    torch.manual_seed(0)
    cfg = ModelConfig(input_dim=DIM, num_pdfs=PDFS, num_layers=2, hidden=16, frame_subsampling=3)
    model = LstmAcousticModel(cfg).eval()
    assert model.layers[0][0].input_size == 3 * DIM
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((130, DIM)).astype(np.float32)
    whole = hybrid.log_posteriors(model, feats, torch.device("cpu"))
    assert whole.shape == (44, PDFS)
    stacked = torch.from_numpy(stack_frames(feats, 3))[None]
    direct = torch.log_softmax(model(stacked, torch.tensor([44])), -1)[0].detach().numpy()
    np.testing.assert_allclose(whole, direct, atol=1e-5)
    other = rng.standard_normal((61, DIM)).astype(np.float32)
    batch = dict(hybrid.batch_log_posteriors(model, {"a": feats, "b": other}, torch.device("cpu")))
    assert batch["b"].shape == (21, PDFS)
    np.testing.assert_allclose(batch["a"], whole, atol=1e-5)
    monkeypatch.setattr(hybrid, "MAX_CHUNK_FRAMES", 15)  # output frames a piece
    monkeypatch.setattr(hybrid, "CHUNK_CONTEXT", 100)
    np.testing.assert_allclose(hybrid.log_posteriors(model, feats, torch.device("cpu")), whole, atol=1e-5)


def _delayed_model(delay: int, proj: int = 0) -> LstmAcousticModel:
    torch.manual_seed(0)
    cfg = ModelConfig(input_dim=DIM, num_pdfs=PDFS, num_layers=2, hidden=16, proj=proj,
                      bidirectional=False, output_delay=delay)
    return LstmAcousticModel(cfg).eval()


@pytest.mark.parametrize("delay,proj", [(0, 0), (3, 0), (3, 8)])
def test_output_delay_sees_exactly_delay_frames_ahead(delay, proj):
    """Unidirectional, delay d: the output at frame t depends on input frames
    0..t+d and no later ones, and there is one output per input frame."""
    model = _delayed_model(delay, proj)
    T = 20
    x = torch.randn(1, T, DIM)
    out = model(x, torch.tensor([T]))
    assert out.shape == (1, T, PDFS)
    for s in range(T):  # change input frame s: the outputs before s - d stay, the one at s - d moves
        y = x.clone()
        y[0, s] += 1.0
        changed = (model(y, torch.tensor([T])) != out).any(-1)[0]
        first = max(0, s - delay)
        assert not changed[:first].any(), (s, changed)
        assert changed[first], (s, changed)


def test_output_delay_is_the_undelayed_output_shifted():
    """With delay d the logits at frame t are those of the same network
    without delay at frame t + d, reading the input followed by d zero frames."""
    d, T = 3, 15
    delayed, plain = _delayed_model(d), _delayed_model(0)
    plain.load_state_dict(delayed.state_dict())
    x = torch.randn(1, T, DIM)
    shifted = plain(torch.cat([x, torch.zeros(1, d, DIM)], 1), torch.tensor([T + d]))[:, d:]
    torch.testing.assert_close(delayed(x, torch.tensor([T])), shifted, atol=0, rtol=0)


def test_output_delay_reads_zeros_past_the_end_not_padding():
    """In a padded batch a delayed model reads zeros (not the padding values)
    after a sequence's end: the same outputs as the sequence scored alone."""
    model = _delayed_model(3)
    x = torch.randn(2, 20, DIM)
    x[1, 12:] = 100.0  # padding of the 12-frame sequence
    batch = model(x, torch.tensor([20, 12]))
    alone = model(x[1:, :12], torch.tensor([12]))
    torch.testing.assert_close(batch[1, :12], alone[0], atol=1e-5, rtol=1e-5)


def test_init_from_a_trained_model_copies_its_lstm_layers(tmp_path):
    """A CD model can start from a CI model's LSTM layers: they are copied, the output
    layer (another size) starts random, and another layer size is refused by name."""
    from asr.steps.train_am import lstm_weights

    torch.set_num_threads(1)
    _train(tmp_path / "ci", epochs=1)
    bigger = ModelConfig(input_dim=DIM, num_pdfs=2 * PDFS, num_layers=1, hidden=32, dropout=0.1)
    weights = lstm_weights(tmp_path / "ci", bigger)
    assert weights and not any(k.startswith("output.") for k in weights)
    tcfg = TrainConfig(epochs=1, lr=0.0, batch_frames=600, chunk_frames=100)  # lr 0: weights stay put
    train(tmp_path / "cd1", toy_data(4, 1), toy_data(2, 2), bigger, tcfg, torch.device("cpu"), weights)
    got = load_model(tmp_path / "cd1", torch.device("cpu")).state_dict()
    for k, v in weights.items():
        torch.testing.assert_close(got[k], v)
    assert got["output.weight"].shape == (2 * PDFS, 64)  # bidirectional: 2 x 32
    same = ModelConfig(input_dim=DIM, num_pdfs=PDFS, num_layers=1, hidden=32, dropout=0.0)
    assert "output.weight" in lstm_weights(tmp_path / "ci", same)  # same outputs: copied too
    with pytest.raises(ModelError, match="LSTM layers .* differ"):
        lstm_weights(tmp_path / "ci", ModelConfig(input_dim=DIM, num_pdfs=PDFS, num_layers=1, hidden=16))


@pytest.mark.parametrize("opts", [dict(bidirectional=True), dict(bidirectional=False, output_delay=3),
                                  dict(kind="dnn", context=2)])
def test_batched_scoring_equals_one_utterance_at_a_time(monkeypatch, opts):
    """A set scored in padded batches (the long utterance alone, in pieces) gets the
    posteriors each utterance gets when scored alone."""
    import asr.decode.hybrid as hybrid

    monkeypatch.setattr(hybrid, "MAX_CHUNK_FRAMES", 100)
    torch.manual_seed(0)
    model = (DnnAcousticModel if opts.get("kind") == "dnn" else LstmAcousticModel)(
        ModelConfig(input_dim=DIM, num_pdfs=PDFS, num_layers=2, hidden=16, **opts)).eval()
    rng = np.random.default_rng(1)
    feats = {f"u{i}": rng.standard_normal((n, DIM)).astype(np.float32) for i, n in enumerate([30, 7, 64, 130, 31, 1])}
    batched = list(hybrid.batch_log_posteriors(model, feats, torch.device("cpu"), batch_frames=100))
    assert sorted(u for u, _ in batched) == sorted(feats)
    for utt, post in batched:
        np.testing.assert_allclose(post, hybrid.log_posteriors(model, feats[utt], torch.device("cpu")), atol=1e-5)


def test_a_short_last_group_joins_the_one_before():
    """Pieces of 10, 20, ..., 60 frames in batches of 100 over 2 processes: grouped by
    length they are [0, 1, 2], [3, 4], [5]; the last group joins the one before, so that
    every process has a piece of every batch, shuffled or not (dev)."""
    lengths = np.arange(10, 70, 10)
    for shuffle in (False, True):
        samplers = [FrameBatchSampler(lengths, 100, seed=0, shuffle=shuffle, rank=r, world_size=2) for r in (0, 1)]
        for epoch in (1, 2, 3):
            for s in samplers:
                s.set_epoch(epoch)
            assert sorted(map(sorted, samplers[0].global_batches())) == [[0, 1, 2], [3, 4, 5]]
            shares = [list(s) for s in samplers]
            assert all(len(share) >= 1 for ranks in shares for share in ranks), shares
            assert sorted(i for ranks in shares for share in ranks for i in share) == list(range(6))


def test_fewer_pieces_than_processes_give_the_others_an_empty_piece():
    """One dev piece over 2 processes: process 1 scores an empty piece, which pads to no frames."""
    from asr.nn.data import EMPTY

    feats, targets = toy_data(1, 0)
    ds = PieceDataset(feats, targets, chunk_frames=1000)
    shares = []
    for rank in (0, 1):
        sampler = FrameBatchSampler(ds.lengths, 100, shuffle=False, rank=rank, world_size=2)
        sampler.set_epoch(0)
        shares += list(sampler)
    assert shares == [[0], [EMPTY]]
    batch = collate([ds[i] for i in shares[1]])
    assert batch.num_frames == 0 and (batch.targets == IGNORE).all()


def test_batches_change_between_epochs_and_repeat_for_the_same_epoch():
    """With the default TrainConfig the pieces are reshuffled within length buckets every
    epoch: epochs 1 and 2 group them differently, the same (seed, epoch) the same way (a
    resumed run), each piece once an epoch, each batch within its padded-frame budget."""
    from asr.nn.train import epoch_loader

    data = toy_data(60, 0)
    cfg = TrainConfig(batch_frames=200, chunk_frames=25, resident=False, seed=3)
    model = ModelConfig(input_dim=DIM, num_pdfs=PDFS)

    def batches(epoch: int, seed: int = 3) -> list[frozenset[int]]:
        _, sampler = epoch_loader(data, {}, model, replace(cfg, seed=seed), epoch, 0, torch.device("cpu"), None)
        return [frozenset(b) for b in sampler.global_batches()]

    ds = PieceDataset(*data, cfg.chunk_frames)
    one, two = batches(1), batches(2)
    for epoch in (one, two):
        assert sorted(i for b in epoch for i in b) == list(range(len(ds)))
        assert all(len(b) * max(ds.lengths[list(b)]) <= cfg.batch_frames for b in epoch)
    assert set(one) != set(two)  # other contents, not just another order
    assert len(set(one) & set(two)) < len(one) / 2, (len(set(one) & set(two)), len(one))
    assert batches(2) == two and batches(2, seed=4) != two
    # the padding stays low: the pieces of a batch are of about the same length
    padded = sum(len(b) * max(ds.lengths[list(b)]) for b in two)
    assert padded < 1.2 * ds.lengths.sum()


def test_bucket_width_zero_keeps_the_batches_of_every_epoch():
    """``bucket_width`` 0 (how a train.yaml written before it reads) groups the pieces by
    length alone: every epoch the same batches, in another order."""
    feats, targets = toy_data(30, 0)
    ds = PieceDataset(feats, targets, chunk_frames=25)
    sampler = FrameBatchSampler(ds.lengths, 100, seed=0, bucket_width=0.0)
    got = []
    for epoch in (1, 2):
        sampler.set_epoch(epoch)
        got.append(sampler.global_batches())
    assert sorted(map(sorted, got[0])) == sorted(map(sorted, got[1])) and got[0] != got[1]
    assert TrainConfig.defaults()["bucket_width"] == 0.0 and TrainConfig().bucket_width > 0


def test_an_old_train_yaml_reads_as_the_same_batches_every_epoch(tmp_path):
    """A train.yaml written before ``bucket_width`` existed continues with 0 (its batches);
    the default is refused with a message naming the setting."""
    import yaml
    from dataclasses import asdict

    from asr.steps.train_am import check_config

    old = {k: v for k, v in asdict(TrainConfig()).items() if k != "bucket_width"}
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(old))

    def check(cfg: TrainConfig) -> None:
        check_config(tmp_path, "train.yaml", asdict(cfg), may_grow=("epochs",), defaults=TrainConfig.defaults(),
                     free=TrainConfig.FREE)

    check(TrainConfig(bucket_width=0.0))
    new = TrainConfig().bucket_width
    with pytest.raises(ModelError, match=f"different config \\(bucket_width 0.0 there, {new} now"):
        check(TrainConfig())
