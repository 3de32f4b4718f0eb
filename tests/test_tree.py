import itertools

import numpy as np
import pytest

from asr.errors import DataError
from asr.hmm.context import ContextDependency, Split
from asr.phones.topology import DEFAULT_TOPOLOGY as CI_TOPOLOGY
from asr.hmm.transitions import PhoneRun, alignment_from_runs, ci_transitions
from asr.hmm.tree import (TreeStats, accumulate_stats, build_tree, cluster_phones,
                          format_tree, gaussian_loglike, leaf_stats, tree_loglike, tree_summary)

PHONES = ["sil", "a", "b", "c", "d"]
SIL, A, B, C, D = range(5)           # phone indices; ids are index + 1
S = CI_TOPOLOGY.states_per_phone
CI_LEAVES = len(PHONES) * S
PLANT = 3.0                          # mean shift of c, state 1, when the left phone is a or b
ALL_WINDOWS = [(l, c, r) for l in range(6) for c in range(1, 6) for r in range(6)]


def make_corpus(num_utts: int = 120, seed: int = 0):
    """Alignments and 2-D features with a planted left-context effect.

    Returns (alignments, feats, frames): frames holds per-frame left/centre/
    right ids, state and features of all utterances, for hand computations.
    """
    rng = np.random.default_rng(seed)
    ci = ci_transitions(PHONES, CI_TOPOLOGY)
    means = np.stack(np.meshgrid(np.arange(5) * 2.0, np.arange(3) * 0.7, indexing="ij"), -1)
    alis, feats, cols = {}, {}, []
    for u in range(num_utts):
        seq = np.array([SIL, *rng.integers(A, D + 1, size=8), SIL])
        lengths = rng.integers(3, 9, size=len(seq))
        ends = np.cumsum(lengths)
        ali = alignment_from_runs([PhoneRun(int(p), int(e - n), int(e))
                                   for p, n, e in zip(seq, lengths, ends)], PHONES, CI_TOPOLOGY)
        ids = seq + 1
        left = np.repeat(np.concatenate([[0], ids[:-1]]), lengths)
        centre = np.repeat(ids, lengths)
        right = np.repeat(np.concatenate([ids[1:], [0]]), lengths)
        state = ci.tid_state[ali - 1]
        x = means[centre - 1, state] + rng.normal(size=(len(ali), 2))
        shifted = np.isin(left, [A + 1, B + 1]) & (
            ((centre == C + 1) & (state == 1)) | ((centre == SIL + 1) & (state == 0)))
        x[shifted, 0] += PLANT
        alis[f"u{u:03d}"], feats[f"u{u:03d}"] = ali, x.astype(np.float32)
        cols.append((left, centre, right, state, x.astype(np.float32).astype(np.float64)))
    frames = {k: np.concatenate([c[i] for c in cols]) for i, k in
              enumerate(["left", "centre", "right", "state", "x"])}
    return alis, feats, frames


@pytest.fixture(scope="module")
def corpus():
    return make_corpus()


@pytest.fixture(scope="module")
def stats(corpus):
    alis, feats, _ = corpus
    return accumulate_stats(alis, feats, PHONES, CI_TOPOLOGY)


def subset_questions():
    """Every non-empty set of the non-silence phone ids, then {sil}."""
    ids = [A + 1, B + 1, C + 1, D + 1]
    subsets = [frozenset(c) for k in range(1, 5) for c in itertools.combinations(ids, k)]
    return subsets + [frozenset({SIL + 1})]


def hand_loglike(x: np.ndarray) -> float:
    """The Gaussian objective of raw frames (N, D), from np.var."""
    n, d = x.shape
    return -0.5 * n * (d * np.log(2 * np.pi) + np.log(x.var(axis=0)).sum() + d)


def split_roots(ctx):
    return [(i, k) for i in range(len(PHONES)) for k in range(S)
            if isinstance(ctx.nodes[ctx.roots[i][k]], Split)]


# ---- accumulate_stats ------------------------------------------------------
def test_accumulate_stats_matches_frames(corpus, stats):
    _, _, frames = corpus
    assert stats.count.sum() == len(frames["x"])
    ev = np.stack([frames["left"], frames["centre"], frames["right"], frames["state"]], 1)
    uniq, inverse, counts = np.unique(ev, axis=0, return_inverse=True, return_counts=True)
    assert np.array_equal(stats.events, uniq)           # sorted, unique, same events
    assert np.array_equal(stats.count, counts)
    sums = np.zeros((len(uniq), 2))
    np.add.at(sums, inverse.ravel(), frames["x"])
    np.testing.assert_allclose(stats.sum, sums, rtol=1e-10, atol=1e-8)
    sq = np.zeros((len(uniq), 2))
    np.add.at(sq, inverse.ravel(), frames["x"] ** 2)
    np.testing.assert_allclose(stats.sumsq, sq, rtol=1e-10)
    # utterances start and end with silence: the edge (0) is only silence's neighbour
    assert set(stats.events[stats.events[:, 0] == 0, 1]) == {SIL + 1}
    assert set(stats.events[stats.events[:, 2] == 0, 1]) == {SIL + 1}


def test_accumulate_stats_rejects_bad_utterances(corpus):
    alis, feats, _ = corpus
    some = dict(list(alis.items())[:3])
    with pytest.raises(DataError, match="utterance u001"):
        accumulate_stats(some, {k: v for k, v in feats.items() if k != "u001"}, PHONES, CI_TOPOLOGY)
    short = {k: (v[:-1] if k == "u002" else v) for k, v in feats.items()}
    with pytest.raises(DataError, match="utterance u002"):
        accumulate_stats(some, short, PHONES, CI_TOPOLOGY)
    with pytest.raises(DataError, match="no aligned utterances"):
        accumulate_stats({}, feats, PHONES, CI_TOPOLOGY)


def test_tree_stats_save_load(tmp_path, stats):
    stats.save(tmp_path / "stats.npz")
    back = TreeStats.load(tmp_path / "stats.npz")
    assert np.array_equal(back.events, stats.events) and np.array_equal(back.sum, stats.sum)
    with pytest.raises(DataError, match="missing.npz"):
        TreeStats.load(tmp_path / "missing.npz")


# ---- the tree ---------------------------------------------------------------
def test_planted_split_is_found_with_its_gain(corpus, stats):
    _, _, frames = corpus
    questions = subset_questions()
    ctx = build_tree(stats, PHONES, CI_TOPOLOGY, questions, ci_phones=["sil"], num_leaves=CI_LEAVES + 1,
                     min_occupancy=1)
    assert ctx.num_pdfs == CI_LEAVES + 1
    assert split_roots(ctx) == [(C, 1)]
    root = ctx.nodes[ctx.roots[C][1]]
    planted = frozenset({A + 1, B + 1})
    assert root.position == -1
    assert ctx.questions[root.question] in (planted, frozenset(range(6)) - planted)
    # the gain, by hand from the raw frames of (c, state 1)
    here = (frames["centre"] == C + 1) & (frames["state"] == 1)
    yes = here & np.isin(frames["left"], list(planted))
    x = frames["x"]
    gain = hand_loglike(x[yes]) + hand_loglike(x[here & ~yes]) - hand_loglike(x[here])
    assert gain > 100
    ci = ContextDependency.ci(PHONES, CI_TOPOLOGY)
    assert tree_loglike(ctx, stats) - tree_loglike(ci, stats) == pytest.approx(gain, rel=1e-6)
    # the same split stays the first one of that root when the tree grows on
    big = build_tree(stats, PHONES, CI_TOPOLOGY, questions, ci_phones=["sil"], num_leaves=60, min_occupancy=1)
    first = big.nodes[big.roots[C][1]]
    assert (first.position, big.questions[first.question]) == (-1, ctx.questions[root.question])


def test_gaussian_loglike_by_hand():
    x = np.array([[0.0, 1.0], [2.0, 5.0], [4.0, 0.0]])
    ll = gaussian_loglike(np.array(3.0), x.sum(0), (x * x).sum(0), 1e-6)
    assert float(ll) == pytest.approx(hand_loglike(x), rel=1e-12)
    floored = gaussian_loglike(np.array(3.0), x.sum(0), (x * x).sum(0), 100.0)
    assert float(floored) == pytest.approx(-1.5 * (2 * np.log(2 * np.pi) + 2 * np.log(100) + 2))
    assert gaussian_loglike(np.zeros(2), np.zeros((2, 2)), np.zeros((2, 2)), 1.0).tolist() == [0, 0]


def test_min_occupancy_stops_small_children(corpus, stats):
    _, _, frames = corpus
    here = (frames["centre"] == C + 1) & (frames["state"] == 1)
    yes = np.isin(frames["left"][here], [A + 1, B + 1])
    smaller = min(yes.sum(), (~yes).sum())
    questions = subset_questions()
    ctx = build_tree(stats, PHONES, CI_TOPOLOGY, questions, ci_phones=["sil"], num_leaves=200,
                     min_occupancy=smaller + 1)
    root = ctx.nodes[ctx.roots[C][1]]
    planted = frozenset({A + 1, B + 1})
    assert not (isinstance(root, Split) and root.position == -1
                and ctx.questions[root.question] in (planted, frozenset(range(6)) - planted))
    count, _, _ = leaf_stats(ctx, stats)
    split_pdfs = [p for p in range(ctx.num_pdfs)
                  if (ctx.pdf_phone[p], ctx.pdf_state[p]) in split_roots(ctx)]
    assert split_pdfs and count[split_pdfs].min() >= smaller + 1
    # more than half of every root: nothing can split
    none = build_tree(stats, PHONES, CI_TOPOLOGY, questions, ci_phones=["sil"], num_leaves=200,
                      min_occupancy=stats.count.sum())
    assert none.num_pdfs == CI_LEAVES


def test_num_leaves_caps_and_silence_never_splits(stats):
    questions = subset_questions()
    capped = build_tree(stats, PHONES, CI_TOPOLOGY, questions, ci_phones=["sil"], num_leaves=CI_LEAVES + 4,
                        min_occupancy=1)
    assert capped.num_pdfs == CI_LEAVES + 4
    big = build_tree(stats, PHONES, CI_TOPOLOGY, questions, ci_phones=["sil"], num_leaves=1000, min_occupancy=1)
    assert big.num_pdfs > CI_LEAVES + 10
    assert all(isinstance(big.nodes[r], int) for r in big.roots[SIL])
    assert big.ci_phones == ["sil"]
    # silence's state 0 has a planted effect: it would split were it not a CI phone
    free = build_tree(stats, PHONES, CI_TOPOLOGY, questions, num_leaves=1000, min_occupancy=1,
                      ci_phones=())
    assert isinstance(free.nodes[free.roots[SIL][0]], Split)
    # a high min_gain keeps only the strong planted splits
    strong = build_tree(stats, PHONES, CI_TOPOLOGY, questions, num_leaves=1000,
                        min_occupancy=1, min_gain=100.0, ci_phones=())
    assert split_roots(strong) == [(SIL, 0), (C, 1)]


@pytest.mark.parametrize("num_leaves,questions", [(CI_LEAVES, "subsets"), (500, "none")])
def test_no_split_gives_the_ci_numbering(stats, num_leaves, questions):
    qs = subset_questions() if questions == "subsets" else []
    ctx = build_tree(stats, PHONES, CI_TOPOLOGY, qs, ci_phones=["sil"], num_leaves=num_leaves, min_occupancy=1)
    ci = ContextDependency.ci(PHONES, CI_TOPOLOGY)
    assert ctx.nodes == ci.nodes and ctx.roots == ci.roots
    for window in ALL_WINDOWS:
        for s in range(S):
            assert ctx.pdf(window, s) == (window[1] - 1) * S + s == ci.pdf(window[1:2], s)


def test_unseen_triphones_get_a_pdf_of_their_phone_and_state(stats):
    questions = cluster_phones(stats, PHONES, exclude=["sil"])
    ctx = build_tree(stats, PHONES, CI_TOPOLOGY, questions, ci_phones=["sil"], num_leaves=80, min_occupancy=5)
    assert ctx.num_pdfs > CI_LEAVES
    seen = {tuple(e[:3]) for e in stats.events.tolist()}
    unseen = [w for w in ALL_WINDOWS if w not in seen]
    assert len(unseen) > 20
    for window in unseen:
        for s in range(S):
            pdf = ctx.pdf(window, s)
            assert 0 <= pdf < ctx.num_pdfs
            assert (ctx.pdf_phone[pdf], ctx.pdf_state[pdf]) == (window[1] - 1, s)
    # the vectorised walk agrees with ContextDependency.pdf
    expected = [ctx.pdf(e[:3], e[3]) for e in stats.events.tolist()]
    assert ctx.event_pdfs(stats.events).tolist() == expected


def test_save_load_round_trip_and_format(tmp_path, stats):
    questions = cluster_phones(stats, PHONES, exclude=["sil"])
    ctx = build_tree(stats, PHONES, CI_TOPOLOGY, questions, ci_phones=["sil"], num_leaves=40, min_occupancy=5)
    ctx.save(tmp_path / "tree.json")
    back = ContextDependency.load(tmp_path / "tree.json")
    assert back.digest() == ctx.digest()
    assert all(back.pdfs(w) == ctx.pdfs(w) for w in ALL_WINDOWS)
    text = format_tree(ctx)
    header = text.splitlines()[0]
    assert "5 phones" in header and "context width 3" in header and f"{ctx.num_pdfs} pdfs" in header
    for phone in PHONES:
        assert f"\n{phone} state 0" in text
    assert "L in {" in text and "(question " in text
    assert text.count("pdf ") == ctx.num_pdfs
    shallow = format_tree(ctx, max_depth=0)
    assert "leaves (pdfs" in shallow and "L in" not in shallow
    ci_text = format_tree(ContextDependency.ci(PHONES, CI_TOPOLOGY)).splitlines()
    assert len(ci_text) == 1 + CI_LEAVES and ci_text[4] == "a state 0: pdf 3"
    summary = tree_summary(ctx)
    assert summary["num_pdfs"] == ctx.num_pdfs and summary["leaves_per_phone_min"] == S


def test_format_abbreviates_long_phone_sets():
    phones = [f"p{i}" for i in range(12)]
    ctx = ContextDependency(phones, CI_TOPOLOGY, 3, 1, [list(range(1, 11))],
                            [Split(-1, 0, 1, 2), 0, 1] + list(range(2, 37)),
                            [[0, 3, 4]] + [[5 + 3 * i + k for k in range(3)] for i in range(11)])
    text = format_tree(ctx)
    assert "L in {p0, p1, p2, p3, p4, p5, p6, p7, … (+2)}?  (question 0)" in text
    assert "  yes: pdf 0" in text and "  no:  pdf 1" in text


# ---- questions ----------------------------------------------------------------
def test_cluster_phones_separates_two_groups():
    phones = ["sil", "a", "b", "c", "d", "e", "f"]
    rng = np.random.default_rng(1)
    centre_means = {2: 0.0, 3: 0.4, 4: 0.8, 5: 10.0, 6: 10.5, 7: 11.0, 1: 5.0}
    events, count, sums, sumsq = [], [], [], []
    for pid, mu in centre_means.items():
        for s in range(S):
            x = mu + s + rng.normal(size=(200, 2))
            events.append([0, pid, 0, s])
            count.append(len(x))
            sums.append(x.sum(0))
            sumsq.append((x * x).sum(0))
    stats = TreeStats(np.array(events), np.array(count, float), np.array(sums), np.array(sumsq))
    questions = cluster_phones(stats, phones, exclude=["sil"])
    low, high = frozenset({2, 3, 4}), frozenset({5, 6, 7})
    assert questions[0] == low | high
    assert questions[1] in (low, high) and low in questions and high in questions
    assert all(frozenset({p}) in questions for p in range(2, 8))
    assert len(questions) == 2 * 6 - 1 + 1 and questions[-1] == frozenset({1})
    assert all(1 not in q for q in questions[:-1])
    assert cluster_phones(stats, phones, exclude=["sil"]) == questions
