"""sclite-style text report of a :class:`~asr.score.per.ScoreResult`.

Sections: header (title, scoring convention), totals (N, Sub, Del, Ins,
Err%) and the sentence error rate; with an ``utt2spk`` map, per-speaker
tables in the layout of sclite's ``.raw`` (counts) and ``.sys``
(percentages, with Mean / S.D. / Median over speakers) reports; with a
vocabulary, the out-of-vocabulary reference tokens; the most frequent
confusions (for words: the most frequent substitutions, deleted words and
inserted words, as sclite's ``dtl`` report); a per-token error table; and
the aligned REF/HYP lines of every utterance (errors in upper case, ``***``
for gaps, an Eval line with S / D / I), as sclite's ``pralign`` output does.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import AbstractSet, Hashable, Mapping, Optional, Sequence, Union

from asr.errors import DataError
from asr.io import atomic_write_text
from asr.score.align import Pair
from asr.score.per import ErrorCounts, ScoreResult, counts_from_pairs, score_summary

log = logging.getLogger(__name__)

#: Number of confusion pairs (and of deleted / inserted words) listed.
TOP_CONFUSIONS = 20
#: Number of out-of-vocabulary reference words listed.
TOP_OOV = 20
#: How many utterance ids without a speaker an error lists.
_MAX_LISTED = 5
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
    n_err, n_snt = sentence_errors(result)
    lines.append(f"Sentence error rate {_pct(n_err, n_snt).strip()}% "
                 f"({n_err} of {n_snt} utterances with at least one error)")
    if result.missing:
        lines.append(f"{len(result.missing)} utterance(s) had no hypothesis (scored as deletions): "
                     + " ".join(result.missing))
    return lines + [""]


def sentence_errors(result: ScoreResult) -> tuple[int, int]:
    """(utterances with at least one error, utterances scored)."""
    return sum(1 for c in result.per_utt.values() if c.errors), len(result.per_utt)


# ---- per-speaker tables (sclite .raw / .sys) --------------------------------


@dataclass
class SpeakerCounts:
    """One speaker's (or a sum's) sentences, sentences in error and edit counts."""

    snt: int = 0
    snt_err: int = 0
    counts: ErrorCounts = field(default_factory=ErrorCounts)

    def add(self, c: ErrorCounts) -> None:
        """Add one utterance's counts."""
        self.snt += 1
        self.snt_err += int(c.errors > 0)
        self.counts = self.counts + c

    def values(self) -> list[int]:
        """# Snt, # Wrd, Corr, Sub, Del, Ins, Err, S.Err as counts."""
        c = self.counts
        return [self.snt, c.ref_len, c.correct, c.sub, c.dels, c.ins, c.errors, self.snt_err]

    def rates(self) -> list[Union[int, float, None]]:
        """# Snt, # Wrd, then Corr .. Err in percent of # Wrd and S.Err in percent of # Snt (None: 0 / 0)."""
        v = self.values()
        return v[:2] + [_rate(x, v[1]) for x in v[2:7]] + [_rate(v[7], v[0])]


def _rate(num: int, den: int) -> Optional[float]:
    return 100.0 * num / den if den else None


def speaker_counts(result: ScoreResult, utt2spk: Mapping[str, str]) -> dict[str, SpeakerCounts]:
    """Per-speaker counts of the scored utterances (speakers of ``utt2spk`` with none are left out).

    Raises:
        DataError: a scored utterance has no speaker in ``utt2spk``.
    """
    unknown = sorted(u for u in result.per_utt if u not in utt2spk)
    if unknown:
        raise DataError(f"utt2spk: {len(unknown)} scored utterance(s) have no speaker, "
                        f"e.g. {unknown[:_MAX_LISTED]}")
    stats: dict[str, SpeakerCounts] = {}
    for utt, c in result.per_utt.items():
        stats.setdefault(utt2spk[utt], SpeakerCounts()).add(c)
    return stats


_SPK_HEADS = ("Corr", "Sub", "Del", "Ins", "Err", "S.Err")


def _cell(v: Union[int, float, None]) -> str:
    if v is None:
        return f"{'n/a':>7}"
    return f"{v:>7}" if isinstance(v, int) else f"{v:>7.2f}"


def _spk_row(name: str, width: int, values: Sequence[Union[int, float, None]]) -> str:
    cells = [_cell(v) for v in values]
    return f"| {name:<{width}} |{''.join(cells[:2])} |{''.join(cells[2:])} |"


def _spread_rows(stats: Mapping[str, SpeakerCounts], width: int) -> list[str]:
    """Mean, S.D. (sample, n - 1) and Median of each column over speakers (rates left undefined skipped)."""
    columns = list(zip(*(s.rates() for s in stats.values())))
    funcs = (("Mean", statistics.mean), ("S.D.", lambda x: statistics.stdev(x) if len(x) > 1 else 0.0),
             ("Median", statistics.median))
    rows = []
    for name, fn in funcs:
        values = [[v for v in col if v is not None] for col in columns]
        rows.append(_spk_row(name, width, [float(fn(v)) if v else None for v in values]))
    return rows


def _sum(stats: Mapping[str, SpeakerCounts]) -> SpeakerCounts:
    total = SpeakerCounts()
    for s in stats.values():
        total = SpeakerCounts(total.snt + s.snt, total.snt_err + s.snt_err, total.counts + s.counts)
    return total


def _speaker_table(stats: Mapping[str, SpeakerCounts], unit: str, percent: bool) -> list[str]:
    """sclite's .raw (counts) or .sys (percentages, with the spread over speakers) table."""
    width = max([len("Sum/Avg")] + [len(s) for s in stats])
    heads = [f"{h:>7}" for h in ("# Snt", f"# {'Wrd' if unit == 'word' else 'Phn'}", *_SPK_HEADS)]
    head = f"| {'SPKR':<{width}} |{''.join(heads[:2])} |{''.join(heads[2:])} |"
    rule, double = "|" + "-" * (len(head) - 2) + "|", "|" + "=" * (len(head) - 2) + "|"
    pick = (lambda s: s.rates()) if percent else (lambda s: s.values())
    lines = [head, rule] + [_spk_row(spk, width, pick(stats[spk])) for spk in sorted(stats)]
    lines += [double, _spk_row("Sum/Avg", width, pick(_sum(stats)))]
    return lines + ([double] + _spread_rows(stats, width) if percent else [])


def _speakers(result: ScoreResult, utt2spk: Mapping[str, str]) -> list[str]:
    stats = speaker_counts(result, utt2spk)
    what = "Err% = (Sub + Del + Ins) / N; S.Err = utterances with an error"
    return ([f"Per-speaker counts ({len(stats)} speaker(s), sclite .raw layout)", _RULE]
            + _speaker_table(stats, result.unit, percent=False) + ["",
            f"Per-speaker percentages ({what}; Mean / S.D. / Median over speakers)", _RULE]
            + _speaker_table(stats, result.unit, percent=True) + [""])


# ---- out-of-vocabulary reference tokens ---------------------------------------


def oov_counts(result: ScoreResult, vocab: AbstractSet[str]) -> Counter:
    """Reference occurrences of each token not in ``vocab``."""
    return Counter({t: n for t, n in result.ref_counts.items() if t not in vocab})


def _oov(result: ScoreResult, vocab: AbstractSet[str], top_n: int = TOP_OOV) -> list[str]:
    oov = oov_counts(result, vocab)
    n_oov, n_ref = sum(oov.values()), result.counts.ref_len
    n_err = sum(result.ref_errors[t] for t in oov)
    lines = [f"Out-of-vocabulary reference {result.unit}s (not in the {len(vocab)}-{result.unit} vocabulary)",
             _RULE,
             f"OOV tokens {n_oov} of {n_ref} ({_pct(n_oov, n_ref).strip()}%), {len(oov)} distinct; "
             f"{n_err} of them substituted or deleted ({_pct(n_err, n_oov).strip()}%)"]
    if oov:
        lines.append(f"{'count':>6} {'errors':>6}  {result.unit} (top {top_n})")
        lines += [f"{n:>6} {result.ref_errors[t]:>6}  {t}" for t, n in _top(oov, top_n)]
    return lines + [""]


# ---- most frequent errors ---------------------------------------------------------


def _top(counter: Mapping[Hashable, int], top_n: int) -> list[tuple]:
    """The ``top_n`` most frequent items, ties in key order."""
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:top_n]


def _listing(title: str, column: str, counter: Mapping[Hashable, int], top_n: int, show) -> list[str]:
    """``title``, then count, percent of all and ``show(key)`` of the most frequent keys."""
    total = sum(counter.values())
    lines = [f"{title} (top {min(top_n, len(counter))} of {len(counter)}, {total} in all)",
             _RULE, f"{'count':>6} {'%':>6}  {column}"]
    lines += [f"{n:>6} {_pct(n, total)}  {show(k)}" for k, n in _top(counter, top_n)]
    return lines + [""]


def _word_errors(result: ScoreResult, top_n: int) -> list[str]:
    """Most frequent substitutions (ref -> hyp), deleted words and inserted words."""
    return (_listing("Most frequent substitutions", "ref -> hyp", result.confusions, top_n,
                     lambda k: f"{k[0]} -> {k[1]}")
            + _listing("Most frequent deleted words", "word", result.deletions, top_n, str)
            + _listing("Most frequent inserted words", "word", result.insertions, top_n, str))


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


def write_report(
    result: ScoreResult,
    path: Path,
    title: str,
    utt2spk: Optional[Mapping[str, str]] = None,
    vocab: Optional[AbstractSet[str]] = None,
    top_n: int = TOP_CONFUSIONS,
) -> None:
    """Write the sclite-style report of ``result`` to ``path`` atomically.

    The aligned lines are ``result.alignments``, the alignments that were
    scored (after any 39-phone folding), so they always agree with the counts.

    Args:
        utt2spk: utterance -> speaker; adds the per-speaker tables.
        vocab: the recogniser's vocabulary; adds the OOV count and rate of the reference.
        top_n: how many substitutions, deleted and inserted words a word report lists.

    Raises:
        DataError: a scored utterance has no speaker in ``utt2spk`` (nothing is written).
    """
    lines = _header(result, title)
    if utt2spk is not None:
        lines += _speakers(result, utt2spk)
    if vocab is not None:
        lines += _oov(result, vocab)
    lines += _word_errors(result, top_n) if result.unit == "word" else _confusions(result)
    lines += _token_table(result) + _utterances(result.alignments)
    atomic_write_text(path, "\n".join(lines) + "\n")
    log.info("wrote scoring report %s (%s)", path, score_summary(result))
