"""The pocketsphinx peer decodes real flite speech at the measured PER."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.audio import resample_audio
from asr.phones.timit import MAP_61_48, PHONES39, fold_to_39
from asr.score.per import score_phones

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from pocketsphinx_peer import cmu_to_39, decode_phones, pocketsphinx_phone_decoder  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("flite") is None, reason="Debian flite is not installed")

SENTENCES = [
    "She had your dark suit in greasy wash water all year.",
    "Don't ask me to carry an oily rag like that.",
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
]
VOICE = "slt"
RATE = 16000
#: PER measured here (flite slt, pocketsphinx 5.1.1, lw 2.0): 33.73% (113 / 335).
MEASURED_PER = 33.73
PER_TOLERANCE = 6.0


def flite_phones_39(text: str, wav: Path, voice: str = VOICE) -> list[str]:
    """Synthesize ``text`` to ``wav`` with flite; return its phones folded to 39."""
    out = subprocess.run(
        ["flite", "-voice", voice, "-t", text, "-o", str(wav), "-psdur"],
        capture_output=True, text=True, check=True,
    ).stdout
    phones = [tok.split(":")[0] for tok in out.split()]
    return fold_to_39([p for p in phones if p in MAP_61_48], where=f"flite {text!r}")


@pytest.fixture(scope="module")
def flite_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[str]]]:
    root = tmp_path_factory.mktemp("flite")
    return {f"u{i:02d}": (root / f"u{i:02d}.wav", flite_phones_39(s, root / f"u{i:02d}.wav"))
            for i, s in enumerate(SENTENCES)}


@pytest.fixture(scope="module")
def decoder():
    return pocketsphinx_phone_decoder()


def test_per_on_flite_speech(flite_corpus: dict, decoder) -> None:
    refs, hyps = {}, {}
    for utt, (wav, ref) in flite_corpus.items():
        audio, rate = sf.read(wav, dtype="int16")
        assert rate == RATE
        refs[utt], hyps[utt] = ref, decode_phones(decoder, audio, rate)
        assert set(hyps[utt]) <= set(PHONES39), hyps[utt]
        assert hyps[utt][0] == "sil" and hyps[utt][-1] == "sil"
    result = score_phones(refs, hyps)
    assert result.counts.ref_len == 335
    assert abs(result.counts.rate - MEASURED_PER) < PER_TOLERANCE, result.counts
    assert result.counts.rate < 65.0


def test_float_and_resampled_input(flite_corpus: dict, decoder) -> None:
    wav, ref = flite_corpus["u00"]
    audio, rate = sf.read(wav, dtype="float32")
    as_int = decode_phones(decoder, (audio * 32767).astype(np.int16), rate)
    assert decode_phones(decoder, audio, rate) == as_int
    audio8k = resample_audio(audio, rate, 8000)
    hyp8k = decode_phones(decoder, audio8k, 8000)
    assert score_phones({"u": ref}, {"u": hyp8k}).counts.rate < 65.0


def test_cmu_mapping_and_bad_input(decoder) -> None:
    assert cmu_to_39(["SIL", "AO", "ZH", "+NSN+", "+SPN+", "hh", "ER"]) == ["sil", "aa", "sh", "hh", "er"]
    with pytest.raises(ValueError, match="mono"):
        decode_phones(decoder, np.zeros((100, 2), dtype=np.int16), RATE)
    with pytest.raises(ValueError, match="empty"):
        decode_phones(decoder, np.zeros(0, dtype=np.int16), RATE)


def test_main_on_a_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from asr.corpus.datadir import write_datadir
    from asr.phones.timit import fold_61_to_48
    from pocketsphinx_peer import main

    wav, text, utt2spk, segs = {}, {}, {}, {}
    for i, sentence in enumerate(SENTENCES[:3]):
        utt = f"slt_u{i}"
        path = tmp_path / f"{utt}.wav"
        out = subprocess.run(["flite", "-voice", VOICE, "-t", sentence, "-o", str(path), "-psdur"],
                             capture_output=True, text=True, check=True).stdout
        start, segs[utt] = 0.0, []
        for tok in out.split():
            phone, end = tok.split(":")
            segs[utt].append((start, float(end), fold_61_to_48([phone])[0]))
            start = float(end)
        wav[utt], text[utt], utt2spk[utt] = str(path), sentence.lower(), "slt"
    write_datadir(tmp_path / "data", wav, text, utt2spk, phone_segments=segs)
    assert main([str(tmp_path / "data"), "--report", str(tmp_path / "report.txt")]) == 0
    line = capsys.readouterr().out
    assert line.startswith("%PER ") and "RTF" in line
    assert 20.0 < float(line.split()[1]) < 50.0, line
    assert (tmp_path / "report.txt").read_text().count("id: slt_u") == 3
