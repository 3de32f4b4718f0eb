"""Transition ids: the input labels of the decoding graph, as in Kaldi.

A pdf id does not say where a phone starts (two copies of one phone in a
row look alike) and, once pdfs are tied, not even which phone a frame is in.
The graph's input labels therefore identify the transition taken into a
frame: transition id ``2·pdf + 1`` enters the HMM state that owns ``pdf``
(from the previous state, or from the previous phone for state 0) and
``2·pdf + 2`` is its self-loop. Each pdf belongs to one (phone, state) of the
context dependency (:mod:`asr.hmm.context`), so a transition id names
(phone, HMM state, pdf, transition) like Kaldi's, and the best path of the
decoder gives pdfs, phones and their frame times.

Alignments are stored model-independently, as the transition ids of the CI
context dependency of the same phones and topology (:func:`to_ci`), and
turned into any model's pdf targets with :func:`alignment_pdfs`.

All ids here are 1-based labels (0 is epsilon); arrays indexed by label are
indexed ``label - 1``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple, Sequence

import numpy as np

from asr.errors import DataError
from asr.hmm.context import ContextDependency
from asr.phones.topology import Topology


class PhoneRun(NamedTuple):
    """One phone of an alignment: 0-based phone index, frames [start, end)."""

    phone: int
    start: int
    end: int


def enter_tid(pdf: int) -> int:
    """Transition id entering the state of ``pdf``."""
    return 2 * int(pdf) + 1


def loop_tid(pdf: int) -> int:
    """Transition id of the self-loop of the state of ``pdf``."""
    return 2 * int(pdf) + 2


class Transitions:
    """Transition-id tables of one context dependency (arrays indexed by tid − 1)."""

    def __init__(self, ctx: ContextDependency) -> None:
        self.ctx = ctx
        self.num_pdfs = ctx.num_pdfs
        self.num_tids = 2 * self.num_pdfs
        self.tid_pdf = np.repeat(np.arange(self.num_pdfs, dtype=np.int64), 2)
        self.tid_is_loop = np.tile(np.array([False, True]), self.num_pdfs)
        self.tid_phone = ctx.pdf_phone[self.tid_pdf]
        self.tid_state = ctx.pdf_state[self.tid_pdf]
        self._cost_tables: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    def label_scores(self, pdf_scores: np.ndarray) -> np.ndarray:
        """Scores per graph label: (T, num_pdfs) → (T, num_tids) float32 (columns gathered)."""
        return np.ascontiguousarray(np.take(pdf_scores, self.tid_pdf, axis=1), dtype=np.float32)

    def pdfs(self, tids: np.ndarray) -> np.ndarray:
        """(T,) pdf of each frame of a transition-id path."""
        return self.tid_pdf[np.asarray(tids, dtype=np.int64) - 1]

    def phone_runs(self, tids: np.ndarray) -> list[PhoneRun]:
        """The phones of a transition-id path with their frames.

        A phone starts at every frame whose transition enters state 0.
        """
        idx = np.asarray(tids, dtype=np.int64) - 1
        if len(idx) == 0:
            return []
        starts = np.flatnonzero((self.tid_state[idx] == 0) & ~self.tid_is_loop[idx])
        if len(starts) == 0 or starts[0] != 0:
            starts = np.concatenate([[0], starts])
        ends = np.append(starts[1:], len(idx))
        return [PhoneRun(int(self.tid_phone[idx[a]]), int(a), int(b)) for a, b in zip(starts, ends)]

    def to_ci(self, tids: np.ndarray) -> np.ndarray:
        """The same path as transition ids of the CI model (the stored alignment form)."""
        idx = np.asarray(tids, dtype=np.int64) - 1
        ci_pdf = self.ctx.ci_offsets[self.tid_phone[idx]] + self.tid_state[idx]
        return (2 * ci_pdf + 1 + self.tid_is_loop[idx]).astype(np.int32)

    def loop_costs(self, self_loop_scale: float) -> np.ndarray:
        """(num_pdfs,) float64: the self-loop cost of each pdf's state (inf: it has none)."""
        return self.cost_tables(self_loop_scale)[0][self.ctx.pdf_phone, self.ctx.pdf_state]

    def cost_tables(self, self_loop_scale: float) -> tuple[np.ndarray, np.ndarray]:
        """Per phone, padded to the most states S: loop costs (P, S) and move costs
        (P, S, S + 1), the last column leaving the phone (inf: no such transition)."""
        key = float(self_loop_scale)
        if key not in self._cost_tables:
            ctx = self.ctx
            s = int(ctx.num_states.max())
            loop, move = np.full((len(ctx.phones), s), np.inf), np.full((len(ctx.phones), s, s + 1), np.inf)
            for i, phone in enumerate(ctx.phones):
                hmm = ctx.topology.hmm(phone)
                n = hmm.num_states
                loop[i, :n] = hmm.loop_costs(key)
                move[i, :n, :n] = hmm.move_costs(key)[:, :n]
                move[i, :n, s] = hmm.move_costs(key)[:, n]
            self._cost_tables[key] = (loop, move)
        return self._cost_tables[key]

    def path_cost(self, tids: np.ndarray, self_loop_scale: float) -> float:
        """The HMM transition cost (−ln units, scaled) of a transition-id path, as H has it:
        each self-loop, each move between two states of a phone, and each phone's exit
        (the path is whole phones, from a phone's start to a phone's end)."""
        idx = np.asarray(tids, dtype=np.int64) - 1
        if len(idx) == 0:
            return 0.0
        loop, move = self.cost_tables(self_loop_scale)
        exit_col = move.shape[2] - 1
        phone, state, is_loop = self.tid_phone[idx], self.tid_state[idx], self.tid_is_loop[idx]
        prev_phone, prev_state = phone[:-1], state[:-1]
        new_phone = ~is_loop[1:] & (state[1:] == 0)  # state 0 is entered only at a phone's start
        step = np.where(is_loop[1:], loop[phone[1:], state[1:]],
                        np.where(new_phone, move[prev_phone, prev_state, exit_col],
                                 move[prev_phone, prev_state, np.minimum(state[1:], exit_col)]))
        return float(step.sum() + move[phone[-1], state[-1], exit_col])


def ci_transitions(phones: Sequence[str], topology: Topology) -> Transitions:
    """The transition-id tables of the CI model of ``phones`` (the stored alignment form).

    Built once per phone list and topology: alignment code asks for them per
    utterance. The tables are read-only.
    """
    return _ci_transitions(tuple(phones), topology)


@lru_cache(maxsize=8)
def _ci_transitions(phones: tuple[str, ...], topology: Topology) -> Transitions:
    tables = Transitions(ContextDependency.ci(phones, topology))
    for array in (tables.tid_pdf, tables.tid_is_loop, tables.tid_phone, tables.tid_state):
        array.setflags(write=False)
    return tables


def alignment_from_runs(runs: Sequence[PhoneRun], phones: Sequence[str], topology: Topology) -> np.ndarray:
    """CI transition ids (T,) int32 of phone runs, each split uniformly over its states.

    Args:
        runs: contiguous phone runs from frame 0 (0-based indices into ``phones``).
        phones: the model's phones (their order numbers the CI pdfs).
    """
    offsets = ci_transitions(phones, topology).ctx.ci_offsets
    if runs and (runs[0].start != 0 or any(r.end != q.start for r, q in zip(runs, runs[1:]))):
        raise ValueError(f"phone runs must be contiguous from frame 0, got {list(runs)[:3]}…")
    out = np.empty(runs[-1].end if runs else 0, dtype=np.int32)
    for phone, a, b in runs:
        states = topology.hmm(phones[phone]).state_path(b - a)
        pdfs = offsets[phone] + states
        loops = np.concatenate([[False], states[1:] == states[:-1]])
        out[a:b] = 2 * pdfs + 1 + loops
    return out


def check_alignment(ci_tids: np.ndarray, phones: Sequence[str], topology: Topology,
                    num_frames: int, where: str) -> None:
    """DataError unless ``ci_tids`` is a path of the CI HMMs over ``num_frames`` frames.

    Checked: one label per frame, labels in range, the first frame enters
    state 0, a self-loop repeats the previous frame's state (and the state
    has one), a state is entered only by a transition its phone's HMM has
    (state 0 of a phone after a state that can leave its phone, or at the
    start), and the last frame's state can leave its phone.
    """
    tids = np.asarray(ci_tids, dtype=np.int64)
    ci = ci_transitions(phones, topology)
    if tids.ndim != 1 or len(tids) != num_frames:
        raise DataError(f"{where}: alignment has {tids.shape} labels for {num_frames} frames")
    if len(tids) == 0:
        raise DataError(f"{where}: empty alignment")
    if tids.min() < 1 or tids.max() > ci.num_tids:
        raise DataError(f"{where}: alignment label out of range 1..{ci.num_tids}")
    loop_cost, move_cost = ci.cost_tables(1.0)
    exit_col = move_cost.shape[2] - 1
    pdf, loop = ci.tid_pdf[tids - 1], ci.tid_is_loop[tids - 1]
    phone, state = ci.tid_phone[tids - 1], ci.tid_state[tids - 1]
    prev_phone, prev_state = np.concatenate([[0], phone[:-1]]), np.concatenate([[0], state[:-1]])
    can_exit = np.concatenate([[True], np.isfinite(move_cost[phone[:-1], state[:-1], exit_col])])
    bad_loop = loop & ((pdf != np.concatenate([[-1], pdf[:-1]])) | ~np.isfinite(loop_cost[phone, state]))
    move = np.isfinite(move_cost[prev_phone, prev_state, np.minimum(state, exit_col)])
    enter_next = (phone == prev_phone) & (state > 0) & move & (np.arange(len(tids)) > 0)
    enter_new = (state == 0) & can_exit
    bad_enter = ~loop & ~(enter_next | enter_new)
    bad = np.flatnonzero(bad_loop | bad_enter)
    if len(bad):
        raise DataError(f"{where}: alignment is not an HMM path at frame {int(bad[0])}")
    if not np.isfinite(move_cost[phone[-1], state[-1], exit_col]):
        raise DataError(f"{where}: alignment ends inside a phone (state {int(state[-1])})")


def alignment_pdfs(ci_tids: np.ndarray, ctx: ContextDependency) -> np.ndarray:
    """Frame targets of model ``ctx`` from a stored (CI transition-id) alignment: (T,) int64."""
    ci = ci_transitions(ctx.phones, ctx.topology)
    if ctx.is_ci:
        return ci.pdfs(ci_tids)
    runs = ci.phone_runs(ci_tids)
    events = np.empty((len(ci_tids), 4), dtype=np.int64)  # (T, 4): left, centre, right, state
    for run, window in zip(runs, ctx.windows([r.phone + 1 for r in runs])):
        events[run.start:run.end, :3] = ctx.event(window, 0)[:3]
    events[:, 3] = ci.tid_state[np.asarray(ci_tids, dtype=np.int64) - 1]
    return ctx.event_pdfs(events)
