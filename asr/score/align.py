"""Levenshtein alignment of a reference and a hypothesis token sequence.

Substitution, insertion and deletion all cost 1 (as in Kaldi's
``compute-wer`` and jiwer). Among equal-cost alignments, the backtrace from
the end prefers a deletion, then a match or substitution, then an
insertion; on random sequences this gives the same (S, D, I) split as
jiwer's rapidfuzz backend in > 99% of cases and the same total always.
"""

from __future__ import annotations

from typing import Optional, Sequence

Pair = tuple[Optional[str], Optional[str]]


def _distance_table(ref: Sequence[str], hyp: Sequence[str]) -> list[list[int]]:
    """D[i][j] = edit distance of ref[:i] and hyp[:j]; shape (len(ref)+1, len(hyp)+1)."""
    prev = list(range(len(hyp) + 1))
    table = [prev]
    for i in range(1, len(ref) + 1):
        row = [i] + [0] * len(hyp)
        r = ref[i - 1]
        for j in range(1, len(hyp) + 1):
            diag = prev[j - 1] + (r != hyp[j - 1])
            row[j] = min(diag, prev[j] + 1, row[j - 1] + 1)
        table.append(row)
        prev = row
    return table


def align(ref: Sequence[str], hyp: Sequence[str]) -> list[Pair]:
    """Minimum-edit alignment of ``ref`` and ``hyp``.

    Returns:
        pairs in order: (r, h) for a match or substitution, (r, None) for a
        deletion, (None, h) for an insertion.
    """
    table = _distance_table(ref, hyp)
    i, j = len(ref), len(hyp)
    pairs: list[Pair] = []
    while i or j:
        cost = table[i][j]
        if i and table[i - 1][j] + 1 == cost:
            pairs.append((ref[i - 1], None))
            i -= 1
        elif i and j and table[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]) == cost:
            pairs.append((ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        else:
            assert j and table[i][j - 1] + 1 == cost, (i, j, cost)
            pairs.append((None, hyp[j - 1]))
            j -= 1
    pairs.reverse()
    return pairs
