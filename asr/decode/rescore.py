"""The cheaper use of the phone LM: rescoring the HMM decoder's n-best phone sequences.

The HMM decodes each utterance into a lattice over its phone graph
(kaldi-decoder's ``LatticeSimpleDecoder``); its ``n`` best distinct phone
sequences, with their HMM costs (acoustic at the tuned scale + graph: phone
n-gram and transitions), are rescored log-linearly:

    score = −hmm_cost + lm_weight · ln P_rnn(phones) − penalty · |phones|

so the RNN is added to the n-gram, not put in its place (the n-gram's part of the
cost is not separable from the transitions' in the lattice). ``lm_weight`` and
``penalty`` are tuned on dev; with ``lm_weight`` 0 and ``penalty`` 0 the result
is the HMM's best path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from asr.decode.lattice import LatticeDecoder, nbest_words
from asr.nn.phone_lm import PhoneLm, sentence_logprobs

#: Distinct phone sequences read off each lattice.
NBEST = 100


@dataclass
class NBest:
    """One utterance's n-best list: phone id sequences, their HMM costs and RNN ln P."""

    phones: list[list[int]]
    hmm_cost: np.ndarray
    rnn_logprob: np.ndarray

    def best(self, lm_weight: float, penalty: float) -> list[int]:
        """The sequence with the best rescored score."""
        lengths = np.array([len(p) for p in self.phones])
        score = -self.hmm_cost + lm_weight * self.rnn_logprob - penalty * lengths
        return self.phones[int(np.argmax(score))]


def nbest_lists(decoder: LatticeDecoder, scores: dict[str, np.ndarray], lm: PhoneLm, device: torch.device,
                n: int = NBEST) -> dict[str, NBest]:
    """{utt: NBest} for score matrices (T, num_pdfs) at the HMM's acoustic scale; the RNN
    scores every list's sequences in batches. An utterance without a surviving path is left out."""
    from asr.errors import GraphError

    lists: dict[str, tuple[list[list[int]], np.ndarray]] = {}
    for utt, s in scores.items():
        try:
            lat = decoder.lattice(s, utt)
        except GraphError:
            continue
        best = nbest_words(lat, 1.0, 0.0, n=n)
        lists[utt] = ([p for p, _ in best], np.array([c for _, c in best]))
    flat = [p for phones, _ in lists.values() for p in phones]
    logp = sentence_logprobs(lm, flat, device) if flat else np.zeros(0)
    out, k = {}, 0
    for utt, (phones, costs) in lists.items():
        out[utt] = NBest(phones, costs, logp[k: k + len(phones)])
        k += len(phones)
    return out


def rescore(lists: dict[str, NBest], lm_weight: float, penalty: float) -> dict[str, list[int]]:
    """{utt: best phone ids} after rescoring."""
    return {u: nb.best(lm_weight, penalty) for u, nb in lists.items()}


def tune_rescoring(lists: dict[str, NBest], per_of: Callable[[dict[str, list[int]]], float],
                   lm_weights: Sequence[float],
                   penalties: Sequence[float]) -> tuple[float, float, dict[tuple[float, float], float]]:
    """The (lm_weight, penalty) of the grid with the lowest ``per_of(hyps)`` (on dev), and every PER."""
    grid = {(w, p): per_of(rescore(lists, w, p)) for w in lm_weights for p in penalties}
    w, p = min(grid, key=grid.get)
    return w, p, grid
