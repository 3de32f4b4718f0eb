"""The pure parts of bench/alignment.py: phone mapping, pairing, scoring, finding the truth."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import alignment as bench  # noqa: E402


def test_common_phone_folds_every_set_onto_timit39():
    assert [bench.common_phone(p) for p in ("ao", "AO1", "zh", "ZH", "ax", "AH0", "ix", "hv", "axr", "el")] == \
        ["aa", "aa", "sh", "sh", "ah", "ah", "ih", "hh", "er", "l"]
    assert [bench.common_phone(p) for p in ("h#", "pau", "epi", "sil", "SIL", "SPN", "+NSN+", "<sil>")] == ["sil"] * 8
    assert bench.common_phone("q") is None
    assert bench.common_phone("AH_B") == "ah" and bench.common_phone("T_E") == "t"  # position suffixes
    assert bench.common_phone("xyz") == "xyz"  # unknown: kept, matches nothing


def test_common_phones_merges_closures_drops_q_and_merges_silence():
    segs = [(0.0, 0.1, "h#"), (0.1, 0.15, "bcl"), (0.15, 0.2, "b"), (0.2, 0.3, "ao"), (0.3, 0.32, "q"),
            (0.32, 0.4, "tcl"), (0.4, 0.45, "pau"), (0.45, 0.5, "h#")]
    assert bench.common_phones(segs) == [(0.0, 0.1, "sil"), (0.1, 0.2, "b"), (0.2, 0.32, "aa"),
                                         (0.32, 0.4, "t"), (0.4, 0.5, "sil")]
    ours = [(0.0, 0.1, "sil"), (0.1, 0.15, "vcl"), (0.15, 0.2, "jh"), (0.2, 0.3, "cl"), (0.3, 0.4, "sil")]
    assert bench.common_phones(ours) == [(0.0, 0.1, "sil"), (0.1, 0.2, "jh"), (0.2, 0.3, "cl"), (0.3, 0.4, "sil")]
    assert bench.common_phones([(0.0, 0.1, "q"), (0.1, 0.2, "iy")]) == [(0.0, 0.2, "iy")]


def test_clean_word():
    assert [bench.clean_word(w) for w in ("and(2)", "Hello", "<sil>", "<s>", "</s>", "+NSN+", "[NOISE]")] == \
        ["and", "hello", None, None, None, None, None]


def test_tally_pairs_equal_units_and_measures_their_boundaries():
    ref = [(0.10, 0.20, "a"), (0.20, 0.30, "b"), (0.30, 0.40, "c")]
    hyp = [(0.11, 0.19, "a"), (0.19, 0.35, "x"), (0.35, 0.45, "c")]
    t = bench.Tally()
    t.add(ref, hyp)
    s = t.summary()
    assert (t.ref_units, t.matched, s["boundaries"]) == (3, 2, 4)
    assert s["mae_ms"] == pytest.approx((10 + 10 + 50 + 50) / 4)
    assert s["bias_ms"] == pytest.approx((10 - 10 + 50 + 50) / 4)
    assert s["within"] == pytest.approx([50.0, 50.0, 100.0])
    assert s["matched_pct"] == pytest.approx(200 / 3)
    assert bench.Tally().summary()["mae_ms"] is None


def test_identical_alignment_scores_zero():
    truth = bench.Alignment([(0.1, 0.3, "go")], [(0.0, 0.1, "h#"), (0.1, 0.15, "gcl"), (0.15, 0.2, "g"),
                                                  (0.2, 0.3, "ow"), (0.3, 0.4, "h#")])
    res = bench.SetResult("x", "test", ["u"], {"u": truth}, {}, 0.0)
    s = bench.score_set(res, {"u": truth})
    assert s["words"]["mae_ms"] == 0 and s["words"]["boundaries"] == 2
    assert s["phones"]["mae_ms"] == 0 and s["phones"]["boundaries"] == 4  # g, ow: silence not counted


def test_pick_utts_spreads_over_speakers():
    spk2utt = {"a": ["a_1", "a_2", "a_3"], "b": ["b_1"], "c": ["c_1", "c_2"]}
    assert bench.pick_utts(spk2utt, None) == ["a_1", "a_2", "a_3", "b_1", "c_1", "c_2"]
    assert bench.pick_utts(spk2utt, 4) == ["a_1", "a_2", "b_1", "c_1"]


def test_read_ctm(tmp_path):
    (tmp_path / "words.ctm").write_text("u1 1 0.170 0.100 Hello\nu1 1 0.270 0.200 world\n")
    assert bench.read_ctm(tmp_path / "words.ctm") == {"u1": [(0.17, pytest.approx(0.27), "hello"),
                                                            (0.27, pytest.approx(0.47), "world")]}


def test_truth_finder_timit_and_librispeech_layouts(tmp_path):
    spk = tmp_path / "corpus" / "TEST" / "DR1" / "FAKE0"
    spk.mkdir(parents=True)
    (spk / "SI1.WAV").write_bytes(b"")
    (spk / "SI1.PHN").write_text("0 1600 h#\n1600 3200 iy\n3200 4800 h#\n")
    (spk / "SI1.WRD").write_text("1600 3200 e\n")
    want = bench.Alignment([(0.1, 0.2, "e")], [(0.0, 0.1, "h#"), (0.1, 0.2, "iy"), (0.2, 0.3, "h#")])
    assert bench.TruthFinder().find("fake0_si1", spk / "SI1.WAV") == want
    assert bench.TruthFinder(tmp_path / "corpus").find("fake0_si1", None) == want
    assert bench.TruthFinder().find("fake0_si2", spk / "SI2.WAV") is None

    root = tmp_path / "libri"
    chap = root / "test" / "100" / "1000"
    chap.mkdir(parents=True)
    (root / "alignments").mkdir()
    (root / "alignments" / "test.phones").write_text("100-1000-0000 0 1600 h#\n100-1000-0000 1600 3200 iy\n"
                                                     "100-1000-0000 3200 4800 h#\n")
    (root / "alignments" / "test.words").write_text("100-1000-0000 1600 3200 E\n")
    assert bench.TruthFinder().find("100-1000-0000", chap / "100-1000-0000.flac") == want
    assert bench.TruthFinder(root).find("100-1000-0000", None) == want


def test_missing_inputs_exit_with_a_message(tmp_path):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--model", f"m={tmp_path / 'nope'}", "--data", str(tmp_path / "data"),
                    "--lang-words", str(tmp_path / "lang"), "--out", str(tmp_path / "t.md")])
    message = str(exc.value.code)
    assert "missing inputs" in message and "bundle.yaml" in message and "lexicon.txt" in message
    assert "feats.scp" in message


@pytest.mark.skipif(shutil.which("flite") is None, reason="Debian flite is not installed")
def test_pocketsphinx_aligner_on_flite_speech(tmp_path):
    from pocketsphinx_words import pocketsphinx_dict

    wav = tmp_path / "u.wav"
    out = subprocess.run(["flite", "-voice", "slt", "-t", "The birch canoe slid on the smooth planks.",
                          "-o", str(wav), "-psdur"], capture_output=True, text=True, check=True).stdout
    ends = [float(tok.split(":")[1]) for tok in out.split()]  # flite: phone:end time
    audio, rate = sf.read(wav, dtype="int16")
    assert rate == bench.TRUTH_RATE
    words = "the birch canoe slid on the smooth planks".split()
    pocketsphinx_dict(words, tmp_path / "ps.dict")
    aligner = bench.PocketsphinxAligner(tmp_path / "ps.dict")

    got, wide = aligner.align(audio[: rate // 4].tobytes(), words)  # far too short: a failure, no exception
    assert isinstance(got, str)
    got, wide = aligner.align(audio.tobytes(), words)  # the aligner still works after a failure
    assert isinstance(got, bench.Alignment) and not wide
    assert [w[2] for w in got.words] == words
    assert all(a[1] <= b[0] + 1e-9 for a, b in zip(got.words, got.words[1:]))
    assert got.words[0][0] == pytest.approx(ends[0], abs=0.05)  # speech starts after flite's pause
    assert ends[-2] - 0.05 < got.words[-1][1] <= len(audio) / rate  # ends after flite's last phone
    phones = bench.speech(bench.common_phones(got.phones))
    assert [p[2] for p in phones][:4] == ["dh", "ah", "b", "er"]
