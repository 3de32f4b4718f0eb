"""HMM topology of every phone: one object that the frame targets
(:mod:`asr.hmm.targets`), the decoding graph's H (:mod:`asr.lang.graph`), the
alignments, the RNN decoder and the model bundle all ask. It comes from the
lang dir's ``topo`` file (:mod:`asr.phones.lang`).

Each phone has an HMM of ``num_states`` emitting states, entered at state 0
and left from any state with an exit probability. Most are left to right
without skips: each state has a self-loop of probability ``self_loop_prob``
and one transition to the next, so the phone lasts at least ``num_states``
frames. Any other transitions may be given as a matrix (Kaldi's 5-state
silence: states 0–3 each reach states 1–4, state 4 loops or leaves), with
one rule: no state but state 0 itself goes back to state 0, so entering
state 0 is where a phone begins (the transition ids say where phones
start). The phones may differ (e.g. a 5-state silence, a 1-state noise
phone, 3 states for the rest): :class:`Topology` holds a default HMM and the
phones that differ from it. Which pdf (network output) scores each state is
the context dependency's to say (:mod:`asr.hmm.context`).

Transition costs, Kaldi-style (``AddSelfLoops``, transition scale 1): a
self-loop of state i costs ``-ln(p_ii) · self_loop_scale``; going from i to
j (or leaving the phone) costs ``-ln(1 - p_ii) · self_loop_scale`` plus
``-ln(p_ij / (1 - p_ii))``, the renormalised probability of that
transition among i's others. A left-to-right state has one other
transition, whose renormalised probability is 1, so the second term is 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping, Sequence

import numpy as np

from asr.errors import ModelError

#: Probabilities of one state's transitions must sum to 1 within this.
PROB_TOLERANCE = 1e-4


@dataclass(frozen=True)
class PhoneHmm:
    """The HMM of one phone.

    Attributes:
        num_states: emitting states (state 0 is the entry).
        self_loop_prob: left to right: the self-loop probability of every
            state (each state's other transition goes to the next, the last
            state's leaves the phone). 0 when ``transitions`` is given.
        transitions: any other topology: a ``num_states`` x ``num_states + 1``
            matrix (tuples of rows), ``[i][j]`` the probability of going from
            state i to state j, column ``num_states`` that of leaving the
            phone. A matrix that is left to right is stored as such.
    """

    num_states: int
    self_loop_prob: float = 0.0
    transitions: tuple[tuple[float, ...], ...] = ()

    def __post_init__(self) -> None:
        if int(self.num_states) != self.num_states or self.num_states < 1:
            raise ModelError(f"an HMM needs at least 1 state, got {self.num_states}")
        if self.transitions:
            m = _check_matrix(np.asarray(self.transitions, dtype=np.float64), self.num_states)
            loops = np.diag(m[:, :-1])
            if np.allclose(m, _left_to_right(self.num_states, loops[0])) and 0 < loops[0] < 1:
                object.__setattr__(self, "self_loop_prob", float(loops[0]))
                object.__setattr__(self, "transitions", ())
            else:
                object.__setattr__(self, "self_loop_prob", 0.0)
                object.__setattr__(self, "transitions", tuple(tuple(map(float, row)) for row in m))
        elif not 0.0 < self.self_loop_prob < 1.0:
            raise ModelError(f"self-loop probability must be in (0, 1), got {self.self_loop_prob}")

    @property
    def is_left_to_right(self) -> bool:
        return not self.transitions

    @cached_property
    def matrix(self) -> np.ndarray:
        """(S, S + 1) float64 transition probabilities, the last column leaving the phone."""
        if self.transitions:
            return np.asarray(self.transitions, dtype=np.float64)
        return _left_to_right(self.num_states, self.self_loop_prob)

    @cached_property
    def frames_to_exit(self) -> np.ndarray:
        """(S,) int64: the fewest frames after a frame in state s before the phone can end
        (left to right: ``S - 1 - s``)."""
        return _frames_to_exit(self.matrix)

    @property
    def min_frames(self) -> int:
        """The fewest frames the phone can occupy."""
        return int(self.frames_to_exit[0]) + 1

    @cached_property
    def _shortest_path(self) -> np.ndarray:
        """States of a shortest path from state 0 to the exit."""
        path, s = [0], 0
        while self.frames_to_exit[s] > 0:
            nxt = [j for j in range(self.num_states) if j != s and self.matrix[s, j] > 0
                   and self.frames_to_exit[j] == self.frames_to_exit[s] - 1]
            s = nxt[0]
            path.append(s)
        return np.asarray(path, dtype=np.int64)

    def state_path(self, num_frames: int) -> np.ndarray:
        """States of the phone lasting ``num_frames`` frames, split uniformly along one path.

        The path is 0, 1, …, S-1 when the HMM has it (every left-to-right
        HMM does) and the frames are enough, else a shortest path to the exit.

        Returns:
            int64 array (num_frames,), a path H can produce.

        Raises:
            ValueError: ``num_frames < min_frames``.
        """
        if num_frames < self.min_frames:
            raise ValueError(f"a phone of {num_frames} frames is shorter than the "
                             f"{self.min_frames} frames of its HMM")
        n = self.num_states
        chain = all(self.matrix[k, k + 1] > 0 for k in range(n - 1)) and self.matrix[n - 1, n] > 0
        path = np.arange(n) if chain and num_frames >= n else self._shortest_path
        loops = np.diag(self.matrix[:, :-1])[path] > 0
        if loops.all():
            return path[(np.arange(num_frames) * len(path) // num_frames)].astype(np.int64)
        # states without a self-loop (the entry state of Kaldi's chain topology) last one frame;
        # the others share the rest as above
        if not loops.any() and num_frames > len(path):
            raise ValueError(f"no path of the HMM lasts {num_frames} frames")
        repeats = np.ones(len(path), dtype=np.int64)
        looping = np.flatnonzero(loops)
        extra = num_frames - len(path)
        if extra > 0:
            repeats[looping] += np.bincount(np.arange(extra) * len(looping) // extra, minlength=len(looping))
        return np.repeat(path, repeats).astype(np.int64)

    def loop_costs(self, self_loop_scale: float) -> np.ndarray:
        """(S,) the self-loop cost of each state (inf: no self-loop)."""
        _check_scale(self_loop_scale)
        with np.errstate(divide="ignore"):
            return -np.log(np.diag(self.matrix[:, :-1])) * self_loop_scale

    def move_costs(self, self_loop_scale: float) -> np.ndarray:
        """(S, S + 1) the cost of going from state i to state j != i (last column: leaving
        the phone); inf where there is no such transition, and on the diagonal."""
        _check_scale(self_loop_scale)
        m = self.matrix
        stay = np.diag(m[:, :-1])
        with np.errstate(divide="ignore"):
            cost = -np.log(1.0 - stay)[:, None] * self_loop_scale - np.log(m / (1.0 - stay)[:, None])
        cost[np.arange(self.num_states), np.arange(self.num_states)] = np.inf
        return np.where(m > 0, cost, np.inf)

    def costs(self, self_loop_scale: float) -> tuple[float, float]:
        """(self-loop cost, forward cost) of a left-to-right HMM's states (−ln units)."""
        if not self.is_left_to_right:
            raise ModelError("a topology that is not left to right has no single forward cost")
        _check_scale(self_loop_scale)
        return (-math.log(self.self_loop_prob) * self_loop_scale,
                -math.log(1.0 - self.self_loop_prob) * self_loop_scale)

    @classmethod
    def chain(cls, self_loop_prob: float = 0.5) -> "PhoneHmm":
        """Kaldi's chain topology with one pdf class per state: state 0 lasts one frame (no
        self-loop) and leaves the phone or goes on to state 1, which loops; a phone can last
        one frame, and its first frame has a pdf of its own (2 pdfs a phone)."""
        if not 0.0 < self_loop_prob < 1.0:
            raise ModelError(f"self-loop probability must be in (0, 1), got {self_loop_prob}")
        return cls(2, transitions=((0.0, 0.5, 0.5), (0.0, self_loop_prob, 1.0 - self_loop_prob)))

    @classmethod
    def kaldi_silence(cls, num_states: int) -> "PhoneHmm":
        """Kaldi's silence HMM (``utils/gen_topo.pl``): state 0 goes to states 0 … S-2, the
        middle states to 1 … S-1, all with equal probability; the last state loops (0.75)
        or leaves. One state: a left-to-right state of self-loop 0.75."""
        if num_states == 1:
            return cls(1, 0.75)
        n, p = num_states, 1.0 / (num_states - 1)
        m = np.zeros((n, n + 1))
        m[0, : n - 1] = p
        m[1: n - 1, 1:n] = p
        m[n - 1, n - 1:] = (0.75, 0.25)
        return cls(n, transitions=tuple(map(tuple, m)))

    def to_dict(self) -> dict:
        if self.is_left_to_right:
            return {"num_states": self.num_states, "self_loop_prob": self.self_loop_prob}
        return {"num_states": self.num_states, "transitions": [list(r) for r in self.transitions]}


def _check_scale(self_loop_scale: float) -> None:
    if not self_loop_scale >= 0:
        raise ModelError(f"self_loop_scale must be >= 0, got {self_loop_scale}")


def _left_to_right(n: int, p: float) -> np.ndarray:
    m = np.zeros((n, n + 1))
    m[np.arange(n), np.arange(n)] = p
    m[np.arange(n), np.arange(n) + 1] = 1.0 - p
    return m


def _check_matrix(m: np.ndarray, n: int) -> np.ndarray:
    """ModelError unless ``m`` is an HMM's (n, n+1) transition matrix (see :class:`PhoneHmm`)."""
    if m.shape != (n, n + 1):
        raise ModelError(f"a {n}-state HMM needs a {n} x {n + 1} transition matrix, got {m.shape}")
    if (m < 0).any() or not np.allclose(m.sum(axis=1), 1.0, atol=PROB_TOLERANCE):
        raise ModelError("each state's transition probabilities must be >= 0 and sum to 1")
    if (np.diag(m[:, :-1]) >= 1.0).any():
        raise ModelError("a state with a self-loop of probability 1 can never be left")
    if (m[1:, 0] > 0).any():
        raise ModelError("only state 0 may go to state 0 (entering state 0 is where a phone begins)")
    reach = np.zeros(n, dtype=bool)
    reach[0] = True
    for _ in range(n):
        reach |= (m[reach, :-1] > 0).any(axis=0)
    if not reach.all():
        raise ModelError(f"state {int(np.argmin(reach))} cannot be reached from state 0")
    unreachable = np.flatnonzero(_frames_to_exit(m) >= _FAR)
    if len(unreachable):
        raise ModelError(f"the phone cannot be left from state {int(unreachable[0])}")
    return m


_FAR = np.iinfo(np.int64).max // 4


def _frames_to_exit(m: np.ndarray) -> np.ndarray:
    """(S,) int64 shortest number of further states from each state to the exit of the
    (S, S + 1) transition matrix ``m`` (``_FAR`` or more: the exit cannot be reached)."""
    n = len(m)
    moves = m[:, :-1] > 0
    np.fill_diagonal(moves, False)
    dist = np.where(m[:, -1] > 0, 0, 2 * _FAR)
    for _ in range(n):  # Bellman-Ford: at most S - 1 moves on a shortest path
        dist = np.minimum(dist, np.where(moves, dist[None, :] + 1, 2 * _FAR).min(axis=1))
    return dist.astype(np.int64)


@dataclass(frozen=True)
class Topology:
    """The HMM of every phone: a default and the phones that differ from it.

    Attributes:
        states_per_phone: states of the default HMM.
        self_loop_prob: self-loop probability of the default HMM.
        phones: phone → its own HMM, for the phones that differ from the
            default (a mapping of phone to :class:`PhoneHmm` or to a dict
            of its fields).

    A topology without ``phones`` is written as ``{states_per_phone,
    self_loop_prob}``, which is how every bundle before per-phone
    topologies recorded it.
    """

    states_per_phone: int = 3
    self_loop_prob: float = 0.75
    phones: Mapping[str, PhoneHmm] = field(default_factory=dict)

    def __post_init__(self) -> None:
        default = PhoneHmm(self.states_per_phone, self.self_loop_prob)
        own = {str(p): h if isinstance(h, PhoneHmm) else _hmm_from_dict(h) for p, h in dict(self.phones).items()}
        object.__setattr__(self, "phones", {p: h for p, h in sorted(own.items()) if h != default})

    def __hash__(self) -> int:
        return hash((self.states_per_phone, self.self_loop_prob, tuple(self.phones.items())))

    @classmethod
    def of(cls, hmms: Mapping[str, PhoneHmm]) -> "Topology":
        """The topology giving each phone of ``hmms`` its HMM (the most common is the default)."""
        if not hmms:
            raise ModelError("a topology needs at least one phone")
        kinds = [h for h in hmms.values() if h.is_left_to_right]
        default = max(set(kinds), key=lambda h: (kinds.count(h), -h.num_states, h.self_loop_prob)) \
            if kinds else PhoneHmm(3, 0.75)
        return cls(default.num_states, default.self_loop_prob, dict(hmms))

    @property
    def default(self) -> PhoneHmm:
        return PhoneHmm(self.states_per_phone, self.self_loop_prob)

    def hmm(self, phone: str) -> PhoneHmm:
        """The HMM of ``phone``."""
        return self.phones.get(phone) or self.default

    def num_states(self, phones: Sequence[str]) -> np.ndarray:
        """(P,) int64: the states of each phone of ``phones``."""
        return np.array([self.hmm(p).num_states for p in phones], dtype=np.int64)

    def min_frames(self, phones: Sequence[str]) -> np.ndarray:
        """(P,) int64: the fewest frames each phone of ``phones`` can last."""
        return np.array([self.hmm(p).min_frames for p in phones], dtype=np.int64)

    def to_dict(self) -> dict:
        out: dict = {"states_per_phone": self.states_per_phone, "self_loop_prob": self.self_loop_prob}
        if self.phones:
            out["phones"] = {p: h.to_dict() for p, h in self.phones.items()}
        return out

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "topology") -> "Topology":
        """The topology :meth:`to_dict` wrote; ModelError naming ``where`` when malformed."""
        try:
            return cls(**d)
        except (TypeError, ValueError, KeyError) as exc:
            raise ModelError(f"{where}: not a topology ({exc})") from None


def _hmm_from_dict(d: Mapping) -> PhoneHmm:
    return PhoneHmm(d["num_states"], d.get("self_loop_prob", 0.0),
                    tuple(tuple(r) for r in d.get("transitions", ())))


#: Kaldi's default topology: 3 states for every phone, self-loop probability 0.75.
DEFAULT_TOPOLOGY = Topology()
