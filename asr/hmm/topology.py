"""HMM topology for context-independent phone models.

Every phone has ``STATES_PER_PHONE`` left-to-right emitting states, each with
a self-loop and a forward transition. Each state has its own pdf (output of
the acoustic network): for the phone at 0-based index ``i`` of the phone
list, state ``s`` uses pdf id ``i * STATES_PER_PHONE + s``.
"""

from __future__ import annotations

import numpy as np

STATES_PER_PHONE = 3
#: Initial self-loop probability of each emitting state (Kaldi's default topo).
SELF_LOOP_PROB = 0.75
#: Probability of leaving a state: to the next state or out of the phone.
FORWARD_PROB = 1.0 - SELF_LOOP_PROB


def pdf_id(phone_index: int, state: int) -> int:
    """Return the pdf id of ``state`` (0-based) of the phone at ``phone_index``."""
    assert 0 <= state < STATES_PER_PHONE, state
    return phone_index * STATES_PER_PHONE + state


def num_pdfs(num_phones: int) -> int:
    """Number of network outputs for ``num_phones`` context-independent phones."""
    return num_phones * STATES_PER_PHONE


def pdf_to_phone(pdf: int) -> int:
    """Return the 0-based phone index that owns ``pdf``."""
    return pdf // STATES_PER_PHONE


def uniform_states(num_frames: int) -> np.ndarray:
    """Split ``num_frames`` frames of one phone uniformly into its states.

    Returns:
        int64 array of shape (num_frames,) with state indices in
        ``[0, STATES_PER_PHONE)``, non-decreasing. A phone shorter than
        ``STATES_PER_PHONE`` frames uses its first states only.
    """
    if num_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    return (np.arange(num_frames) * STATES_PER_PHONE // num_frames).astype(np.int64)
