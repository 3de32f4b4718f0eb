"""RNN phone-sequence decoding (Boulanger-Lewandowski, Droppo, Seltzer & Yu, 2014): a
frame-synchronous beam search that combines the acoustic model's scaled state
likelihoods, the HMM topology's transitions (the durations the WFST's H gives) and a
recurrent phone LM (:mod:`asr.nn.phone_lm`), whose state is carried along each
hypothesis.

A hypothesis is (phone sequence so far, HMM state of its last phone, right context):
the phone sequences live in a trie (:class:`PhoneTrie`), so hypotheses with the
same sequence, state and right context at a frame recombine (Viterbi: the best is
kept) before ``max_active`` counts them, and each trie node holds
the LM's distribution over what follows it, computed once, when first needed, in
one batched LM step for every node that needs it at that frame.

Context-dependent models (triphones: the pdf of a phone depends on its right
neighbour) commit to the next phone when a phone is entered: the hypothesis carries
it as its right context (0: the end of the utterance), scored by the LM then, and
enters it when the current phone ends. CI models choose the next phone when the
current one ends. Either way the path's score is

    Σ_t acwt·(log p(s_t|x_t) − log p(s_t)) − Σ transition costs
        + lm_weight · Σ log P_rnn(phone | phones before) − penalty · phones

(``</s>`` included), with the transition costs of the decoding graph's H (every
self-loop, every move between states, every phone's exit, the last one's included). Per
frame the work is numpy over all hypotheses; no Python loop runs per state.
Constrained to a known phone sequence (``decode(…, constrain=ids)``) the search
gives an alignment.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from asr.errors import GraphError, ModelError
from asr.hmm.context import ContextDependency
from asr.hmm.transitions import PhoneRun, Transitions
from asr.lang.graph import DEFAULT_SELF_LOOP_SCALE
from asr.nn.phone_lm import BOUNDARY, PhoneLm


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch's CPU ops on one thread meanwhile. The search's LM steps are small (a few
    hundred rows): a second thread gains nothing on them, and when another process keeps
    the cores busy, two threads ran the search 15 times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class SearchConfig:
    """Search settings. ``beam``: log-score width kept below the best hypothesis;
    ``max_active``: distinct hypotheses (after recombination) kept at most per frame;
    ``lm_weight``: scale of the LM's log probabilities; ``penalty``: cost per phone (phone
    insertion penalty)."""

    beam: float = 12.0
    max_active: int = 2000
    lm_weight: float = 1.0
    penalty: float = 0.0

    def __post_init__(self) -> None:
        if self.beam <= 0 or self.max_active < 1:
            raise ValueError(f"beam must be > 0 and max_active >= 1 (got {self.beam}, {self.max_active})")


@dataclass
class SearchResult:
    """One utterance's best path.

    Attributes:
        phones: phone ids (1-based, as phones.txt) of the path.
        pdfs, states: (T,) int64, each frame's pdf and HMM state.
        entries: (T,) bool, the frames that enter a phone (its first frame).
        score: the path's total log score (acoustics, transitions, LM and penalty).
        reached_final: False when no hypothesis that ends the utterance survived
            (the best partial one is returned).
    """

    phones: list[int]
    pdfs: np.ndarray
    states: np.ndarray
    entries: np.ndarray
    score: float
    reached_final: bool

    @property
    def runs(self) -> list[PhoneRun]:
        """The phones of the path with their frames (0-based phone indices, as the WFST decoder's)."""
        starts = np.flatnonzero(self.entries).tolist()
        ends = starts[1:] + [len(self.entries)]
        return [PhoneRun(p - 1, a, b) for p, a, b in zip(self.phones, starts, ends)]


def pdf_table(ctx: ContextDependency) -> np.ndarray:
    """pdf of (left phone, phone, right phone, state): (P + 1, P + 1, P + 1, S) int64,
    phone ids 1-based, 0 the utterance edge, S the most states of any phone (-1 where the
    phone is 0 or has fewer states). CI models and triphone trees (width 3, centre 1) only."""
    p, s = len(ctx.phones), int(ctx.num_states.max())
    if not (ctx.width == 1 or (ctx.width == 3 and ctx.central == 1)):
        raise ModelError(f"the RNN decoder handles CI models and triphones; this context dependency has "
                         f"width {ctx.width}, centre {ctx.central}")
    ids = np.arange(p + 1)
    table = np.full((p + 1, p + 1, p + 1, s), -1, dtype=np.int64)
    for phone in range(1, p + 1):  # one centre phone at a time: (P+1, P+1, states, 4) events
        states = np.arange(int(ctx.num_states[phone - 1]))
        left, right, state = np.meshgrid(ids, ids, states, indexing="ij")
        events = np.stack([left, np.full_like(left, phone), right, state], axis=-1)
        table[:, phone, :, : len(states)] = ctx.event_pdfs(events.reshape(-1, 4)).reshape(left.shape)
    return table


class PhoneTrie:
    """The phone sequences of an utterance's hypotheses, one node per distinct prefix (node 0:
    the empty sequence), each with the LM's log distribution over what follows (P + 1 outcomes,
    index 0 ``</s>``) and its LM state, computed on demand (:meth:`lm_rows`)."""

    def __init__(self, lm: PhoneLm, device: torch.device) -> None:
        self.lm, self.device = lm, device
        self.size = 1
        self._phone = np.zeros(1024, np.int64)       # last phone of each node (0 for the root)
        self._parent = np.full(1024, -1, np.int64)   # (the root's: -1)
        self._depth = np.zeros(1024, np.int64)       # phones from the root
        self.children: dict[tuple[int, int], int] = {}
        self._slot = np.full(1024, -1, np.int64)     # each node's LM slot (-1: not scored yet)
        start = torch.full((1,), BOUNDARY, dtype=torch.int64, device=device)
        logp, (h, c) = lm.step(start, None)
        self._logp = np.zeros((1024, logp.shape[1]), np.float32)  # (slots, P + 1): log P(next | node)
        self._h = h.new_zeros(h.shape[0], 1024, h.shape[2])       # (L, slots, H): the LM state after it
        self._c = torch.zeros_like(self._h)
        self._logp[0], self._h[:, :1], self._c[:, :1] = logp.cpu().numpy()[0], h, c
        self._slot[0], self._slots = 0, 1

    @property
    def phone(self) -> np.ndarray:
        return self._phone[: self.size]

    @property
    def parent(self) -> np.ndarray:
        return self._parent[: self.size]

    @property
    def depth(self) -> np.ndarray:
        return self._depth[: self.size]

    def child(self, node: int, phone: int) -> int:
        """The node of ``node``'s phones followed by ``phone`` (made when new)."""
        key = (node, phone)
        got = self.children.get(key)
        if got is None:
            got = self.children[key] = self.size
            if self.size == len(self._phone):
                self._phone, self._parent, self._depth = (np.concatenate([a, np.zeros_like(a)])
                                                          for a in (self._phone, self._parent, self._depth))
                self._slot = np.concatenate([self._slot, np.full_like(self._slot, -1)])
            self._phone[got], self._parent[got], self._depth[got] = phone, node, self._depth[node] + 1
            self.size += 1
        return got

    def lm_rows(self, nodes: np.ndarray) -> np.ndarray:
        """(len(nodes), P + 1) float32: log P(next | each node's phones), with the LM run once,
        batched, for the nodes that have not been scored yet (their parents have been)."""
        nodes = np.asarray(nodes, dtype=np.int64)
        todo = np.unique(nodes[self._slot[nodes] < 0])
        if len(todo):
            parents = torch.from_numpy(self._slot[self._parent[todo]]).to(self.device)
            tokens = torch.from_numpy(self._phone[todo]).to(self.device)
            logp, (h, c) = self.lm.step(tokens, (self._h[:, parents].contiguous(), self._c[:, parents].contiguous()))
            a, b = self._slots, self._slots + len(todo)
            while b > len(self._logp):  # grow the slot tables (doubling)
                self._logp = np.concatenate([self._logp, np.zeros_like(self._logp)])
                self._h, self._c = (torch.cat([x, torch.zeros_like(x)], dim=1) for x in (self._h, self._c))
            self._slot[todo], self._slots = np.arange(a, b), b
            self._logp[a:b], self._h[:, a:b], self._c[:, a:b] = logp.cpu().numpy(), h, c
        return self._logp[self._slot[nodes]]

    def sequence(self, node: int) -> list[int]:
        """The phone ids from the root to ``node``."""
        out = []
        while node > 0:
            out.append(int(self._phone[node]))
            node = int(self._parent[node])
        return out[::-1]


@dataclass
class _Hyps:
    """Hypotheses at one frame, as parallel arrays; ``back``: index of each one's predecessor
    at the frame before (-1 at the first frame)."""

    node: np.ndarray
    state: np.ndarray
    right: np.ndarray
    score: np.ndarray
    back: np.ndarray

    def __len__(self) -> int:
        return len(self.score)

    def take(self, idx: np.ndarray) -> "_Hyps":
        return _Hyps(self.node[idx], self.state[idx], self.right[idx], self.score[idx], self.back[idx])

    @staticmethod
    def concat(parts: list["_Hyps"]) -> "_Hyps":
        return _Hyps(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                       ("node", "state", "right", "score", "back")))


class RnnPhoneDecoder:
    """Beam search over one acoustic model's pdfs and one phone LM (see the module doc)."""

    def __init__(self, ctx: ContextDependency, lm: PhoneLm, device: torch.device,
                 config: SearchConfig = SearchConfig(), self_loop_scale: float = DEFAULT_SELF_LOOP_SCALE) -> None:
        if list(lm.cfg.phones) != list(ctx.phones):
            raise ModelError(f"the phone LM's {len(lm.cfg.phones)} phones differ from the acoustic "
                             f"model's {len(ctx.phones)}")
        self.ctx, self.lm, self.device, self.config = ctx, lm.eval(), device, config
        self.num_phones, self.num_states = len(ctx.phones), int(ctx.num_states.max())
        self.pdf_of = pdf_table(ctx)
        self.commit = ctx.width > 1  # the right context is chosen on entering a phone
        self._hmm_tables(ctx, self_loop_scale)

    def _hmm_tables(self, ctx: ContextDependency, self_loop_scale: float) -> None:
        """The HMMs as tables by phone id (row 0: the root, a 1-state "phone" left at once
        at no cost) and state: ``loop_lp`` (P+1, S) and ``move_lp`` (P+1, S, S+1) log
        transition scores (-inf: none; the last column leaves the phone, ``exit_lp``),
        ``to_exit`` (P+1, S) the fewest frames left before the phone can end, and
        ``min_frames`` (P+1,) the fewest frames of each phone."""
        loop, move = Transitions(ctx).cost_tables(self_loop_scale)
        s = self.num_states
        self.loop_lp = np.concatenate([np.full((1, s), -np.inf), -loop])
        self.move_lp = np.concatenate([np.full((1, s, s + 1), -np.inf), -move])
        self.move_lp[0, 0, s] = 0.0
        self.exit_lp = self.move_lp[:, :, s]
        far = np.iinfo(np.int64).max // 4
        self.to_exit = np.full((self.num_phones + 1, s), far, np.int64)
        self.to_exit[0, 0] = 0
        self.min_frames = np.ones(self.num_phones + 1, np.int64)
        for i, phone in enumerate(ctx.phones, start=1):
            hmm = ctx.topology.hmm(phone)
            self.to_exit[i, : hmm.num_states] = hmm.frames_to_exit
            self.min_frames[i] = hmm.min_frames

    # ------------------------------------------------------------ one utterance
    def decode(self, scores: np.ndarray, utt: str = "", constrain: list[int] | None = None) -> SearchResult:
        """The best path through ``scores`` (T, num_pdfs): acwt · (log posterior − log prior).
        ``constrain``: the phone ids the path must read, in order (an alignment); the path's
        score then leaves out the LM and the penalty, which are the same for every such path.

        Raises:
            ModelError: scores of the wrong shape or not finite. GraphError: the utterance
                is shorter than its constrained phones' HMMs.
        """
        scores = self._check(scores, utt)
        need = None if constrain is None else int(self.min_frames[np.asarray(constrain, dtype=np.int64)].sum())
        if need is not None and need > len(scores):
            raise GraphError(f"utterance {utt}: {len(scores)} frames cannot hold the "
                             f"{len(constrain)} phones of its transcript (their HMMs need {need} frames)")
        # Constrained, the LM and the penalty add the same to every complete path, but not to
        # every partial one: they would only bias the pruning against the paths that advance.
        self._lm_weight, self._penalty = (0.0, 0.0) if constrain is not None else \
            (self.config.lm_weight, self.config.penalty)
        with one_thread():
            return self._search(scores, constrain)

    def _search(self, scores: np.ndarray, constrain: list[int] | None) -> SearchResult:
        trie = PhoneTrie(self.lm, self.device)
        ref = None if constrain is None else np.asarray(list(constrain) + [BOUNDARY], dtype=np.int64)
        hyps, history = self._start(trie, ref), []
        if ref is not None:  # frames the transcript's phones from the k-th on need: (len(ref),)
            self._need_from = np.concatenate([np.cumsum(self.min_frames[ref[:-1]][::-1])[::-1], [0]])
        for t in range(len(scores)):
            cands = hyps if t == 0 else self._expand(hyps, trie, ref)
            if t == 0:
                cands = self._enter(cands, trie, ref, np.arange(len(cands)))
            if ref is not None:
                cands = self._feasible(cands, trie, len(ref) - 1, len(scores) - t - 1)
            cands.score = cands.score + scores[t, self._pdfs(cands, trie)]
            hyps = self._prune(cands, trie)
            history.append(hyps)
        return self._best(history, trie, ref)

    def _check(self, scores: np.ndarray, utt: str) -> np.ndarray:
        num_pdfs = self.ctx.num_pdfs
        scores = np.asarray(scores)
        if scores.ndim != 2 or scores.shape[1] != num_pdfs or len(scores) == 0:
            raise ModelError(f"utterance {utt}: scores of shape {scores.shape}, expected (T > 0, {num_pdfs})")
        if not np.isfinite(scores).all():
            raise ModelError(f"utterance {utt}: scores are not all finite")
        return scores.astype(np.float64)

    def _start(self, trie: PhoneTrie, ref: np.ndarray | None) -> _Hyps:
        """Before the first frame: the root, ready to enter its first phone. With committed right
        contexts, one hypothesis per first phone (scored by the LM, the phone its right context)."""
        root = np.zeros(1, np.int64)
        if not self.commit:
            return _Hyps(root, root.copy(), root.copy(), np.zeros(1), np.full(1, -1))
        firsts = np.arange(1, self.num_phones + 1)
        score = self._lm_weight * trie.lm_rows(root)[0, firsts]
        if ref is not None:
            score = np.where(firsts == ref[0], score, -np.inf)
        n = len(firsts)
        return _Hyps(np.zeros(n, np.int64), np.zeros(n, np.int64), firsts, score, np.full(n, -1))

    def _expand(self, hyps: _Hyps, trie: PhoneTrie, ref: np.ndarray | None) -> _Hyps:
        """Every successor of every hypothesis: its self-loop, the other states its HMM goes
        to, and (from a state that can leave the phone) the entry into the next phone."""
        idx = np.arange(len(hyps.score))
        phone = trie.phone[hyps.node]  # each hypothesis's current phone (pruned: all have their node)
        loop_lp = self.loop_lp[phone, hyps.state]
        looping = np.flatnonzero(np.isfinite(loop_lp))
        loop = hyps.take(looping)
        loop.score, loop.back = hyps.score[looping] + loop_lp[looping], looping
        move_lp = self.move_lp[phone, hyps.state, : self.num_states]  # (n, S)
        src, dst = np.nonzero(np.isfinite(move_lp))
        fwd = hyps.take(src)
        fwd.state, fwd.score, fwd.back = dst.astype(np.int64), hyps.score[src] + move_lp[src, dst], src
        exit_lp = self.exit_lp[phone, hyps.state]
        last = np.isfinite(exit_lp) & ((hyps.right != BOUNDARY) if self.commit else True)
        exits = hyps.take(idx[last])
        exits.score = exits.score + exit_lp[last]
        return _Hyps.concat([loop, fwd, self._enter(exits, trie, ref, idx[last])])

    def _enter(self, exits: _Hyps, trie: PhoneTrie, ref: np.ndarray | None, back: np.ndarray) -> _Hyps:
        """The hypotheses that enter a phone from ``exits`` (each at its phone's last state, or
        the root): CI, one per next phone v (LM: P(v | phones)); committed, the phone its right
        context names, with one per new right context v (LM: P(v | phones + that phone))."""
        n = len(exits.score)
        if n == 0:
            return exits
        if self.commit:
            lm_nodes = np.array([trie.child(int(a), int(r)) for a, r in zip(exits.node, exits.right)], np.int64)
            choices = np.arange(0, self.num_phones + 1)  # the right context after it (0: the end)
        else:
            lm_nodes = exits.node
            choices = np.arange(1, self.num_phones + 1)  # the phone entered
        lm = trie.lm_rows(lm_nodes)[:, choices]  # (n, V)
        score = exits.score[:, None] + self._lm_weight * lm - self._penalty  # (n, V)
        if ref is not None:  # the choice must be the next phone of the transcript (or its end)
            depth = trie.depth[lm_nodes]
            want = ref[np.minimum(depth, len(ref) - 1)]
            score = np.where((choices[None, :] == want[:, None]) & (depth < len(ref))[:, None], score, -np.inf)
        v = len(choices)
        if self.commit:
            node, right = np.repeat(lm_nodes, v), np.tile(choices, n)
        else:  # the new node is made for the survivors only (_prune); until then, right = -phone
            node, right = np.repeat(exits.node, v), -np.tile(choices, n)
        return _Hyps(node, np.zeros(n * v, np.int64), right, score.reshape(-1), np.repeat(back, v))

    def _feasible(self, hyps: _Hyps, trie: PhoneTrie, phones: int, frames_left: int) -> _Hyps:
        """The hypotheses that can still read all ``phones`` of the transcript in the frames
        left (each phone after theirs needs its HMM's fewest frames)."""
        entering = hyps.right < 0
        depth = np.where(entering, trie.depth[hyps.node] + 1, trie.depth[hyps.node])
        phone = np.where(entering, -hyps.right, trie.phone[hyps.node])
        need = self.to_exit[phone, hyps.state] + self._need_from[np.minimum(depth, phones)]
        return hyps.take(np.flatnonzero(need <= frames_left))

    def _pdfs(self, hyps: _Hyps, trie: PhoneTrie) -> np.ndarray:
        """The pdf each hypothesis's current state emits."""
        phone_of = trie.phone
        entering = hyps.right < 0  # CI entries not yet given a node: phone -right, below node
        phone = np.where(entering, -hyps.right, phone_of[hyps.node])
        left = np.where(entering, phone_of[hyps.node], phone_of[trie.parent[hyps.node].clip(0)])
        right = np.where(entering, 0, hyps.right)
        return self.pdf_of[left, phone, right, hyps.state]

    def _prune(self, cands: _Hyps, trie: PhoneTrie) -> _Hyps:
        """Beam pruning, recombination (one hypothesis, the best, per :meth:`_keys`), then the
        ``max_active`` best of what is left; trie nodes are made for the CI entries that survive.
        (Beam pruning before recombination keeps what it would keep after: the best score and
        each key's best are the same.)"""
        hyps = cands.take(np.flatnonzero(cands.score >= cands.score.max() - self.config.beam))
        key = self._keys(hyps, trie)
        order = np.lexsort((-hyps.score, key))
        hyps = hyps.take(order[np.concatenate([[True], key[order][1:] != key[order][:-1]])])
        if len(hyps) > self.config.max_active:
            hyps = hyps.take(np.argpartition(-hyps.score, self.config.max_active - 1)[: self.config.max_active])
        entering = np.flatnonzero(hyps.right < 0)
        for i in entering:
            hyps.node[i] = trie.child(int(hyps.node[i]), int(-hyps.right[i]))
        hyps.right[entering] = 0
        return hyps

    def _keys(self, hyps: _Hyps, trie: PhoneTrie) -> np.ndarray:
        """(N,) int64: equal exactly for the hypotheses with the same phone sequence, state and
        right context. A trie node is its (parent, last phone), so a CI entry not yet given its
        node (node = the parent, right = −phone) gets the key of the node it will have."""
        entering = hyps.right < 0
        parent = np.where(entering, hyps.node, trie.parent[hyps.node])  # -1: the root
        phone = np.where(entering, -hyps.right, trie.phone[hyps.node])
        right = np.where(entering, 0, hyps.right)
        p1 = self.num_phones + 1
        return (((parent + 1) * p1 + phone) * self.num_states + hyps.state) * p1 + right

    def _best(self, history: list[_Hyps], trie: PhoneTrie, ref: np.ndarray | None) -> SearchResult:
        """Trace back from the best hypothesis that ends the utterance. When none survived
        (``reached_final`` False): the best one in a phone's last state, its committed right
        context's LM score swapped for ``</s>``'s (its last phone was read in that context);
        failing that, the best of all."""
        last = history[-1]
        exit_lp = self.exit_lp[trie.phone[last.node], last.state]  # the last phone's exit, as H has it
        ends_phone = np.isfinite(exit_lp)
        rows = trie.lm_rows(last.node)
        end = last.score + np.where(ends_phone, exit_lp, 0.0) + self._lm_weight * rows[:, BOUNDARY]
        if self.commit:  # </s> was scored on entering the last phone; else the right context was
            end = np.where(last.right == BOUNDARY, last.score + np.where(ends_phone, exit_lp, 0.0),
                           end - self._lm_weight * rows[np.arange(len(rows)), last.right])
        final = ends_phone & (last.right == BOUNDARY) if self.commit else ends_phone.copy()
        if ref is not None:
            final &= trie.depth[last.node] == len(ref) - 1
        reached = bool(final.any() and np.isfinite(end[final]).any())
        if reached:
            pool = np.flatnonzero(final)
        elif ref is None and ends_phone.any():
            pool = np.flatnonzero(ends_phone)
        else:
            pool, end = np.arange(len(end)), last.score
        pool = pool[np.isfinite(end[pool])] if np.isfinite(end[pool]).any() else pool
        i = int(pool[np.argmax(end[pool])])
        total = float(end[i])
        nodes, states = np.empty(len(history), np.int64), np.empty(len(history), np.int64)
        for t in range(len(history) - 1, -1, -1):
            h = history[t]
            nodes[t], states[t] = h.node[i], h.state[i]
            i = int(h.back[i])
        entries = np.concatenate([[True], nodes[1:] != nodes[:-1]])  # every entered phone is a new node
        right = np.zeros(len(nodes), np.int64)  # each frame's right context: its phone's successor
        seq = trie.sequence(int(nodes[-1]))
        phone_of, parent, depth = trie.phone, trie.parent, trie.depth[nodes]
        if self.commit:
            padded = np.asarray(seq + [BOUNDARY], dtype=np.int64)
            right = padded[depth]  # the phone after each frame's phone (depth d: phone d - 1)
        pdfs = self.pdf_of[phone_of[parent[nodes].clip(0)], phone_of[nodes], right, states]
        return SearchResult(seq, pdfs, states, entries, total, reached)
