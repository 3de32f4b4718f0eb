"""sclite-style text report of a :class:`~asr.score.per.ScoreResult`.

Sections: header (title, scoring convention), totals (N, Sub, Del, Ins,
Err%), the most frequent confusions, a per-token error table, and the
aligned REF/HYP lines of every utterance (errors in upper case, ``***`` for
gaps, an Eval line with S / D / I), as sclite's ``pralign`` output does.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

from asr.io import atomic_write_text
from asr.score.align import Pair
from asr.score.per import ScoreResult, counts_from_pairs, score_summary

log = logging.getLogger(__name__)

#: Number of confusion pairs listed.
TOP_CONFUSIONS = 20
GAP = "***"
_RULE = "-" * 72


def _pct(num: int, den: int) -> str:
    return f"{100.0 * num / den:6.2f}" if den else "   n/a"


def _header(result: ScoreResult, title: str) -> list[str]:
    c = result.counts
    unit = "PER" if result.unit == "phone" else "WER"
    lines = [title, "=" * len(title), f"Scoring convention: {result.convention}", ""]
    lines.append(score_summary(result))
    lines.append(f"{'utts':>6} {'N':>7} {'Corr':>7} {'Sub':>7} {'Del':>7} {'Ins':>7} {'Err':>7} {unit + '%':>7}")
    lines.append(
        f"{len(result.per_utt):>6} {c.ref_len:>7} {c.correct:>7} {c.sub:>7} {c.dels:>7} {c.ins:>7} "
        f"{c.errors:>7} {c.rate:>7.2f}"
    )
    lines.append(
        f"Sub {_pct(c.sub, c.ref_len)}%  Del {_pct(c.dels, c.ref_len)}%  Ins {_pct(c.ins, c.ref_len)}%"
    )
    if result.missing:
        lines.append(f"{len(result.missing)} utterance(s) had no hypothesis (scored as deletions): "
                     + " ".join(result.missing))
    return lines + [""]


def _confusions(result: ScoreResult) -> list[str]:
    total_sub = sum(result.confusions.values())
    lines = [f"Most frequent confusions (top {TOP_CONFUSIONS} of {len(result.confusions)} pairs, "
             f"{total_sub} substitutions)", _RULE, f"{'count':>6} {'%sub':>6}  ref -> hyp"]
    for (r, h), n in result.confusions.most_common(TOP_CONFUSIONS):
        lines.append(f"{n:>6} {_pct(n, total_sub)}  {r} -> {h}")
    return lines + [""]


def _token_table(result: ScoreResult) -> list[str]:
    name = result.unit
    lines = [f"Per-{name} errors (Err% = (Sub + Del) / N of that reference {name}; sorted by errors)", _RULE,
             f"{name:<10} {'N':>6} {'Sub':>6} {'Del':>6} {'Ins':>6} {'Err%':>7}"]
    tokens = sorted(set(result.ref_counts) | set(result.insertions),
                    key=lambda t: (-result.ref_errors[t], t))
    for t in tokens:
        n, err, dels = result.ref_counts[t], result.ref_errors[t], result.deletions[t]
        lines.append(f"{t:<10} {n:>6} {err - dels:>6} {dels:>6} {result.insertions[t]:>6} {_pct(err, n):>7}")
    return lines + [""]


def format_alignment(pairs: Sequence[Pair]) -> tuple[str, str, str]:
    """REF, HYP and Eval lines of one alignment, columns padded to the same width."""
    refs, hyps, evals = [], [], []
    for r, h in pairs:
        if r is not None and r == h:
            cols = (r, h, "")
        elif r is None:
            cols = (GAP, h.upper(), "I")
        elif h is None:
            cols = (r.upper(), GAP, "D")
        else:
            cols = (r.upper(), h.upper(), "S")
        width = max(len(x) for x in cols)
        refs.append(cols[0].ljust(width))
        hyps.append(cols[1].ljust(width))
        evals.append(cols[2].ljust(width))
    return " ".join(refs).rstrip(), " ".join(hyps).rstrip(), " ".join(evals).rstrip()


def _utterances(alignments: Mapping[str, list[Pair]]) -> list[str]:
    lines = ["Per-utterance alignments (errors in upper case, *** marks a gap)", _RULE]
    for utt in sorted(alignments):
        pairs = alignments[utt]
        c = counts_from_pairs(pairs)
        ref, hyp, ev = format_alignment(pairs)
        lines += [f"id: {utt}",
                  f"Scores: (#C #S #D #I) {c.correct} {c.sub} {c.dels} {c.ins}   Err% {c.rate:.2f}",
                  f"REF:  {ref}", f"HYP:  {hyp}", f"Eval: {ev}", ""]
    return lines


def write_report(result: ScoreResult, path: Path, title: str) -> None:
    """Write the sclite-style report of ``result`` to ``path`` atomically.

    The aligned lines are ``result.alignments``, the alignments that were
    scored (after any 39-phone folding), so they always agree with the counts.
    """
    lines = _header(result, title) + _confusions(result) + _token_table(result) + _utterances(result.alignments)
    atomic_write_text(path, "\n".join(lines) + "\n")
    log.info("wrote scoring report %s (%s)", path, score_summary(result))
