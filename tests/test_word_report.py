"""The sclite-style WER report: per-speaker tables, sentence errors, word error lists, OOV rate.

Every figure asserted here is worked out by hand from the toy set below:

    spk a: a_1  the cat sat / the cat sat      correct
           a_2  a dog       / a dog ran        1 ins            N=5  Err 1 (20.00%)  S.Err 1/2
    spk b: b_1  the cat ran / the bat          1 sub, 1 del     N=3  Err 2 (66.67%)  S.Err 2/2 (one utt)
    spk c: c_1  zorp the end / the end         1 del            N=3  Err 1 (33.33%)  S.Err 1/1
    spk d: d_1  (empty)     / (empty)          nothing          N=0  Err n/a         S.Err 0/1

Totals N=11, S=1 D=2 I=1, WER 4/11 = 36.36%, 3 of 5 utterances wrong (60.00%).
Speaker Err% over a, b, c (d has no words): mean 40.00, median 33.33, sample S.D. 24.04.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from asr.errors import DataError
from asr.score.per import score_phones, score_words
from asr.score.report import oov_counts, sentence_errors, speaker_counts, write_report

REFS = {"a_1": "the cat sat", "a_2": "a dog", "b_1": "the cat ran", "c_1": "zorp the end", "d_1": ""}
HYPS = {"a_1": "the cat sat", "a_2": "a dog ran", "b_1": "the bat", "c_1": "the end", "d_1": ""}
UTT2SPK = {utt: utt.split("_")[0] for utt in REFS}
VOCAB = {"the", "cat", "sat", "a", "dog", "ran", "end"}


def _row(text: str, name: str) -> list[str]:
    """The cells of every table row of speaker ``name`` (counts table first)."""
    rows = [ln for ln in text.splitlines() if ln.startswith(f"| {name} ")]
    return [ln.replace("|", " ").split()[1:] for ln in rows]


@pytest.fixture()
def report(tmp_path: Path) -> str:
    path = tmp_path / "out" / "wer_report.txt"
    write_report(score_words(REFS, HYPS), path, "toy words", utt2spk=UTT2SPK, vocab=VOCAB)
    assert not list(path.parent.glob(".*tmp")), "written atomically"
    return path.read_text()


def test_totals_and_sentence_error_rate(report: str) -> None:
    assert "%WER 36.36 [ 4 / 11, 1 ins, 2 del, 1 sub ]" in report
    assert "Sentence error rate 60.00% (3 of 5 utterances with at least one error)" in report
    assert sentence_errors(score_words(REFS, HYPS)) == (3, 5)


def test_speaker_counts_and_percentages(report: str) -> None:
    assert "| SPKR    |  # Snt  # Wrd |   Corr    Sub    Del    Ins    Err  S.Err |" in report
    counts, pcts = _row(report, "a      ")
    assert counts == ["2", "5", "5", "0", "0", "1", "1", "1"]
    assert pcts == ["2", "5", "100.00", "0.00", "0.00", "20.00", "20.00", "50.00"]
    assert _row(report, "b      ")[1] == ["1", "3", "33.33", "33.33", "33.33", "0.00", "66.67", "100.00"]
    assert _row(report, "c      ")[1] == ["1", "3", "66.67", "0.00", "33.33", "0.00", "33.33", "100.00"]
    assert _row(report, "d      ")[1] == ["1", "0", "n/a", "n/a", "n/a", "n/a", "n/a", "0.00"]
    total_counts, total_pcts = _row(report, "Sum/Avg")
    assert total_counts == ["5", "11", "8", "1", "2", "1", "4", "3"]
    assert total_pcts == ["5", "11", "72.73", "9.09", "18.18", "9.09", "36.36", "60.00"]
    spk_lines = [ln.split()[1] for ln in report.splitlines() if ln.startswith("| ") and "SPKR" not in ln]
    speakers = ["a", "b", "c", "d", "Sum/Avg"]
    assert spk_lines == speakers + speakers + ["Mean", "S.D.", "Median"], "sorted by speaker, then the sums"


def test_mean_median_sd_of_speaker_rates(report: str) -> None:
    mean, sd, median = _row(report, "Mean   "), _row(report, "S.D.   "), _row(report, "Median ")
    # Err% column: d (no words) is left out; S.Err%: all four speakers (50, 100, 100, 0)
    assert mean[0][6:] == ["40.00", "62.50"]
    assert median[0][6:] == ["33.33", "75.00"]
    assert sd[0][6] == "24.04"
    assert mean[0][:2] == ["1.25", "2.75"]  # sentences and words per speaker


def test_word_error_lists(report: str) -> None:
    subs = report.split("Most frequent substitutions (top 1 of 1, 1 in all)")[1]
    assert subs.splitlines()[3] == "     1 100.00  cat -> bat"
    dels = report.split("Most frequent deleted words (top 2 of 2, 2 in all)")[1].splitlines()
    assert [ln.split()[-1] for ln in dels[3:5]] == ["ran", "zorp"], "ties in word order"
    ins = report.split("Most frequent inserted words (top 1 of 1, 1 in all)")[1].splitlines()
    assert ins[3] == "     1 100.00  ran"
    assert "Most frequent confusions" not in report, "the word lists replace the generic confusions"


def test_top_n_limits_the_lists(tmp_path: Path) -> None:
    write_report(score_words(REFS, HYPS), tmp_path / "r.txt", "toy", top_n=1)
    text = (tmp_path / "r.txt").read_text()
    dels = text.split("Most frequent deleted words (top 1 of 2, 2 in all)")[1].splitlines()
    assert dels[3].endswith("ran") and not dels[4].strip()


def test_oov_tokens_and_rate(report: str) -> None:
    assert "Out-of-vocabulary reference words (not in the 7-word vocabulary)" in report
    assert "OOV tokens 1 of 11 (9.09%), 1 distinct; 1 of them substituted or deleted (100.00%)" in report
    assert "     1      1  zorp" in report
    assert oov_counts(score_words(REFS, HYPS), VOCAB) == {"zorp": 1}


def test_oov_never_crashes(tmp_path: Path) -> None:
    res = score_words(REFS, HYPS)
    write_report(res, tmp_path / "all_oov.txt", "toy", vocab=set())
    assert "OOV tokens 11 of 11 (100.00%), 8 distinct" in (tmp_path / "all_oov.txt").read_text()
    empty = score_words({}, {})
    write_report(empty, tmp_path / "empty.txt", "empty", utt2spk={}, vocab=VOCAB)
    text = (tmp_path / "empty.txt").read_text()
    assert "OOV tokens 0 of 0 (n/a%)" in text and "Sentence error rate n/a% (0 of 0" in text


def test_missing_speaker_is_an_error_and_nothing_is_written(tmp_path: Path) -> None:
    out = tmp_path / "r.txt"
    with pytest.raises(DataError, match=r"utt2spk: 1 scored utterance\(s\) have no speaker, e.g. \['d_1'\]"):
        write_report(score_words(REFS, HYPS), out, "toy", utt2spk={u: s for u, s in UTT2SPK.items() if s != "d"})
    assert not out.exists() and not list(tmp_path.iterdir())


def test_missing_hypothesis_counts_for_its_speaker() -> None:
    res = score_words(REFS, {u: h for u, h in HYPS.items() if u != "c_1"})
    stats = speaker_counts(res, UTT2SPK)
    assert stats["c"].values() == [1, 3, 0, 0, 3, 0, 3, 1]
    assert sorted(stats) == ["a", "b", "c", "d"]


def test_phone_report_with_speakers(tmp_path: Path) -> None:
    refs = {"s1_u": "sil k ae t sil", "s2_u": "sil d aa g sil"}
    hyps = {"s1_u": "sil k ae t sil", "s2_u": "sil t aa g sil"}
    write_report(score_phones(refs, hyps), tmp_path / "per.txt", "phones", utt2spk={u: u[:2] for u in refs})
    text = (tmp_path / "per.txt").read_text()
    assert "# Phn" in text and "Most frequent confusions" in text
    assert _row(text, "s2     ")[1][-2:] == ["20.00", "100.00"]
    assert "Sentence error rate 50.00% (1 of 2 utterances with at least one error)" in text
