"""The pocketsphinx word peer: WER on flite speech, its dictionary writer, a hand-written ARPA LM."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.synth.prompts import model_paths
from asr.synth.tts import synthesize
from asr.score.per import score_words

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from pocketsphinx_words import (  # noqa: E402
    PS_PHONES,
    DictSources,
    arpa_unigrams,
    clean_words,
    decode_words,
    dictionary_words,
    flite_to_cmu,
    pocketsphinx_dict,
    word_decoder,
)

pytestmark = pytest.mark.skipif(shutil.which("flite") is None, reason="Debian flite is not installed")

#: Harvard sentences, every word in pocketsphinx's cmudict and LM.
SENTENCES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
]
VOICE = "slt"
#: WER measured here (flite slt, pocketsphinx 5.1.1, en-us.lm.bin, default lw 6.5):
#: 33.33% (16 / 48: 15 sub, 1 del, 0 ins); RTF 0.25-0.35 CPU s per audio s on a shared core.
MEASURED_WER = 33.33
WER_TOLERANCE = 8.5  # about 4 words of 48
#: A hand-written unigram LM: three words, each (and </s>) with probability 1/4.
TINY_ARPA = """\\data\\
ngram 1=5

\\1-grams:
-99 <s> 0
-0.6021 </s>
-0.6021 dark
-0.6021 blue
-0.6021 background

\\end\\
"""
TINY_WORDS = ["dark", "blue", "background"]


def _words(sentence: str) -> list[str]:
    return sentence.lower().rstrip(".").split()


@pytest.fixture(scope="module")
def flite_audio() -> dict[str, tuple[np.ndarray, int]]:
    return {f"u{i}": synthesize(s, VOICE, {}, where=f"sentence {i}")[:2] for i, s in enumerate(SENTENCES)}


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tiny_lm")
    (root / "lm.arpa").write_text(TINY_ARPA)
    assert pocketsphinx_dict(TINY_WORDS, root / "words.dict") == DictSources(3, 0, 0)
    return root / "lm.arpa", root / "words.dict"


@pytest.mark.slow  # kept out of the default suite's 5 minutes
def test_wer_of_pocketsphinx_own_model_on_flite_speech(flite_audio: dict) -> None:
    refs = {f"u{i}": _words(s) for i, s in enumerate(SENTENCES)}
    vocab = dictionary_words(model_paths()[1])
    assert all(w in vocab for ws in refs.values() for w in ws), "the sentences are in-vocabulary"
    decoder = word_decoder()
    hyps = {utt: decode_words(decoder, audio, rate) for utt, (audio, rate) in flite_audio.items()}
    assert all(w == w.lower() and "(" not in w and not w.startswith("<") for h in hyps.values() for w in h)
    result = score_words(refs, hyps)
    assert result.counts.ref_len == 48
    assert abs(result.counts.rate - MEASURED_WER) < WER_TOLERANCE, (result.counts, hyps)


def test_dictionary_from_cmudict_and_flite(tmp_path: Path) -> None:
    out = tmp_path / "d" / "words.dict"
    sources = pocketsphinx_dict(["read", "dark", "zorblaxity", "<unk>", "dark", "two words"], out)
    assert sources == DictSources(cmudict=2, flite=1, skipped=2)
    entries = [ln.split() for ln in out.read_text().splitlines()]
    assert ["read", "R", "EH", "D"] in entries and ["read(2)", "R", "IY", "D"] in entries
    made_up = [e for e in entries if e[0] == "zorblaxity"]
    assert len(made_up) == 1 and len(made_up[0]) > 5 and set(made_up[0][1:]) <= PS_PHONES, made_up
    assert not any(e[0].startswith("<") for e in entries)
    assert not list(out.parent.glob(".*tmp")), "written atomically"


def test_flite_phone_mapping_and_clean_words() -> None:
    assert flite_to_cmu(["hh", "ax", "l", "ow"]) == ["HH", "AH", "L", "OW"]
    assert flite_to_cmu(["b", "ah", "dx", "er"]) is None  # flap: no pocketsphinx phone
    assert clean_words(["<s>", "The", "and(2)", "[NOISE]", "<sil>", "+SPN+", "</s>"]) == ["the", "and"]


def test_tiny_arpa_lm_decodes(tiny_lm: tuple[Path, Path], flite_audio: dict) -> None:
    lm, dic = tiny_lm
    assert arpa_unigrams(lm) == ["<s>", "</s>"] + TINY_WORDS
    decoder = word_decoder(lm, dic, lw=6.5)
    audio, rate = flite_audio["u1"]  # "... the dark blue background"
    hyp = decode_words(decoder, audio, rate)
    assert hyp and set(hyp) <= set(TINY_WORDS) and hyp[-2:] == ["blue", "background"], hyp
    assert decode_words(decoder, np.zeros(rate, dtype=np.int16), rate) == []  # no hypothesis at all


def test_bad_lm_and_missing_files_name_the_file(tmp_path: Path, tiny_lm: tuple[Path, Path]) -> None:
    with pytest.raises(FileNotFoundError, match="nope.arpa"):
        word_decoder(tmp_path / "nope.arpa", tiny_lm[1])
    (tmp_path / "bad.arpa").write_text("not an ARPA file\n")
    with pytest.raises(RuntimeError, match="bad.arpa"):
        word_decoder(tmp_path / "bad.arpa", tiny_lm[1])


def test_main_on_a_data_dir(tmp_path: Path, tiny_lm: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    from asr.corpus.datadir import write_datadir
    from pocketsphinx_words import main

    wav, text, utt2spk = {}, {}, {}
    for i, sentence in enumerate(["Dark blue background.", "Blue background."]):
        utt = f"slt_u{i}"
        audio, rate, _ = synthesize(sentence, VOICE, {}, where=utt)
        sf.write(tmp_path / f"{utt}.wav", audio, rate)
        wav[utt], text[utt], utt2spk[utt] = str(tmp_path / f"{utt}.wav"), sentence.rstrip("."), "slt"
    write_datadir(tmp_path / "data", wav, text, utt2spk)
    lm, dic = tiny_lm
    report = tmp_path / "report.txt"
    assert main([str(tmp_path / "data"), "--lm", str(lm), "--dict", str(dic), "--report", str(report)]) == 0
    line = capsys.readouterr().out
    assert line.startswith("%WER ") and " RTF " in line, line
    assert float(line.split()[1]) <= 20.0, line  # measured 0.00 (5 words)
    rep = report.read_text()
    assert "| slt " in rep and "OOV tokens 0 of 5" in rep and rep.count("id: slt_u") == 2
