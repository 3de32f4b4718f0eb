"""HMM topology of every phone: one object that the frame targets
(:mod:`asr.hmm.targets`), the decoding graph's H (:mod:`asr.lang.graph`) and
the model bundle all ask.

Every phone has ``states_per_phone`` left-to-right emitting states, each with
a self-loop and one forward transition, and no skips: a phone lasts at least
``states_per_phone`` frames, in the targets as in H. Which pdf (network
output) scores each state is the context dependency's to say
(:mod:`asr.hmm.context`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from asr.errors import ModelError


@dataclass(frozen=True)
class Topology:
    """A left-to-right, no-skip HMM per phone.

    Attributes:
        states_per_phone: emitting states of every phone (also its minimum
            duration in frames).
        self_loop_prob: initial self-loop probability of each state (Kaldi's
            default topology has 0.75).
    """

    states_per_phone: int = 3
    self_loop_prob: float = 0.75

    def __post_init__(self) -> None:
        if self.states_per_phone < 1:
            raise ModelError(f"states_per_phone must be >= 1, got {self.states_per_phone}")
        if not 0.0 < self.self_loop_prob < 1.0:
            raise ModelError(f"self_loop_prob must be in (0, 1), got {self.self_loop_prob}")

    @property
    def min_frames(self) -> int:
        """The fewest frames a phone can occupy (no skip transitions)."""
        return self.states_per_phone

    def state_path(self, num_frames: int) -> np.ndarray:
        """States of a phone lasting ``num_frames`` frames, split uniformly.

        Returns:
            int64 array (num_frames,), non-decreasing, every state of the
            phone visited in order (the path H can produce).

        Raises:
            ValueError: ``num_frames < min_frames``.
        """
        if num_frames < self.min_frames:
            raise ValueError(f"a phone of {num_frames} frames is shorter than the "
                             f"{self.min_frames} frames of its HMM")
        return (np.arange(num_frames) * self.states_per_phone // num_frames).astype(np.int64)

    def to_dict(self) -> dict:
        return asdict(self)


#: The topology of every model in this toolkit (3 states, as Kaldi's TIMIT recipe).
CI_TOPOLOGY = Topology()
