"""PER / WER scoring, the Levenshtein alignment, and the sclite-style report."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import jiwer
import numpy as np
import pytest
from rapidfuzz.distance import Levenshtein

from asr.errors import DataError
from asr.phones.timit import PHONES48, timit_lang

TIMIT = timit_lang()
from asr.score.align import align, align_indices
from asr.score.per import ErrorCounts, counts_from_pairs, score_phones, score_summary, score_words
from asr.score.report import format_alignment, write_report

RANDOM_CASES = 2000
#: Where the old hand-written aligner (backtrace preferring deletion, then
#: substitution, then insertion) and jiwer split the same 3 errors differently:
#: old S=2 D=0 I=1 (b->d, d->aa, +b), jiwer / rapidfuzz S=0 D=1 I=2.
TIE_REF = ["b", "d", "aa"]
TIE_HYP = ["d", "aa", "aa", "b"]
TIE_SPLIT = (0, 1, 2)


def _split(c: ErrorCounts) -> tuple[int, int, int]:
    return c.sub, c.dels, c.ins


def _random_pairs(seed: int, alphabet: list[str]) -> list[tuple[list[str], list[str]]]:
    rng = random.Random(seed)
    return [([rng.choice(alphabet) for _ in range(rng.randint(0, 12))],
             [rng.choice(alphabet) for _ in range(rng.randint(0, 12))]) for _ in range(RANDOM_CASES)]


def test_align_examples() -> None:
    assert align([], []) == []
    assert align(["a"], []) == [("a", None)]
    assert align([], ["b"]) == [(None, "b")]
    assert align(list("abc"), list("abc")) == [("a", "a"), ("b", "b"), ("c", "c")]
    assert align(list("abcd"), list("axd")) in ([("a", "a"), ("b", "x"), ("c", None), ("d", "d")],
                                                 [("a", "a"), ("b", None), ("c", "x"), ("d", "d")])
    c = counts_from_pairs(align(list("kitten"), list("sitting")))
    assert (c.ref_len, c.sub, c.dels, c.ins, c.errors) == (6, 2, 0, 1, 3)


def test_align_tie_break_is_jiwers() -> None:
    assert align(TIE_REF, TIE_HYP) == [("b", None), ("d", "d"), ("aa", "aa"), (None, "aa"), (None, "b")]
    out = jiwer.process_words(" ".join(TIE_REF), " ".join(TIE_HYP))
    assert (out.substitutions, out.deletions, out.insertions) == TIE_SPLIT


def test_align_indices_and_tokens_with_spaces() -> None:
    assert align_indices(["x", "y", "z"], ["y", "q"]) == [(0, None), (1, 0), (2, 1)]
    assert align(["a b", "c"], ["a b"]) == [("a b", "a b"), ("c", None)]


def test_alignment_is_levenshtein_and_jiwers_split() -> None:
    for ref, hyp in _random_pairs(7, list("abcde")):
        pairs = align(ref, hyp)
        assert [r for r, _ in pairs if r is not None] == ref
        assert [h for _, h in pairs if h is not None] == hyp
        c = counts_from_pairs(pairs)
        assert c.ref_len == len(ref)
        assert c.errors == Levenshtein.distance(ref, hyp), (ref, hyp)
        out = jiwer.process_words(" ".join(ref), " ".join(hyp))
        assert _split(c) == (out.substitutions, out.deletions, out.insertions), (ref, hyp)


def test_per_and_wer_split_alike() -> None:
    """The same tokens scored as phones (no folding) and as words: identical S / D / I everywhere."""
    cases = [(TIE_REF, TIE_HYP)] + _random_pairs(11, list(PHONES48[:6]))
    refs = {f"u{i:04d}": r for i, (r, _) in enumerate(cases)}
    hyps = {f"u{i:04d}": h for i, (_, h) in enumerate(cases)}
    per = score_phones(refs, hyps)
    wer = score_words({u: " ".join(t) for u, t in refs.items()}, {u: " ".join(t) for u, t in hyps.items()})
    assert _split(per.per_utt["u0000"]) == _split(wer.per_utt["u0000"]) == TIE_SPLIT
    assert per.per_utt == wer.per_utt
    assert per.alignments == wer.alignments
    assert per.counts == wer.counts


def test_error_counts() -> None:
    c = ErrorCounts(ref_len=10, sub=1, dels=2, ins=1) + ErrorCounts(ref_len=10, sub=1)
    assert (c.errors, c.correct, c.rate) == (5, 16, 25.0)
    assert ErrorCounts().rate == 0.0 and ErrorCounts(ins=1).rate == float("inf")


def test_score_phones_folds_to_39() -> None:
    refs = {"u1": ["sil", "cl", "k", "ao", "ix", "sil"], "u2": "sil zh ax sil"}
    hyps = {"u1": ["sil", "vcl", "k", "aa", "ih", "epi"], "u2": "sil sh ah"}
    res = score_phones(refs, hyps, TIMIT)
    assert res.per_utt["u1"].errors == 0
    assert (res.per_utt["u2"].ref_len, res.per_utt["u2"].dels) == (4, 1)
    assert res.alignments["u1"][1] == ("sil", "sil")
    raw = score_phones(refs, hyps)
    assert raw.per_utt["u1"].sub == 4
    assert raw.confusions[("ao", "aa")] == 1


def test_score_phones_missing_and_unknown(caplog: pytest.LogCaptureFixture) -> None:
    refs = {"u1": ["sil", "aa", "sil"], "u2": ["sil", "b", "iy", "sil"]}
    with caplog.at_level(logging.WARNING):
        res = score_phones(refs, {"u1": ["sil", "aa", "sil"]}, TIMIT)
    assert "1 of 2 reference utterances have no hypothesis" in caplog.text
    assert res.missing == ["u2"]
    assert (res.counts.ref_len, res.counts.dels, res.counts.rate) == (7, 4, pytest.approx(400 / 7))
    with pytest.raises(DataError, match=r"have no reference, e.g. \['u9'\]"):
        score_phones(refs, {"u9": ["sil"]}, TIMIT)
    with pytest.raises(DataError, match=r"hypothesis of utterance 'u1'.*unknown phone 'xx'"):
        score_phones(refs, {"u1": ["sil", "xx"]}, TIMIT)


def test_score_phones_counts_per_phone() -> None:
    refs = {"a": "sil b iy sil", "b": "sil b aa t sil"}
    hyps = {"a": "sil p iy sil", "b": "s sil b aa sil"}
    res = score_phones(refs, hyps, TIMIT)
    assert (res.counts.ref_len, res.counts.sub, res.counts.dels, res.counts.ins) == (9, 1, 1, 1)
    assert res.confusions == {("b", "p"): 1}
    assert res.ref_counts["b"] == 2 and res.ref_errors["b"] == 1
    assert res.deletions["t"] == 1 and res.insertions["s"] == 1
    assert score_summary(res) == "%PER 33.33 [ 3 / 9, 1 ins, 1 del, 1 sub ]"


def test_score_words_matches_jiwer() -> None:
    refs = {"u1": "the cat sat on the mat", "u2": "hello world", "u3": "one two"}
    hyps = {"u1": "the cat sat on mat", "u2": "hello there world"}
    res = score_words(refs, hyps)
    ref_list = [refs[u] for u in sorted(refs)]
    hyp_list = [hyps.get(u, "") for u in sorted(refs)]
    assert res.counts.rate == pytest.approx(100 * jiwer.wer(ref_list, hyp_list))
    assert (res.counts.sub, res.counts.dels, res.counts.ins) == (0, 3, 1)
    assert res.alignments["u2"] == [("hello", "hello"), (None, "there"), ("world", "world")]
    with pytest.raises(DataError):
        score_words(refs, {"zz": "x"})


def test_format_alignment() -> None:
    ref, hyp, ev = format_alignment([("sil", "sil"), ("b", "p"), ("iy", None), (None, "aa")])
    assert ref == "sil B IY  ***"
    assert hyp == "sil P *** AA"
    assert ev == "    S D   I"


def test_write_report(tmp_path: Path) -> None:
    refs = {f"spk{i}_u": "sil dh ax k ae t sil" for i in range(3)}
    hyps = {"spk0_u": "sil dh ax k ae t sil", "spk1_u": "sil d ax g ae sil", "spk2_u": "sil dh ah k ae t s sil"}
    res = score_phones(refs, hyps, TIMIT)
    out = tmp_path / "decode" / "per_report.txt"
    write_report(res, out, title="test set, bigram")
    text = out.read_text()
    assert text.startswith("test set, bigram\n")
    assert "PER after the lang's score map, 48 phones scored as 39" in text
    assert "silence is scored" in text
    assert "%PER 19.05 [ 4 / 21, 1 ins, 1 del, 2 sub ]" in text
    assert "     1  50.00  dh -> d" in text
    assert "id: spk1_u" in text and "REF:  sil DH ah K ae T   sil" in text
    assert "HYP:  sil D  ah G ae *** sil" in text
    assert [ln for ln in text.splitlines() if ln.startswith("t ")][0].split() == ["t", "3", "0", "1", "0", "33.33"]
    assert not list(out.parent.glob(".*tmp")), "written atomically"
    write_report(res, tmp_path / "r2.txt", title="test set, bigram")
    assert (tmp_path / "r2.txt").read_text() == text


def test_report_alignment_agrees_with_scored_counts(tmp_path: Path) -> None:
    refs, hyps = {"u": " ".join(TIE_REF)}, {"u": " ".join(TIE_HYP)}
    res = score_words(refs, hyps)
    assert _split(res.per_utt["u"]) == TIE_SPLIT
    write_report(res, tmp_path / "r.txt", title="words")
    text = (tmp_path / "r.txt").read_text()
    assert "Scores: (#C #S #D #I) 2 0 1 2" in text
    assert "REF:  B   d aa *** ***" in text and "Eval: D        I   I" in text


def test_all_48_phones_score() -> None:
    refs = {"u": list(PHONES48)}
    res = score_phones(refs, refs, TIMIT)
    assert res.counts.errors == 0 and res.counts.ref_len == 48


def test_paired_bootstrap_separates_a_real_difference_from_none():
    from asr.score.significance import paired_bootstrap

    rng = np.random.default_rng(0)
    refs = {f"u{i}": " ".join(rng.choice(list("abcdefgh"), size=30)) for i in range(60)}

    def corrupt(p):  # substitute each token with probability p
        return {u: " ".join(t if rng.random() > p else "z" for t in r.split()) for u, r in refs.items()}

    worse, better = score_words(refs, corrupt(0.30)), score_words(refs, corrupt(0.15))
    cmp = paired_bootstrap(worse, better)
    assert cmp.rate_b < cmp.rate_a and cmp.p_b_better > 0.99
    lo, hi = cmp.interval
    assert lo < cmp.rate_b - cmp.rate_a < hi < 0  # the interval holds the difference, all below 0
    same = paired_bootstrap(worse, worse)
    assert same.interval == (0.0, 0.0) and same.p_b_better == 0.0
    fewer = score_words(dict(list(refs.items())[:10]), dict(list(corrupt(0.1).items())[:10]))
    with pytest.raises(DataError, match="different utterances"):
        paired_bootstrap(worse, fewer)
