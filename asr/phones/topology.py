"""HMM topology of every phone: one object that the frame targets
(:mod:`asr.hmm.targets`), the decoding graph's H (:mod:`asr.lang.graph`), the
alignments, the RNN decoder and the model bundle all ask. It comes from the
lang dir's ``topo`` file (:mod:`asr.phones.lang`).

Each phone has a left-to-right HMM without skips: ``num_states`` emitting
states, each with a self-loop of probability ``self_loop_prob`` and one
forward transition, so a phone lasts at least ``num_states`` frames, in the
targets as in H. The phones may differ (e.g. a 5-state silence, a 1-state
noise phone, 3 states for the rest): :class:`Topology` holds a default HMM
and the phones that differ from it. Which pdf (network output) scores each
state is the context dependency's to say (:mod:`asr.hmm.context`).

Transition costs, Kaldi-style (``AddSelfLoops``): a self-loop costs
``-ln(p) · self_loop_scale`` and leaving a state ``-ln(1 - p) ·
self_loop_scale``. Kaldi adds ``transition_scale`` times the cost of the
renormalised non-self-loop transitions; every state here has one forward
transition, whose renormalised probability is 1, so that term is always 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from asr.errors import ModelError


@dataclass(frozen=True)
class PhoneHmm:
    """The left-to-right HMM of one phone.

    Attributes:
        num_states: emitting states (also the phone's minimum duration in frames).
        self_loop_prob: self-loop probability of each state.
    """

    num_states: int
    self_loop_prob: float

    def __post_init__(self) -> None:
        if int(self.num_states) != self.num_states or self.num_states < 1:
            raise ModelError(f"an HMM needs at least 1 state, got {self.num_states}")
        if not 0.0 < self.self_loop_prob < 1.0:
            raise ModelError(f"self-loop probability must be in (0, 1), got {self.self_loop_prob}")

    @property
    def min_frames(self) -> int:
        """The fewest frames the phone can occupy (no skip transitions)."""
        return self.num_states

    def state_path(self, num_frames: int) -> np.ndarray:
        """States of the phone lasting ``num_frames`` frames, split uniformly.

        Returns:
            int64 array (num_frames,), non-decreasing, every state visited in
            order (the path H can produce).

        Raises:
            ValueError: ``num_frames < min_frames``.
        """
        if num_frames < self.min_frames:
            raise ValueError(f"a phone of {num_frames} frames is shorter than the "
                             f"{self.min_frames} frames of its HMM")
        return (np.arange(num_frames) * self.num_states // num_frames).astype(np.int64)

    def costs(self, self_loop_scale: float) -> tuple[float, float]:
        """(self-loop cost, forward cost) in −ln units (see the module docstring)."""
        if not self_loop_scale >= 0:
            raise ModelError(f"self_loop_scale must be >= 0, got {self_loop_scale}")
        return (-math.log(self.self_loop_prob) * self_loop_scale,
                -math.log(1.0 - self.self_loop_prob) * self_loop_scale)


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
        own = {str(p): h if isinstance(h, PhoneHmm) else PhoneHmm(**h) for p, h in dict(self.phones).items()}
        object.__setattr__(self, "phones", {p: h for p, h in sorted(own.items()) if h != default})

    def __hash__(self) -> int:
        return hash((self.states_per_phone, self.self_loop_prob, tuple(self.phones.items())))

    @classmethod
    def of(cls, hmms: Mapping[str, PhoneHmm]) -> "Topology":
        """The topology giving each phone of ``hmms`` its HMM (the most common is the default)."""
        if not hmms:
            raise ModelError("a topology needs at least one phone")
        kinds = [h for h in hmms.values()]
        default = max(set(kinds), key=lambda h: (kinds.count(h), -h.num_states, h.self_loop_prob))
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

    def costs(self, phones: Sequence[str], self_loop_scale: float) -> tuple[np.ndarray, np.ndarray]:
        """(P,) self-loop costs and (P,) forward costs of each phone of ``phones``."""
        pairs = np.array([self.hmm(p).costs(self_loop_scale) for p in phones], dtype=np.float64)
        return pairs[:, 0].copy(), pairs[:, 1].copy()

    def to_dict(self) -> dict:
        out: dict = {"states_per_phone": self.states_per_phone, "self_loop_prob": self.self_loop_prob}
        if self.phones:
            out["phones"] = {p: {"num_states": h.num_states, "self_loop_prob": h.self_loop_prob}
                             for p, h in self.phones.items()}
        return out

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "topology") -> "Topology":
        """The topology :meth:`to_dict` wrote; ModelError naming ``where`` when malformed."""
        try:
            return cls(**d)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{where}: not a topology ({exc})") from None


#: Kaldi's default topology: 3 states for every phone, self-loop probability 0.75.
DEFAULT_TOPOLOGY = Topology()
