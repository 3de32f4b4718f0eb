"""Phone and word error rates.

PER folds reference and hypothesis by the lang's score map
(:meth:`asr.phones.lang.Lang.score`) and compares them by Levenshtein
alignment. For TIMIT's lang that is Kaldi's TIMIT recipe: the 48 phones
folded to 39 (``conf/phones.60-48-39.map``), silence (including folded
closures) scored, as in Kaldi's recipe since 2014. Without a lang the phones
are scored as given. WER compares whitespace-separated words. Both use the
one aligner :func:`asr.score.align.align` (rapidfuzz, as jiwer), so the same
token sequences get the same (S, D, I) split as phones or as words.

A reference utterance without a hypothesis is scored as all deletions (and
logged as a warning); a hypothesis for an utterance that has no reference
raises :class:`asr.errors.DataError`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

from asr.errors import DataError
from asr.phones.lang import Lang
from asr.score.align import Pair, align

log = logging.getLogger(__name__)

PHONE_CONVENTION_UNFOLDED = "PER on the phone symbols as given (no folding); silence is scored"


def phone_convention(lang: Optional[Lang]) -> str:
    """How PER was computed with ``lang``'s score map (None: phones as given)."""
    if lang is None or not lang.score_map:
        return PHONE_CONVENTION_UNFOLDED
    scored = {m for m in (lang.score_map.get(p, p) for p in lang.phones) if m is not None}
    deleted = [p for p in lang.phones if p in lang.score_map and lang.score_map[p] is None]
    sil = "silence is scored" if lang.score_map.get(lang.optional_silence, lang.optional_silence) \
        else "silence is not scored"
    return (f"PER after the lang's score map, {len(lang.phones)} phones scored as {len(scored)}"
            + (f" ({len(deleted)} deleted)" if deleted else "")
            + f" (reference and hypothesis folded); {sil}")
WORD_CONVENTION = (
    "WER on whitespace-separated words as given (no case or punctuation normalisation), "
    "Levenshtein alignment as jiwer's"
)
#: How many missing utterance ids a warning lists.
_MAX_LISTED = 5

Tokens = Union[Sequence[str], str]


@dataclass
class ErrorCounts:
    """Reference length and edit counts; ``rate`` is errors / ref_len in percent."""

    ref_len: int = 0
    sub: int = 0
    dels: int = 0
    ins: int = 0

    @property
    def errors(self) -> int:
        return self.sub + self.dels + self.ins

    @property
    def correct(self) -> int:
        return self.ref_len - self.sub - self.dels

    @property
    def rate(self) -> float:
        """Error rate in percent (inf when the reference is empty but errors exist)."""
        if self.ref_len == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return 100.0 * self.errors / self.ref_len

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(
            self.ref_len + other.ref_len, self.sub + other.sub, self.dels + other.dels, self.ins + other.ins
        )


@dataclass
class ScoreResult:
    """Totals, per-utterance counts, confusions and per-token tables.

    ``confusions[(ref, hyp)]`` counts substitutions; ``ref_counts[t]`` the
    reference occurrences of token t, ``ref_errors[t]`` how many of them were
    substituted or deleted, ``deletions[t]`` / ``insertions[t]`` the deletions
    of t and insertions of t. ``alignments[utt]`` holds the aligned pairs.
    """

    counts: ErrorCounts
    per_utt: dict[str, ErrorCounts]
    confusions: Counter = field(default_factory=Counter)
    ref_counts: Counter = field(default_factory=Counter)
    ref_errors: Counter = field(default_factory=Counter)
    deletions: Counter = field(default_factory=Counter)
    insertions: Counter = field(default_factory=Counter)
    alignments: dict[str, list[Pair]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    convention: str = ""
    unit: str = "phone"


def counts_from_pairs(pairs: Sequence[Pair]) -> ErrorCounts:
    """Count (ref_len, sub, del, ins) of an alignment."""
    c = ErrorCounts()
    for r, h in pairs:
        if r is not None:
            c.ref_len += 1
        if r is None:
            c.ins += 1
        elif h is None:
            c.dels += 1
        elif r != h:
            c.sub += 1
    return c


def _tokens(x: Tokens) -> list[str]:
    return x.split() if isinstance(x, str) else list(x)


def _check_keys(refs: Mapping[str, object], hyps: Mapping[str, object]) -> list[str]:
    """Raise on hypotheses without reference; warn about (and return) missing hypotheses."""
    unknown = sorted(set(hyps) - set(refs))
    if unknown:
        raise DataError(
            f"{len(unknown)} hypothesis utterance(s) have no reference, e.g. {unknown[:_MAX_LISTED]}"
        )
    missing = sorted(set(refs) - set(hyps))
    if missing:
        log.warning(
            "%d of %d reference utterances have no hypothesis (scored as all deletions), e.g. %s",
            len(missing), len(refs), missing[:_MAX_LISTED],
        )
    return missing


def _accumulate(result: ScoreResult, utt: str, pairs: list[Pair]) -> None:
    """Add one utterance's alignment to ``result``."""
    c = counts_from_pairs(pairs)
    result.per_utt[utt] = c
    result.counts = result.counts + c
    result.alignments[utt] = pairs
    for r, h in pairs:
        if r is None:
            result.insertions[h] += 1
            continue
        result.ref_counts[r] += 1
        if h is None:
            result.deletions[r] += 1
            result.ref_errors[r] += 1
        elif h != r:
            result.confusions[(r, h)] += 1
            result.ref_errors[r] += 1


def score_phones(
    refs: Mapping[str, Tokens], hyps: Mapping[str, Tokens], lang: Optional[Lang] = None
) -> ScoreResult:
    """Phone error rate over all utterances of ``refs``.

    Args:
        refs, hyps: utt -> phone sequence (list, or one space-separated string),
            phones of ``lang`` when it is given.
        lang: fold both sides by its score map first (None: score as given).

    Raises:
        DataError: a hypothesis for an unknown utterance, or a phone outside ``lang``.
    """
    missing = _check_keys(refs, hyps)
    result = ScoreResult(ErrorCounts(), {}, missing=missing, convention=phone_convention(lang), unit="phone")
    for utt in sorted(refs):
        ref, hyp = _tokens(refs[utt]), _tokens(hyps.get(utt, []))
        if lang is not None:
            ref = lang.score(ref, where=f"reference of utterance {utt!r}")
            hyp = lang.score(hyp, where=f"hypothesis of utterance {utt!r}")
        _accumulate(result, utt, align(ref, hyp))
    log.info("PER %.2f%% (%s)", result.counts.rate, _summary(result.counts))
    return result


def score_words(refs: Mapping[str, Tokens], hyps: Mapping[str, Tokens]) -> ScoreResult:
    """Word error rate over all utterances of ``refs`` (same split as jiwer).

    Args:
        refs, hyps: utt -> words (one space-separated string, or a list).

    Raises:
        DataError: a hypothesis for an unknown utterance.
    """
    missing = _check_keys(refs, hyps)
    result = ScoreResult(ErrorCounts(), {}, missing=missing, convention=WORD_CONVENTION, unit="word")
    for utt in sorted(refs):
        _accumulate(result, utt, align(_tokens(refs[utt]), _tokens(hyps.get(utt, ""))))
    log.info("WER %.2f%% (%s)", result.counts.rate, _summary(result.counts))
    return result


def _summary(c: ErrorCounts) -> str:
    return f"N={c.ref_len} S={c.sub} D={c.dels} I={c.ins}"


def score_summary(result: ScoreResult, name: Optional[str] = None) -> str:
    """One line: ``%PER 18.52 [ 1234 / 6666, 100 ins, 200 del, 934 sub ]`` (Kaldi style)."""
    c = result.counts
    label = "%PER" if result.unit == "phone" else "%WER"
    line = f"{label} {c.rate:.2f} [ {c.errors} / {c.ref_len}, {c.ins} ins, {c.dels} del, {c.sub} sub ]"
    return f"{line} {name}" if name else line


def read_transcripts(path: Path) -> dict[str, list[str]]:
    """Read a Kaldi-style transcript file: ``<utt> token token ...`` per line.

    An utterance may have no tokens (an empty hypothesis).

    Raises:
        DataError: missing file, duplicate utterance id (naming file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: transcript file does not exist")
    out: dict[str, list[str]] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if fields[0] in out:
            raise DataError(f"{path}:{lineno}: duplicate utterance {fields[0]!r}")
        out[fields[0]] = fields[1:]
    return out
