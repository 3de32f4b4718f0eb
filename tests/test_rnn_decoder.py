"""The recurrent phone LM and the RNN phone-sequence decoder, on toy phone sets with
planted sequences and LMs trained (for real) on a known transition structure."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from asr.decode.rnn_search import RnnPhoneDecoder, SearchConfig, pdf_table
from asr.decode.wfst import WfstDecoder
from asr.errors import GraphError, ModelError
from asr.hmm.context import ContextDependency
from asr.hmm.transitions import Transitions
from asr.lang.graph import alignment_graph
from asr.nn.phone_lm import BOUNDARY, PhoneLm, PhoneLmConfig, encode, load_phone_lm, perplexity, train_phone_lm

from asr.lang.graph import DEFAULT_SELF_LOOP_SCALE  # noqa: E402
from asr.phones.topology import DEFAULT_TOPOLOGY, PhoneHmm, Topology  # noqa: E402
from test_context import ID, PHONES, S, toy_tree  # noqa: E402  (the toy phones and triphone tree)

CPU = torch.device("cpu")


def markov_sentences(after_a: str, n: int, seed: int) -> list[list[str]]:
    """sil, then phones of a..d (after ``a`` always ``after_a``, otherwise uniform; the
    utterance ends with probability 0.2 after each phone), then sil."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        seq = ["sil", str(rng.choice(["a", "b", "c", "d"]))]
        while rng.random() > 0.2:
            seq.append(after_a if seq[-1] == "a" else str(rng.choice(["a", "b", "c", "d"])))
        out.append(seq + ["sil"])
    return out


def trained_lm(tmp: Path, after_a: str):
    cfg = PhoneLmConfig(phones=tuple(PHONES), embed=8, hidden=24, num_layers=1, dropout=0.0, epochs=30,
                        lr=0.02, min_improvement=0.0, min_lr=1e-3, batch_utterances=16)
    data = {k: [encode(PHONES, s, "toy") for s in markov_sentences(after_a, n, seed)]
            for k, n, seed in (("train", 300, 0), ("dev", 60, 1))}
    state = train_phone_lm(tmp, data["train"], data["dev"], cfg, CPU)
    return load_phone_lm(tmp, CPU, PHONES), state, data


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    """Phone LMs trained on sequences where b (resp. c) always follows a."""
    return {x: trained_lm(tmp_path_factory.mktemp(f"lm_{x}"), x) for x in ("b", "c")}


def test_phone_lm_learns_the_transition_structure(lms):
    """After a, the LM gives the phone that always follows it (unless the utterance ends
    there, p = 0.2) the source's 0.8 and the other of b, c almost nothing; dev perplexity
    falls during training to about the source's."""
    for x, (lm, trained, data) in lms.items():
        state = None
        for token in (BOUNDARY, ID["sil"], ID["a"]):
            logp, state = lm.step(torch.tensor([token]), state)
        other = "c" if x == "b" else "b"
        assert 0.7 < math.exp(float(logp[0, ID[x]])) < 0.9 and math.exp(float(logp[0, ID[other]])) < 0.02
        ppl = perplexity(lm, data["dev"], CPU)
        assert 2.5 < ppl < 5.0, ppl
        assert trained["history"][-1]["dev_ppl"] < trained["history"][0]["dev_ppl"]


def test_phone_lm_steps_equal_the_whole_sequence():
    """Token by token (the decoder's written-out cell) gives the outputs of the whole sequence."""
    torch.manual_seed(0)
    lm = PhoneLm(PhoneLmConfig(phones=tuple(PHONES), embed=6, hidden=10, num_layers=2)).eval()
    tokens = torch.randint(0, len(PHONES) + 1, (3, 7))
    whole = torch.log_softmax(lm(tokens)[0], dim=-1)
    state = None
    for t in range(7):
        logp, state = lm.step(tokens[:, t], state)
        torch.testing.assert_close(logp, whole[:, t], atol=1e-5, rtol=1e-5)


def test_phone_lm_resumes_and_refuses_another_config(tmp_path, lms):
    """A finished run is found finished (same weights); another config in the dir is refused."""
    lm, _, data = lms["b"]
    cfg = lm.cfg
    again = train_phone_lm(tmp_path, data["train"], data["dev"], cfg, CPU)
    killed = tmp_path / "killed"
    short = PhoneLmConfig(**{**cfg.__dict__, "epochs": 3})
    train_phone_lm(killed, data["train"], data["dev"], short, CPU)
    with pytest.raises(ModelError, match="another config"):
        train_phone_lm(killed, data["train"], data["dev"], cfg, CPU)
    assert again["epoch"] >= 1


def segment_scores(ctx: ContextDependency, segments: list[tuple[list[str], int]], rng) -> np.ndarray:
    """Scores (T, pdfs): per segment (phones allowed, frames), every pdf of an allowed phone in
    the state of a uniform split scores 0, the rest −4, plus a little noise."""
    rows = []
    for allowed, frames in segments:
        ids = [ID[p] - 1 for p in allowed]
        for k in (np.arange(frames) * S // frames):
            good = np.isin(ctx.pdf_phone, ids) & (ctx.pdf_state == k)
            rows.append(np.where(good, 0.0, -4.0))
    return (np.array(rows) + 0.05 * rng.standard_normal((len(rows), ctx.num_pdfs))).astype(np.float32)


@pytest.mark.parametrize("cd", [False, True])
def test_the_search_recovers_a_planted_sequence(lms, cd):
    """Clear acoustics: the planted phones and their boundaries come back, for CI and CD pdfs."""
    ctx = toy_tree() if cd else ContextDependency.ci(PHONES)
    seq = ["sil", "c", "a", "b", "d", "d", "sil"]
    frames = [6, 4, 5, 3, 7, 4, 6]
    scores = segment_scores(ctx, [([p], n) for p, n in zip(seq, frames)], np.random.default_rng(0))
    if cd:  # the planted triphone pdfs score best: contexts are read, not guessed
        windows = ctx.windows([ID[p] for p in seq])
        t = 0
        for w, n in zip(windows, frames):
            for j, k in enumerate(np.arange(n) * S // n):
                scores[t + j, ctx.pdf(w, int(k))] += 1.0
            t += n
    result = RnnPhoneDecoder(ctx, lms["c"][0], CPU).decode(scores)
    assert [PHONES[i - 1] for i in result.phones] == seq and result.reached_final
    assert np.flatnonzero(result.entries).tolist() == np.cumsum([0] + frames[:-1]).tolist()
    assert len(result.pdfs) == len(scores)


@pytest.mark.parametrize("cd", [False, True])
def test_ambiguous_acoustics_follow_the_lm(lms, cd):
    """Frames that fit b and c alike, after a: each LM picks the phone it has seen follow a."""
    ctx = toy_tree() if cd else ContextDependency.ci(PHONES)
    segments = [(["sil"], 6), (["a"], 5), (["b", "c"], 6), (["d"], 5), (["sil"], 6)]
    scores = segment_scores(ctx, segments, np.random.default_rng(1))
    for x in ("b", "c"):
        result = RnnPhoneDecoder(ctx, lms[x][0], CPU).decode(scores)
        assert [PHONES[i - 1] for i in result.phones] == ["sil", "a", x, "d", "sil"]


def greedy(ctx: ContextDependency, lm, scores: np.ndarray, lm_weight: float, penalty: float,
           loop_lp: float, forward_lp: float) -> list[int]:
    """Reference greedy decoding (CI): one hypothesis, extended every frame by its best
    successor; the LM rerun on the whole prefix each time."""

    def lm_logp(seq: list[int]) -> np.ndarray:
        logits, _ = lm(torch.tensor([[BOUNDARY] + seq]))
        return torch.log_softmax(logits[0, -1], -1).detach().numpy()

    def pdf(phone: int, k: int) -> int:
        return ctx.pdf((phone,), k)

    seq, k = [], S - 1
    for t in range(len(scores)):
        cands = []
        if seq:
            cands.append((loop_lp + scores[t, pdf(seq[-1], k)], seq, k))
            if k < S - 1:
                cands.append((forward_lp + scores[t, pdf(seq[-1], k + 1)], seq, k + 1))
        if k == S - 1:
            lp = lm_logp(seq)
            for q in range(1, len(PHONES) + 1):
                cands.append(((forward_lp if seq else 0.0) + lm_weight * lp[q] - penalty + scores[t, pdf(q, 0)],
                              seq + [q], 0))
        _, seq, k = max(cands, key=lambda c: c[0])
    return seq


def test_a_beam_of_one_is_greedy_decoding(lms):
    """max_active 1 gives the greedy reference's phones, on noisy scores of random phones."""
    ctx = ContextDependency.ci(PHONES)
    lm = lms["b"][0]
    rng = np.random.default_rng(5)
    for trial in range(3):
        segments = [([str(rng.choice(PHONES))], int(rng.integers(3, 7))) for _ in range(8)]
        scores = segment_scores(ctx, segments, rng)
        scores += rng.standard_normal(scores.shape).astype(np.float32)
        cfg = SearchConfig(max_active=1, lm_weight=0.7, penalty=-1.0)
        dec = RnnPhoneDecoder(ctx, lm, CPU, cfg)
        got = dec.decode(scores).phones
        assert got == greedy(ctx, lm, scores, 0.7, -1.0, dec.loop_lp[1, 0], dec.move_lp[1, 0, 1]), trial
        assert len(got) > 4
        assert RnnPhoneDecoder(ctx, lm, CPU, SearchConfig(lm_weight=0.7, penalty=-1.0)).decode(scores).score \
            >= dec.decode(scores).score - 1e-9  # a wide beam finds a path at least as good


class RecordingDecoder(RnnPhoneDecoder):
    """The decoder, keeping each frame's candidates (as (key, score) pairs) and survivors."""

    def _prune(self, cands, trie):
        kept = super()._prune(cands, trie)
        self.frames.append((hypothesis_keys(cands, trie), cands.score.copy(), hypothesis_keys(kept, trie),
                            kept.score.copy()))
        return kept

    def decode(self, scores, utt="", constrain=None):
        self.frames = []
        return super().decode(scores, utt, constrain)


def hypothesis_keys(hyps, trie) -> list[tuple]:
    """What makes each hypothesis distinct: (its phone sequence, HMM state, right context); a CI
    entry not yet given its trie node (right = −phone) reads that phone after its node's."""
    out = []
    for node, state, right in zip(hyps.node.tolist(), hyps.state.tolist(), hyps.right.tolist()):
        seq = tuple(trie.sequence(node))
        out.append((seq + (-right,), state, 0) if right < 0 else (seq, state, right))
    return out


@pytest.mark.parametrize("cd", [False, True])
@pytest.mark.parametrize("max_active", [7, 40])
def test_max_active_counts_distinct_hypotheses(lms, cd, max_active):
    """Duplicates (same phones, state and right context) are recombined before max_active
    prunes: every frame keeps min(max_active, distinct candidates in the beam) hypotheses, no
    two alike, each its key's best, and they are the best distinct ones."""
    ctx = toy_tree() if cd else ContextDependency.ci(PHONES)
    rng = np.random.default_rng(11)
    scores = segment_scores(ctx, [([str(rng.choice(PHONES))], int(rng.integers(3, 7))) for _ in range(8)], rng)
    scores += rng.standard_normal(scores.shape).astype(np.float32)
    dec = RecordingDecoder(ctx, lms["b"][0], CPU, SearchConfig(beam=1e6, max_active=max_active))
    dec.decode(scores)
    crowded = 0
    for cand_keys, cand_scores, kept_keys, kept_scores in dec.frames:
        best: dict[tuple, float] = {}
        for k, v in zip(cand_keys, cand_scores.tolist()):
            best[k] = max(best.get(k, -np.inf), v)
        assert len(set(kept_keys)) == len(kept_keys)  # no two kept alike
        assert len(kept_keys) == min(max_active, len(best))
        assert all(best[k] == v for k, v in zip(kept_keys, kept_scores.tolist()))
        dropped = [v for k, v in best.items() if k not in set(kept_keys)]
        assert not dropped or max(dropped) <= kept_scores.min()
        crowded += len(cand_keys) > len(best) and len(best) > max_active
    assert crowded > len(dec.frames) // 2  # duplicates were there to recombine, beyond max_active


def mixed_topology() -> Topology:
    """Kaldi's ergodic 5-state silence, a 1-state ``d``, 3 states (0.6) for the rest."""
    sil = np.zeros((5, 6))
    sil[0, :4] = 0.25
    sil[1:4, 1:5] = 0.25
    sil[4, 4:] = [0.75, 0.25]
    return Topology.of({"sil": PhoneHmm(5, transitions=tuple(map(tuple, sil))), "d": PhoneHmm(1, 0.5),
                        **{p: PhoneHmm(3, 0.6) for p in PHONES if p not in ("sil", "d")}})


@pytest.mark.parametrize("cd, topo", [(False, None), (True, None), (False, "mixed")])
def test_constrained_search_is_the_viterbi_alignment(lms, cd, topo):
    """Constrained to the transcript, the search returns a path of the right length reading
    exactly those phones, although the acoustics favour silence over the second phone, and
    it is the WFST forced alignment (same transition costs), for any topology."""
    ctx = toy_tree() if cd else ContextDependency.ci(PHONES, mixed_topology() if topo else DEFAULT_TOPOLOGY)
    seq = ["sil", "a", "c", "c", "d", "sil"]
    rng = np.random.default_rng(3)
    frames = [int(rng.integers(3, 8)) for _ in seq]
    scores = segment_scores(ctx, [([p], n) for p, n in zip(seq, frames)], rng)
    scores[frames[0]: frames[0] + frames[1], ctx.pdf_phone == 0] += 4.5  # silence fits "a" better
    ids = [ID[p] for p in seq]
    result = RnnPhoneDecoder(ctx, lms["b"][0], CPU).decode(scores, constrain=ids)
    assert result.phones == ids and result.reached_final and len(result.pdfs) == len(scores)
    viterbi = WfstDecoder(alignment_graph(ctx, ids), Transitions(ctx), beam=50.0).decode(scores)
    np.testing.assert_array_equal(result.pdfs, viterbi.pdfs)
    assert Transitions(ctx).path_cost(viterbi.tids, DEFAULT_SELF_LOOP_SCALE) == pytest.approx(viterbi.graph_cost, abs=1e-4)
    # the same total: acoustics and every transition, the last phone's exit included
    assert result.score == pytest.approx(-(viterbi.graph_cost + viterbi.acoustic_cost), abs=1e-3)
    free = RnnPhoneDecoder(ctx, lms["b"][0], CPU).decode(scores)
    assert free.phones != ids  # unconstrained, the silence wins somewhere
    with pytest.raises(GraphError, match="cannot hold"):
        RnnPhoneDecoder(ctx, lms["b"][0], CPU).decode(scores[:10], constrain=ids)


@pytest.mark.parametrize("graph, loop_scale", [
    ({"self_loop_scale": 0.3, "transition_scale": 1.0}, 0.3),  # an older bundle's graph component
    ({"self_loop_scale": 0.3}, 0.3),
    ({}, 0.1),  # no graph installed: Kaldi's default
])
def test_the_bundle_decoder_reads_the_graphs_self_loop_scale_only(tmp_path, graph, loop_scale):
    """The RNN decoder takes the self-loop scale of the bundle's graph component (the transition
    costs the graph's H has); an older bundle's ``transition_scale`` is ignored."""
    from asr.decode.hybrid import HybridModel
    from asr.decode.rnn_decode import RnnSettings, rnn_decoder
    from test_bundle import make_bundle

    model = HybridModel.load(make_bundle(tmp_path / "model"), CPU)
    model.components = {**model.components, "graph": graph}
    lm = PhoneLm(PhoneLmConfig(phones=tuple(model.phones), embed=4, hidden=8, num_layers=1))
    dec = rnn_decoder(model, RnnSettings(acwt=0.5), lm)
    p = model.context.topology.self_loop_prob
    assert dec.loop_lp[1:] == pytest.approx(math.log(p) * loop_scale)
    assert dec.move_lp[1:, [0, 1], [1, 2]] == pytest.approx(math.log(1 - p) * loop_scale)
    assert dec.exit_lp[1:, 2] == pytest.approx(math.log(1 - p) * loop_scale)


def test_pdf_table_agrees_with_the_tree():
    ctx = toy_tree()
    table = pdf_table(ctx)
    for l in range(len(PHONES) + 1):
        for p in range(1, len(PHONES) + 1):
            for r in range(len(PHONES) + 1):
                assert table[l, p, r].tolist() == list(ctx.pdfs((l, p, r)))


def test_bad_scores_and_phone_sets_are_refused(lms):
    ctx = ContextDependency.ci(PHONES)
    dec = RnnPhoneDecoder(ctx, lms["b"][0], CPU)
    with pytest.raises(ModelError, match="shape"):
        dec.decode(np.zeros((5, 3), np.float32), "u1")
    with pytest.raises(ModelError, match="not all finite"):
        dec.decode(np.full((5, ctx.num_pdfs), np.nan, np.float32), "u1")
    with pytest.raises(ModelError, match="phones differ"):
        RnnPhoneDecoder(ContextDependency.ci(PHONES + ["e"]), lms["b"][0], CPU)


def test_bad_phone_lm_input_is_named(tmp_path):
    """An unknown phone names where it is; no dev utterances, or a word text without a
    lexicon, is refused before any training."""
    from asr.errors import DataError
    from asr.steps.train_phone_lm import train_phone_lm_stage

    with pytest.raises(DataError, match=r"data/train: utterance u1: phone 'zz' is not one of the model's 5"):
        encode(PHONES, ["sil", "zz"], "data/train: utterance u1")
    cfg = PhoneLmConfig(phones=tuple(PHONES), epochs=1)
    with pytest.raises(DataError, match="needs training and dev utterances"):
        train_phone_lm(tmp_path / "lm", [encode(PHONES, ["a"], "x")], [], cfg, CPU)
    with pytest.raises(ModelError, match="go together"):
        train_phone_lm_stage(tmp_path, tmp_path, tmp_path / "lm", tmp_path / "phones.txt", None, CPU,
                             extra_text=tmp_path / "words.txt")
