"""Levenshtein alignment of a reference and a hypothesis token sequence.

The one aligner of the package (PER, WER, reports, synthetic word labels):
a thin wrapper around :func:`rapidfuzz.distance.Levenshtein.opcodes`, the
same call ``jiwer.process_words`` makes, so the (S, D, I) split equals
jiwer's exactly. Substitution, insertion and deletion all cost 1 (as in
Kaldi's ``compute-wer`` and jiwer), so the number of errors of an alignment
is always the Levenshtein distance.

Tokens are mapped to integers first (as jiwer does), so any hashable tokens
work, including ones with spaces, and equality is exact (no hash
collisions). The alignment depends only on which tokens are equal.

Tie-breaking (rapidfuzz >= 3, Hyyrö's bit-parallel matrix): a common prefix
and suffix are matched first; in between, the backtrace from the end prefers
a deletion, then an insertion, then a match or substitution. Very large
inputs (about 2000 x 2000 tokens and up) are split by Hirschberg's method
first, which can move ties but never the total.

sclite's default weights (substitution 4, insertion and deletion 3) can
break ties differently, e.g. prefer D + I over two substitutions.
"""

from __future__ import annotations

from typing import Hashable, Optional, Sequence

from rapidfuzz.distance import Levenshtein

Pair = tuple[Optional[str], Optional[str]]
IndexPair = tuple[Optional[int], Optional[int]]


def align_indices(ref: Sequence[Hashable], hyp: Sequence[Hashable]) -> list[IndexPair]:
    """Minimum-edit alignment of ``ref`` and ``hyp`` as index pairs.

    Returns:
        pairs in order: (i, j) for a match or substitution of ref[i] by
        hyp[j], (i, None) for a deletion, (None, j) for an insertion.
    """
    ids: dict[Hashable, int] = {}
    ref_ids = [ids.setdefault(t, len(ids)) for t in ref]
    hyp_ids = [ids.setdefault(t, len(ids)) for t in hyp]
    pairs: list[IndexPair] = []
    for tag, i1, i2, j1, j2 in Levenshtein.opcodes(ref_ids, hyp_ids):
        if tag in ("equal", "replace"):
            pairs.extend(zip(range(i1, i2), range(j1, j2)))
        elif tag == "delete":
            pairs.extend((i, None) for i in range(i1, i2))
        elif tag == "insert":
            pairs.extend((None, j) for j in range(j1, j2))
        else:
            raise ValueError(f"unknown rapidfuzz opcode {tag!r}")
    return pairs


def align(ref: Sequence[str], hyp: Sequence[str]) -> list[Pair]:
    """Minimum-edit alignment of ``ref`` and ``hyp`` (see the module docstring).

    Returns:
        pairs in order: (r, h) for a match or substitution, (r, None) for a
        deletion, (None, h) for an insertion.
    """
    return [(None if i is None else ref[i], None if j is None else hyp[j]) for i, j in align_indices(ref, hyp)]
