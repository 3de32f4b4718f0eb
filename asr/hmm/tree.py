"""Phonetic decision trees for triphone models, in the manner of Kaldi's
``build-tree`` (src/tree/build-tree.cc, build-tree-utils.cc) and
``cluster-phones``.

Three steps, each its own function:

1. :func:`accumulate_stats` reads stored alignments (CI transition ids) and
   features and keeps, per *event* (left phone, centre phone, right phone,
   HMM state), the frame count, the sum and the sum of squares of the
   feature vectors: the sufficient statistics of one diagonal Gaussian.
2. :func:`cluster_phones` groups phones top-down by how alike their
   Gaussians are; every cluster of the hierarchy becomes a *question* (a set
   of phone ids) that a split may ask about a neighbour.
3. :func:`build_tree` grows one tree per (phone, HMM state) greedily: the
   leaf whose best question gains the most log-likelihood is split first,
   until ``num_leaves`` leaves exist or no split gains more than
   ``min_gain`` (0 by default, and the build-tree step does not set it: any
   positive gain splits). The result is a
   :class:`~asr.hmm.context.ContextDependency` of width 3 (triphones).

Unlike Kaldi's ``build-tree``: roots are never shared (Kaldi's default
``roots.txt`` has one root per phone shared by its states, so it can ask
about the HMM state and group states; here every (phone, state) has its own
root and questions ask only about the left and right phones); there is no
bottom-up merge of the leaves after splitting (Kaldi's ``--cluster-thresh``
pass); and the questions are the phone clusters plus one silence question,
plus the lang's ``extra_questions.txt`` (:func:`asr.steps.build_tree.build_tree_stage`).
See docs/kaldi_differences.md.

The objective throughout is Kaldi's: the log-likelihood of pooled data
under one diagonal Gaussian with its maximum-likelihood mean and variance,
``-0.5 · n · (D·log 2π + Σ_d log var_d + D)`` (:func:`gaussian_loglike`),
variances floored at :data:`VAR_FLOOR_RATIO` times the global variance of
each dimension (Kaldi floors at a fixed 0.01, which assumes normalised
features; a ratio does not depend on the features' scale).

Phone ids are those of ``phones.txt`` (phone index + 1); id 0 is the
utterance edge, the neighbour of the first and the last phone.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from asr.errors import DataError, ModelError
from asr.hmm.context import ContextDependency, Node, Split
from asr.phones.topology import Topology
from asr.hmm.transitions import Transitions, check_alignment, ci_transitions
from asr.io import atomic_path

log = logging.getLogger(__name__)

#: Variance floor of every Gaussian, relative to the global variance per dimension.
VAR_FLOOR_RATIO = 1e-3
#: Absolute lower bound of the floor (a feature dimension that never varies).
MIN_VAR_FLOOR = 1e-10
LOG_2PI = float(np.log(2.0 * np.pi))
#: Rows of pending per-utterance statistics merged into the totals at once.
_MERGE_ROWS = 1 << 16
#: Shown members of a phone set in :func:`format_tree`.
_SHOW_PHONES = 8
EDGE = "<edge>"


# ---- statistics ----------------------------------------------------------
@dataclass
class TreeStats:
    """Gaussian sufficient statistics per event (left, centre, right phone id, state).

    Attributes:
        events: (E, 4) int64: left phone id, centre phone id, right phone id
            (0 = utterance edge), HMM state; rows unique, sorted.
        count: (E,) float64 frames.
        sum: (E, D) float64 sum of the feature vectors.
        sumsq: (E, D) float64 sum of their squares.
    """

    events: np.ndarray
    count: np.ndarray
    sum: np.ndarray
    sumsq: np.ndarray

    def __post_init__(self) -> None:
        e = len(self.events)
        assert self.events.shape == (e, 4), self.events.shape
        assert self.count.shape == (e,), (self.count.shape, e)
        assert self.sum.shape == self.sumsq.shape and len(self.sum) == e, (self.sum.shape, e)

    @property
    def dim(self) -> int:
        return int(self.sum.shape[1])

    @property
    def num_frames(self) -> float:
        return float(self.count.sum())

    def save(self, path: Path) -> None:
        """Write the statistics as a ``.npz`` file, atomically."""
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, events=self.events, count=self.count, sum=self.sum, sumsq=self.sumsq)

    @classmethod
    def load(cls, path: Path) -> "TreeStats":
        """Read :meth:`save`'s file; DataError naming it when missing or malformed."""
        try:
            with np.load(path) as z:
                return cls(z["events"].astype(np.int64), z["count"].astype(np.float64),
                           z["sum"].astype(np.float64), z["sumsq"].astype(np.float64))
        except (OSError, KeyError, ValueError, AssertionError) as exc:
            raise DataError(f"{path}: not readable tree statistics ({exc})") from None


def _event_keys(events: np.ndarray, num_ids: int, num_states: int) -> np.ndarray:
    """(E, 4) events → (E,) int64 keys, ordered like the events' rows."""
    l, c, r, s = events.T
    return ((l * num_ids + c) * num_ids + r) * num_states + s


def _key_events(keys: np.ndarray, num_ids: int, num_states: int) -> np.ndarray:
    """Inverse of :func:`_event_keys`: (E,) keys → (E, 4) int64 events."""
    rest, s = np.divmod(keys, num_states)
    rest, r = np.divmod(rest, num_ids)
    l, c = np.divmod(rest, num_ids)
    return np.stack([l, c, r, s], axis=1).astype(np.int64)


def _reduce(keys: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum the (n, C) ``rows`` that share a key: (k,) sorted unique keys, (k, C) sums."""
    order = np.argsort(keys, kind="stable")
    keys, rows = keys[order], rows[order]
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return keys[starts], np.add.reduceat(rows, starts, axis=0)


def _utterance_events(ci: Transitions, ci_tids: np.ndarray, num_ids: int,
                      num_states: int) -> np.ndarray:
    """(T,) event key of every frame of one alignment (triphone window and state)."""
    tids = np.asarray(ci_tids, dtype=np.int64)
    runs = ci.phone_runs(tids)
    ids = np.array([r.phone + 1 for r in runs], dtype=np.int64)        # (R,)
    lengths = np.array([r.end - r.start for r in runs], dtype=np.int64)  # (R,)
    left = np.concatenate([[0], ids[:-1]])
    right = np.concatenate([ids[1:], [0]])
    window = np.repeat(np.stack([left, ids, right], axis=1), lengths, axis=0)  # (T, 3)
    state = ci.tid_state[tids - 1]                                       # (T,)
    return _event_keys(np.column_stack([window, state]), num_ids, num_states)


def accumulate_stats(alignments: Mapping[str, np.ndarray], feats: Mapping[str, np.ndarray],
                     phones: Sequence[str], topology: Topology) -> TreeStats:
    """Gaussian statistics of every (triphone, HMM state) event of the alignments.

    Args:
        alignments: utterance id → (T,) CI transition ids (the stored form,
            :func:`asr.hmm.transitions.alignment_from_runs`).
        feats: utterance id → (T, D) features; utterances without an
            alignment are ignored.
        phones: the alignments' phone list; topology: their HMM.

    Raises:
        DataError: naming the utterance, when its features are missing, not
            (T, D) with the alignment's T and the others' D, or its
            alignment is not a path of the CI HMMs; or when there is no
            utterance at all.
    """
    ci = ci_transitions(phones, topology)
    num_ids, num_states = len(phones) + 1, int(topology.num_states(phones).max())
    keys, rows = np.zeros(0, np.int64), None
    pending: list[tuple[np.ndarray, np.ndarray]] = []
    dim: Optional[int] = None
    for utt in sorted(alignments):
        if utt not in feats:
            raise DataError(f"utterance {utt}: alignment without features")
        x = np.asarray(feats[utt], dtype=np.float64)
        if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
            raise DataError(f"utterance {utt}: features of shape {x.shape}, "
                            f"expected (T, {dim or 'D'})")
        dim = x.shape[1]
        check_alignment(alignments[utt], phones, topology, len(x), f"utterance {utt}")
        frame_keys = _utterance_events(ci, alignments[utt], num_ids, num_states)
        pending.append(_reduce(frame_keys, np.hstack([np.ones((len(x), 1)), x, x * x])))
        if sum(len(k) for k, _ in pending) >= _MERGE_ROWS:
            keys, rows = _merge(keys, rows, pending)
    if dim is None:
        raise DataError("no aligned utterances to accumulate tree statistics from")
    keys, rows = _merge(keys, rows, pending)
    stats = TreeStats(_key_events(keys, num_ids, num_states), rows[:, 0].copy(),
                      rows[:, 1:1 + dim].copy(), rows[:, 1 + dim:].copy())
    log.info("tree statistics: %d utterances, %d frames, %d events (dim %d)",
             len(alignments), int(stats.num_frames), len(keys), dim)
    return stats


def _merge(keys: np.ndarray, rows: Optional[np.ndarray],
           pending: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Fold the pending per-utterance sums into the totals (and empty ``pending``)."""
    parts = ([(keys, rows)] if rows is not None else []) + pending
    pending.clear()
    return _reduce(np.concatenate([k for k, _ in parts]), np.concatenate([r for _, r in parts]))


# ---- Gaussian objective ---------------------------------------------------
def gaussian_loglike(count: np.ndarray, sum_: np.ndarray, sumsq: np.ndarray,
                     var_floor: np.ndarray | float) -> np.ndarray:
    """Log-likelihood of pooled data under its ML diagonal Gaussian.

    ``-0.5 · n · (D·log 2π + Σ_d log var_d + D)`` with ``var`` floored at
    ``var_floor`` (so the last term is Kaldi's approximation when the floor
    is active). Zero for ``n == 0``.

    Args:
        count: (...,) frames; sum_, sumsq: (..., D); var_floor: (D,) or scalar.

    Returns:
        (...,) float64 log-likelihoods (nats).
    """
    n = np.asarray(count, dtype=np.float64)
    d = sum_.shape[-1]
    safe = np.where(n > 0, n, 1.0)[..., None]           # (..., 1)
    mean = sum_ / safe
    var = np.maximum(sumsq / safe - mean * mean, var_floor)
    ll = -0.5 * n * (d * LOG_2PI + np.log(var).sum(axis=-1) + d)
    return np.where(n > 0, ll, 0.0)


def variance_floor(stats: TreeStats, ratio: float = VAR_FLOOR_RATIO) -> np.ndarray:
    """(D,) variance floor: ``ratio`` times the variance of all frames (at least MIN_VAR_FLOOR)."""
    n = max(stats.num_frames, 1.0)
    mean = stats.sum.sum(axis=0) / n
    var = stats.sumsq.sum(axis=0) / n - mean * mean
    return np.maximum(ratio * var, MIN_VAR_FLOOR)


# ---- questions -----------------------------------------------------------
def _phone_state_stats(stats: TreeStats, num_phones: int,
                       num_states: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stats pooled over contexts per (centre id, state): (P+1, S), (P+1, S, D) x2."""
    c, s = stats.events[:, 1], stats.events[:, 3]
    cnt = np.zeros((num_phones + 1, num_states))
    sm = np.zeros((num_phones + 1, num_states, stats.dim))
    sq = np.zeros_like(sm)
    np.add.at(cnt, (c, s), stats.count)
    np.add.at(sm, (c, s), stats.sum)
    np.add.at(sq, (c, s), stats.sumsq)
    return cnt, sm, sq


def _cluster_objf(cnt: np.ndarray, sm: np.ndarray, sq: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """Objective of clusters, summed over states: stats (..., S), (..., S, D) x2 → (...,)."""
    return gaussian_loglike(cnt, sm, sq, floor).sum(axis=-1)


def _split_two(members: np.ndarray, pstats: tuple[np.ndarray, np.ndarray, np.ndarray],
               floor: np.ndarray, max_moves: int) -> tuple[np.ndarray, np.ndarray]:
    """2-means of the phone ids ``members`` (>= 2) with the likelihood objective.

    Start: the one phone whose removal gains the most, alone against the
    rest. Refinement: move the single phone whose move to the other side
    gains the most, while a move gains (each move raises the objective, so
    it ends; ties go to the first phone). Returns the two sides, sorted.
    """
    cnt, sm, sq = (a[members] for a in pstats)           # (M, S), (M, S, D) x2
    tot = (cnt.sum(0), sm.sum(0), sq.sum(0))
    alone = _cluster_objf(cnt, sm, sq, floor)             # (M,)
    rest = _cluster_objf(tot[0] - cnt, tot[1] - sm, tot[2] - sq, floor)
    side = np.zeros(len(members), dtype=bool)              # True: second cluster
    side[int(np.argmax(alone + rest))] = True
    scale = max(abs(float(_cluster_objf(*tot, floor))), 1.0)
    for _ in range(max_moves):
        a = tuple(x[~side].sum(0) for x in (cnt, sm, sq))
        b = tuple(x[side].sum(0) for x in (cnt, sm, sq))
        sign = np.where(side, -1.0, 1.0)                   # +1: moves from A to B
        moved = [sign.reshape(-1, *[1] * (y.ndim - 1)) * y for y in (cnt, sm, sq)]
        new_a = [x - m for x, m in zip(a, moved)]          # (M, S), (M, S, D) x2
        new_b = [x + m for x, m in zip(b, moved)]
        gain = (_cluster_objf(*new_a, floor) + _cluster_objf(*new_b, floor)
                - _cluster_objf(*a, floor) - _cluster_objf(*b, floor))   # (M,)
        sizes = np.where(side, side.sum(), (~side).sum())
        gain[sizes <= 1] = -np.inf                        # a side never empties
        best = int(np.argmax(gain))
        if not gain[best] > 1e-12 * scale:
            break
        side[best] = ~side[best]
    return np.sort(members[~side]), np.sort(members[side])


def cluster_phones(stats: TreeStats, phones: Sequence[str], exclude: Sequence[str] = (),
                   *, states_per_phone: Optional[int] = None,
                   var_floor_ratio: float = VAR_FLOOR_RATIO) -> list[frozenset[int]]:
    """Questions from a top-down binary clustering of the phones (Kaldi's cluster-phones).

    Each phone is summarised per HMM state: one diagonal Gaussian per state,
    pooled over all contexts; a cluster's objective is the sum over states
    of the log-likelihood of its pooled stats, so phones group by how alike
    all their states are. The full set is split in two by
    :func:`_split_two`, then each side, down to single phones.

    Args:
        stats: :func:`accumulate_stats`'s output.
        phones: the phone list (phone i has id i+1).
        exclude: phones left out of the clustering (the lang's silence
            phones, :attr:`asr.phones.lang.Lang.silence`); they form one
            extra question of their own, last, so a split can still ask
            "is the neighbour silence?".
        states_per_phone: the most states of any phone; defaults to the
            largest state in ``stats`` + 1 (a phone with fewer states has
            nothing in the others).

    Returns:
        Phone-id sets, each once: every cluster of the hierarchy in pre-order
        (the full set first, singletons included), then the excluded set.
    """
    num_states = states_per_phone or int(stats.events[:, 3].max(initial=0)) + 1
    pstats = _phone_state_stats(stats, len(phones), num_states)
    floor = variance_floor(stats, var_floor_ratio)
    excluded = {phones.index(p) + 1 for p in exclude if p in phones}
    todo = [np.array([i + 1 for i in range(len(phones)) if i + 1 not in excluded], dtype=np.int64)]
    out: list[frozenset[int]] = []
    while todo:
        members = todo.pop()
        if len(members) == 0:
            continue
        out.append(frozenset(int(p) for p in members))
        if len(members) >= 2:
            first, second = _split_two(members, pstats, floor, max_moves=4 * len(members))
            todo += [second, first]                       # pre-order: first side next
    if excluded:
        out.append(frozenset(excluded))
    questions = list(dict.fromkeys(out))
    log.info("cluster_phones: %d questions from %d phones (%d excluded)",
             len(questions), len(phones) - len(excluded), len(excluded))
    return questions


# ---- tree building -----------------------------------------------------------
@dataclass(frozen=True)
class SplitChoice:
    """The best split of a leaf: its gain (nats) and question, and the children's rows."""

    gain: float
    position: int      # -1 left, +1 right
    question: int      # index into the questions
    yes: np.ndarray    # (n_yes,) rows of the stats
    no: np.ndarray     # (n_no,) rows of the stats


def _membership(questions: Sequence[Iterable[int]], num_phones: int) -> np.ndarray:
    """(Q, P+1) float64: 1 where phone id k is in question q."""
    member = np.zeros((len(questions), num_phones + 1))
    for q, phone_ids in enumerate(questions):
        ids = np.fromiter((int(p) for p in phone_ids), dtype=np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() > num_phones):
            raise ValueError(f"question {q} holds phone ids outside 0..{num_phones}: {sorted(ids)}")
        member[q, ids] = 1.0
    return member


def best_split(stats: TreeStats, rows: np.ndarray, member: np.ndarray, var_floor: np.ndarray,
               min_occupancy: float) -> Optional[SplitChoice]:
    """The split of the leaf holding ``rows`` of ``stats`` that gains the most.

    Every question about the left (position −1) and the right (+1)
    neighbour is scored at once: the leaf's stats are summed per neighbour
    id (K = P+1 values), the "yes" stats of all questions are
    ``member (Q, K) @ per-id stats (K, D)``, "no" is the rest.

    Args:
        rows: (n,) indices of the leaf's events in ``stats``.
        member: (Q, K) question membership (:func:`_membership`).
        min_occupancy: frames each child needs (and at least one each).

    Returns:
        The best allowed split (ties: left before right, lower question
        first), or None when no question splits the leaf.
    """
    num_ids = member.shape[1]
    if len(member) == 0 or len(rows) == 0:
        return None
    cnt, sm, sq = stats.count[rows], stats.sum[rows], stats.sumsq[rows]
    total = (cnt.sum(), sm.sum(0), sq.sum(0))
    parent = float(gaussian_loglike(np.array(total[0]), total[1], total[2], var_floor))
    gains = np.full((2, len(member)), -np.inf)
    for p, column in enumerate((0, 2)):
        ids = stats.events[rows, column]
        by_id = [np.zeros((num_ids,) + x.shape[1:]) for x in (cnt, sm, sq)]
        for acc, x in zip(by_id, (cnt, sm, sq)):
            np.add.at(acc, ids, x)                        # (K,), (K, D), (K, D)
        yes = [member @ acc for acc in by_id]             # (Q,), (Q, D), (Q, D)
        no = [t - y for t, y in zip(total, yes)]
        g = (gaussian_loglike(*yes, var_floor) + gaussian_loglike(*no, var_floor) - parent)
        ok = (np.minimum(yes[0], no[0]) >= min_occupancy) & (yes[0] > 0) & (no[0] > 0)
        gains[p] = np.where(ok, g, -np.inf)
    p, q = np.unravel_index(int(np.argmax(gains)), gains.shape)
    if not np.isfinite(gains[p, q]):
        return None
    inside = member[q, stats.events[rows, 0 if p == 0 else 2]] > 0
    return SplitChoice(float(gains[p, q]), -1 if p == 0 else 1, int(q), rows[inside], rows[~inside])


def _root_rows(stats: TreeStats, counts: np.ndarray) -> list[list[np.ndarray]]:
    """rows[i][s]: (n,) indices of the events of phone i (0-based), state s < counts[i]."""
    c, s = stats.events[:, 1], stats.events[:, 3]
    num_phones, num_states = len(counts), int(counts.max())
    if len(c) and (c.min() < 1 or c.max() > num_phones or s.min() < 0 or (s >= counts[c - 1]).any()):
        raise ModelError(f"tree statistics hold centre phones or states outside the "
                         f"{num_phones} phones of the model and their HMMs' states")
    key = (c - 1) * num_states + s
    order = np.argsort(key, kind="stable")
    bounds = np.searchsorted(key[order], np.arange(num_phones * num_states + 1))
    return [[order[bounds[i * num_states + k]:bounds[i * num_states + k + 1]]
             for k in range(int(counts[i]))] for i in range(num_phones)]


@dataclass
class _Growth:
    """A tree while it grows: leaves hold their stats rows, splits their children."""

    leaf_rows: dict[int, np.ndarray]
    splits: dict[int, tuple[int, int, int, int]]   # node → (position, question, yes, no)
    roots: list[list[int]]
    gain: float = 0.0
    num_nodes: int = 0

    def new_leaf(self, rows: np.ndarray) -> int:
        node, self.num_nodes = self.num_nodes, self.num_nodes + 1
        self.leaf_rows[node] = rows
        return node


def _grow(stats: TreeStats, root_rows: list[list[np.ndarray]], splittable: list[bool],
          member: np.ndarray, var_floor: np.ndarray, num_leaves: int,
          min_occupancy: float, min_gain: float) -> _Growth:
    """Greedy growth: always split the leaf whose best split gains the most (a heap)."""
    tree = _Growth({}, {}, [])
    heap: list[tuple[float, int, SplitChoice]] = []  # (-gain, node: ties by age)

    def consider(node: int) -> None:
        choice = best_split(stats, tree.leaf_rows[node], member, var_floor, min_occupancy)
        if choice is not None and choice.gain > min_gain:
            heapq.heappush(heap, (-choice.gain, node, choice))

    for i, states in enumerate(root_rows):
        tree.roots.append([tree.new_leaf(rows) for rows in states])
        if splittable[i]:
            for node in tree.roots[-1]:
                consider(node)
    while heap and len(tree.leaf_rows) < num_leaves:
        _, node, choice = heapq.heappop(heap)
        del tree.leaf_rows[node]
        yes, no = tree.new_leaf(choice.yes), tree.new_leaf(choice.no)
        tree.splits[node] = (choice.position, choice.question, yes, no)
        tree.gain += choice.gain
        consider(yes)
        consider(no)
    return tree


def _number(tree: _Growth) -> tuple[list[Node], list[list[int]], list[np.ndarray]]:
    """Final nodes, roots, and the stats rows of every pdf.

    Nodes are laid out root by root (phone 0 state 0, phone 0 state 1, …),
    depth first, "yes" before "no"; pdfs number the leaves in that order, so
    a tree without splits has nodes ``0..N-1`` = the CI numbering
    (``ContextDependency.ci_offsets[phone] + state``).
    """
    layout: list[list[int] | int] = []          # [position, question, yes, no] or a pdf
    leaf_rows: list[np.ndarray] = []
    roots: list[list[int]] = [[] for _ in tree.roots]
    for i, states in enumerate(tree.roots):
        for root in states:
            stack: list[tuple[int, int, int]] = [(root, -1, 0)]   # (node, parent, child slot)
            while stack:
                old, parent, slot = stack.pop()
                here = len(layout)
                if parent < 0:
                    roots[i].append(here)
                else:
                    layout[parent][slot] = here                  # type: ignore[index]
                if old in tree.splits:
                    pos, q, yes, no = tree.splits[old]
                    layout.append([pos, q, -1, -1])
                    stack += [(no, here, 3), (yes, here, 2)]
                else:
                    layout.append(len(leaf_rows))
                    leaf_rows.append(tree.leaf_rows[old])
    nodes: list[Node] = [n if isinstance(n, int) else Split(*n) for n in layout]
    return nodes, roots, leaf_rows


def build_tree(stats: TreeStats, phones: Sequence[str], topology: Topology,
               questions: Sequence[Iterable[int]], num_leaves: int, min_occupancy: float,
               ci_phones: Sequence[str] = (), min_gain: float = 0.0, *,
               var_floor_ratio: float = VAR_FLOOR_RATIO) -> ContextDependency:
    """Grow the triphone decision tree (width 3, centre 1) from ``stats``.

    One root per (phone, state); the roots of ``ci_phones`` (the lang's
    not-split roots, :attr:`asr.phones.lang.Lang.not_split`) are never split;
    a (phone, state) without data keeps one leaf. Then, while fewer than
    ``num_leaves`` leaves exist, the leaf with the largest gain is split by
    its best question (:func:`best_split`), if that gain exceeds
    ``min_gain`` and both children have ``min_occupancy`` frames. Leaves are
    never merged afterwards, and questions are about the left and right
    neighbours only (never the HMM state or the centre phone).

    Args:
        questions: phone-id sets (:func:`cluster_phones`); all are stored in
            the result, so ``Split.question`` indexes this list.
        num_leaves: the most pdfs (below phones x states: no split at all).
        min_occupancy: frames each leaf made by a split must hold.

    Returns:
        The context dependency; pdfs numbered root by root, depth first.
    """
    counts = topology.num_states(phones)
    member = _membership(questions, len(phones))
    floor = variance_floor(stats, var_floor_ratio)
    root_rows = _root_rows(stats, counts)
    unknown = sorted(set(ci_phones) - set(phones))
    if unknown:
        raise ModelError(f"build_tree: CI phones {unknown} are not in the phone list")
    splittable = [p not in set(ci_phones) for p in phones]
    if num_leaves < int(counts.sum()):
        log.warning("build_tree: num_leaves %d is below the %d (phone, state) roots: no split",
                    num_leaves, int(counts.sum()))
    tree = _grow(stats, root_rows, splittable, member, floor, num_leaves, min_occupancy, min_gain)
    nodes, roots, leaf_rows = _number(tree)
    ctx = ContextDependency(phones, topology, 3, 1, [sorted(q) for q in questions], nodes,
                            roots, ci_phones)
    occupancy = np.array([stats.count[r].sum() for r in leaf_rows])
    seen = occupancy[occupancy > 0]
    log.info("build_tree: %d leaves (%d splits), likelihood gain %.2f nats (%.4f per frame), "
             "smallest leaf %.0f frames, %d leaves without data",
             ctx.num_pdfs, len(tree.splits), tree.gain, tree.gain / max(stats.num_frames, 1.0),
             seen.min() if len(seen) else 0.0, int((occupancy == 0).sum()))
    return ctx


# ---- evaluation and display -----------------------------------------------
def leaf_stats(ctx: ContextDependency,
               stats: TreeStats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stats pooled per pdf of ``ctx``: count (N,), sum (N, D), sumsq (N, D)."""
    pdf = ctx.event_pdfs(stats.events)
    cnt = np.bincount(pdf, weights=stats.count, minlength=ctx.num_pdfs)
    sm, sq = np.zeros((ctx.num_pdfs, stats.dim)), np.zeros((ctx.num_pdfs, stats.dim))
    np.add.at(sm, pdf, stats.sum)
    np.add.at(sq, pdf, stats.sumsq)
    return cnt, sm, sq


def tree_loglike(ctx: ContextDependency, stats: TreeStats,
                 var_floor_ratio: float = VAR_FLOOR_RATIO) -> float:
    """Log-likelihood (nats) of ``stats`` with one Gaussian per pdf of ``ctx``.

    The difference between two trees is the likelihood gain
    :func:`build_tree` logs (same objective, same variance floor).
    """
    floor = variance_floor(stats, var_floor_ratio)
    return float(gaussian_loglike(*leaf_stats(ctx, stats), floor).sum())


def tree_summary(ctx: ContextDependency) -> dict:
    """num_pdfs, and leaves per phone: min / median / max and the phones at the extremes."""
    per_phone = np.bincount(ctx.pdf_phone, minlength=len(ctx.phones))
    return {"num_pdfs": ctx.num_pdfs, "context_width": ctx.width,
            "leaves_per_phone_min": int(per_phone.min()),
            "leaves_per_phone_median": float(np.median(per_phone)),
            "leaves_per_phone_max": int(per_phone.max()),
            "fewest_leaves_phone": ctx.phones[int(np.argmin(per_phone))],
            "most_leaves_phone": ctx.phones[int(np.argmax(per_phone))]}


def _phone_set(ctx: ContextDependency, question: int) -> str:
    """``{b, m, p, … (+N)}``: a question's phones by id order, abbreviated."""
    names = [EDGE if p == 0 else ctx.phones[p - 1] for p in sorted(ctx.questions[question])]
    shown = ", ".join(names[:_SHOW_PHONES])
    more = f", … (+{len(names) - _SHOW_PHONES})" if len(names) > _SHOW_PHONES else ""
    return "{" + shown + more + "}"


def _leaves_below(ctx: ContextDependency, node: int) -> list[int]:
    """The pdfs under ``node``."""
    stack, out = [node], []
    while stack:
        n = ctx.nodes[stack.pop()]
        if isinstance(n, Split):
            stack += [n.no, n.yes]
        else:
            out.append(n)
    return out


def _format_node(ctx: ContextDependency, node: int, depth: int, max_depth: Optional[int],
                 indent: str) -> list[str]:
    """Lines of the subtree at ``node`` (the first line without its prefix)."""
    n = ctx.nodes[node]
    if isinstance(n, int):
        return [f"pdf {n}"]
    if max_depth is not None and depth >= max_depth:
        pdfs = _leaves_below(ctx, node)
        return [f"… {len(pdfs)} leaves (pdfs {min(pdfs)}..{max(pdfs)})"]
    side = "L" if n.position < 0 else "R"
    lines = [f"{side} in {_phone_set(ctx, n.question)}?  (question {n.question})"]
    for label, child in (("yes: ", n.yes), ("no:  ", n.no)):
        sub = _format_node(ctx, child, depth + 1, max_depth, indent + "  ")
        lines.append(f"{indent}  {label}{sub[0]}")
        lines += sub[1:]
    return lines


def format_tree(ctx: ContextDependency, max_depth: Optional[int] = None) -> str:
    """A readable print of the tree: a header line, then every (phone, state) root.

    ``max_depth`` cuts each root's tree after that many questions (the cut
    subtrees show their number of leaves).
    """
    s = tree_summary(ctx)
    lines = [f"context dependency: {len(ctx.phones)} phones, context width {ctx.width} "
             f"(central {ctx.central}), {ctx.num_pdfs} pdfs; leaves per phone: "
             f"min {s['leaves_per_phone_min']} ({s['fewest_leaves_phone']}), "
             f"median {s['leaves_per_phone_median']:g}, "
             f"max {s['leaves_per_phone_max']} ({s['most_leaves_phone']})"]
    for i, states in enumerate(ctx.roots):
        for k, root in enumerate(states):
            sub = _format_node(ctx, root, 0, max_depth, "  ")
            if isinstance(ctx.nodes[root], int):
                lines.append(f"{ctx.phones[i]} state {k}: {sub[0]}")
            else:
                lines += [f"{ctx.phones[i]} state {k}", "  " + sub[0]] + sub[1:]
    return "\n".join(lines)
