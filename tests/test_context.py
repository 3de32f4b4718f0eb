"""The context dependency, transition ids, H∘C∘G for a triphone tree, and forced alignment
(real kaldifst, kaldingram, kaldilm and kaldi-decoder on toy phone sets)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from asr.decode.wfst import WfstDecoder
from asr.errors import DataError, ModelError
from asr.hmm.alignment import AlignmentSet, read_alignments, write_alignments
from asr.hmm.context import ContextDependency, Split
from asr.phones.topology import DEFAULT_TOPOLOGY as CI_TOPOLOGY
from asr.hmm.transitions import (PhoneRun, Transitions, alignment_from_runs, alignment_pdfs,
                                 check_alignment, ci_transitions)
from asr.lang.graph import alignment_graph, make_decoding_graph
from asr.phones.timit import PHONES48
from asr.steps.align import path_score

PHONES = ["sil", "a", "b", "c", "d"]
ID = {p: i + 1 for i, p in enumerate(PHONES)}
S = 3


def toy_tree(phones: list[str] = PHONES) -> ContextDependency:
    """Triphone tree on ``phones`` (silence first, then four phones p1..p4): every state of
    p1..p4 asks "left in {p1, p2}?", then (yes branch) "right in {p3, p4}?"; silence
    stays CI. 3 + 4 * 3 * 3 = 39 pdfs."""
    questions = [[2, 3], [4, 5]]
    nodes: list = []
    roots = []
    pdf = 0
    for k, phone in enumerate(phones):
        states = []
        for _ in range(S):
            base = len(nodes)
            if k == 0:
                nodes.append(pdf)
                pdf += 1
            else:
                nodes += [Split(-1, 0, base + 1, base + 4), Split(+1, 1, base + 2, base + 3),
                          pdf, pdf + 1, pdf + 2]
                pdf += 3
            states.append(base)
        roots.append(states)
    return ContextDependency(list(phones), CI_TOPOLOGY, 3, 1, questions, nodes, roots, [phones[0]])


def test_ci_numbering_is_the_classic_one():
    ci = ContextDependency.ci(list(PHONES48))
    assert ci.num_pdfs == 144 and ci.is_ci
    assert [ci.pdf((i + 1,), k) for i in range(48) for k in range(S)] == list(range(144))
    assert ci.pdf_phone.tolist() == np.repeat(np.arange(48), 3).tolist()
    assert ci.windows([3, 1, 2]) == [(3,), (1,), (2,)]


def test_tree_questions_and_windows():
    ctx = toy_tree()
    assert ctx.num_pdfs == 39
    assert ctx.windows([ID["sil"], ID["b"], ID["c"]]) == [(0, 1, 3), (1, 3, 4), (3, 4, 0)]
    # c after a, before d: left yes, right yes → first leaf of c's state-0 root
    c0 = 3 + 2 * 9  # pdfs of sil (3), a (9), b (9) come first
    assert ctx.pdf((ID["a"], ID["c"], ID["d"]), 0) == c0
    assert ctx.pdf((ID["a"], ID["c"], ID["sil"]), 0) == c0 + 1
    assert ctx.pdf((ID["d"], ID["c"], ID["d"]), 0) == c0 + 2  # left no: right not asked
    assert ctx.pdf((0, ID["c"], 0), 2) == c0 + 6 + 2  # unseen edge contexts map to a leaf
    assert ctx.pdfs((ID["c"], ID["sil"], ID["a"])) == ctx.pdfs((0, ID["sil"], 0)) == (0, 1, 2)
    assert (ctx.pdf_phone[c0:c0 + 9] == 3).all() and ctx.pdf_state[c0:c0 + 9].tolist() == [0] * 3 + [1] * 3 + [2] * 3


def test_save_load_and_malformed_trees(tmp_path: Path):
    ctx = toy_tree()
    ctx.save(tmp_path / "tree.json")
    again = ContextDependency.load(tmp_path / "tree.json")
    assert again.digest() == ctx.digest() and again.to_dict() == ctx.to_dict()
    bad = ctx.to_dict()
    bad["nodes"][3] = [-1, 0, 3, 4]  # a's first split points back at itself
    with pytest.raises(ModelError, match="reached twice"):
        ContextDependency.from_dict(bad)
    bad = ctx.to_dict()
    bad["roots"][0][0] = 10_000
    with pytest.raises(ModelError, match="missing node"):
        ContextDependency.from_dict(bad)
    bad = ctx.to_dict()
    bad["nodes"][3] = [2, 0, 4, 7]  # a split on a position outside the triphone window
    with pytest.raises(ModelError, match="position 2"):
        ContextDependency.from_dict(bad)
    (tmp_path / "junk.json").write_text("[1, 2]")
    with pytest.raises(ModelError, match="junk.json: not a context dependency"):
        ContextDependency.load(tmp_path / "junk.json")
    with pytest.raises(ModelError, match="HMM state 3"):
        ctx.pdf((1, 2, 3), 3)


def test_transition_ids_round_trip():
    ctx = toy_tree()
    tr = Transitions(ctx)
    runs = [PhoneRun(0, 0, 4), PhoneRun(2, 4, 9), PhoneRun(2, 9, 12), PhoneRun(0, 12, 16)]
    ci_ali = alignment_from_runs(runs, PHONES, CI_TOPOLOGY)
    check_alignment(ci_ali, PHONES, CI_TOPOLOGY, 16, "u")
    assert ci_transitions(PHONES, CI_TOPOLOGY).phone_runs(ci_ali) == runs  # "b b" stays two phones
    pdfs = alignment_pdfs(ci_ali, ctx)
    windows = ctx.windows([1, 3, 3, 1])
    assert pdfs[4] == ctx.pdf(windows[1], 0) and pdfs[9] == ctx.pdf(windows[2], 0)
    assert pdfs[4] != pdfs[9]  # b after sil and b after b are different triphones
    # the same path as this model's transition ids, and back to the stored form
    enters = np.r_[True, np.diff(ci_transitions(PHONES, CI_TOPOLOGY).tid_state[ci_ali - 1]) != 0]
    enters[[4, 9, 12]] = True
    tids = 2 * pdfs + 1 + ~enters
    assert tr.phone_runs(tids) == runs
    assert tr.to_ci(tids).tolist() == ci_ali.tolist()
    with pytest.raises(DataError, match="frame 5"):
        broken = ci_ali.copy()
        broken[5] = ci_ali[8]  # jumps to the last state of b
        check_alignment(broken, PHONES, CI_TOPOLOGY, 16, "u")


def planted(ctx: ContextDependency, phone_ids: list[int], rng: np.random.Generator,
            num_pdfs: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores (T, num_pdfs) peaked on a triphone-state path of ``phone_ids``, and its pdfs."""
    pdfs = [p for w in ctx.windows(phone_ids) for p in ctx.pdfs(w)
            for _ in range(int(rng.integers(1, 4)))]
    scores = -3.0 + 0.5 * rng.standard_normal((len(pdfs), num_pdfs))
    scores[np.arange(len(pdfs)), pdfs] = 0.0
    return scores.astype(np.float32), np.asarray(pdfs)


@pytest.fixture(scope="module")
def cd_graph(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cd")
    rng = random.Random(0)
    (d / "text").write_text("".join(
        f"u{i} sil {' '.join(rng.choices(PHONES[1:], k=rng.randint(3, 12)))} sil\n" for i in range(200)))
    return make_decoding_graph(d / "lang", toy_tree(), d / "text", order=2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hcg_recovers_a_planted_triphone_state_sequence(cd_graph: Path, seed: int):
    ctx = toy_tree()
    decoder = WfstDecoder(cd_graph, Transitions(ctx))
    rng = np.random.default_rng(seed)
    phones = [ID["sil"], *rng.integers(2, 6, 25).tolist(), ID["sil"]]
    scores, pdfs = planted(ctx, phones, rng, ctx.num_pdfs)
    result = decoder.decode(scores)
    assert result.olabels == phones
    np.testing.assert_array_equal(result.pdfs, pdfs)
    assert [r.phone + 1 for r in result.runs] == phones


def test_hcg_paths_are_consistent_triphone_paths(cd_graph: Path):
    """Whatever the scores, every decoded phone's pdfs are those of its own context window
    (the windows C puts on H's input are aligned with the phones G outputs)."""
    ctx = toy_tree()
    decoder = WfstDecoder(cd_graph, Transitions(ctx))
    rng = np.random.default_rng(7)
    for _ in range(5):
        result = decoder.decode((0.5 * rng.standard_normal((120, ctx.num_pdfs))).astype(np.float32))
        assert [r.phone + 1 for r in result.runs] == result.olabels
        for run, window in zip(result.runs, ctx.windows(result.olabels)):
            allowed = set(ctx.pdfs(window))
            assert set(result.pdfs[run.start:run.end].tolist()) == allowed, (window, run)


def test_forced_alignment_finds_the_planted_path_and_beats_the_uniform_split():
    """Viterbi within the known phones recovers planted boundaries that the uniform
    split misses, and its path score (computed independently) is higher."""
    ctx = toy_tree()
    tr = Transitions(ctx)
    rng = np.random.default_rng(4)
    phones = [ID["sil"], ID["a"], ID["c"], ID["c"], ID["d"], ID["sil"]]
    scores, pdfs = planted(ctx, phones, rng, ctx.num_pdfs)
    scores[:, :3] += 1.0  # silence everywhere is tempting: only the phone constraint stops it
    graph = alignment_graph(ctx, phones)
    result = WfstDecoder(graph, tr, beam=50.0).decode(scores)
    np.testing.assert_array_equal(result.pdfs, pdfs)
    ali = tr.to_ci(result.tids)
    check_alignment(ali, PHONES, CI_TOPOLOGY, len(pdfs), "u")
    viterbi = path_score(scores, ali, ctx)
    assert viterbi.total == pytest.approx(-(result.graph_cost + result.acoustic_cost), abs=1e-3)
    bounds = np.linspace(0, len(pdfs), len(phones) + 1).astype(int)
    uniform = alignment_from_runs([PhoneRun(p - 1, int(a), int(b)) for p, a, b in
                                   zip(phones, bounds[:-1], bounds[1:])], PHONES, CI_TOPOLOGY)
    assert viterbi.total > path_score(scores, uniform, ctx).total + 1.0


def test_alignment_of_another_phone_set_is_a_named_error(tmp_path: Path):
    ali = alignment_from_runs([PhoneRun(0, 0, 3), PhoneRun(1, 3, 7)], PHONES, CI_TOPOLOGY)
    write_alignments(tmp_path / "ali", AlignmentSet(PHONES, CI_TOPOLOGY, 0.01, {"u": ali}))
    with pytest.raises(ModelError, match="another phone set"):
        read_alignments(tmp_path / "ali", expect_phones=list(PHONES48))
    aset = read_alignments(tmp_path / "ali", expect_phones=PHONES)
    with pytest.raises(ModelError, match="another phone set"):
        aset.pdfs(ContextDependency.ci(list(PHONES48)))
