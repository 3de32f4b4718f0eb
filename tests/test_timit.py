"""TIMIT preparation on small fake TIMIT trees with real SPHERE files."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.corpus.datadir import read_datadir
from asr.corpus.timit import find_timit_root, prepare_timit, read_txt
from asr.errors import DataError

RATE = 16000
# 61-phone segments in samples; the q between ix and n is merged into ix.
PHN_ROWS = [
    (0, 2000, "h#"), (2000, 2600, "sh"), (2600, 3400, "ix"), (3400, 3600, "q"),
    (3600, 4400, "n"), (4400, 4700, "dcl"), (4700, 5000, "d"), (5000, 6400, "h#"),
]
NUM_SAMPLES = 6400
PROMPT = "She had your dark, suit-case in \"greasy\" wash water all year."
TRAIN = {"dr1": ["fcjf0", "mdab0"], "dr2": ["faem0"]}
TEST = {"dr1": ["fdhc0", "mdac0"], "dr3": ["fadg0", "mjsw0"]}
UTTS = ["sa1", "sa2", "si1027", "sx127", "sx37"]


def _write_utt(spk_dir: Path, utt: str, upper: bool, rate: int = RATE) -> None:
    name = utt.upper() if upper else utt
    ext = (lambda e: e.upper()) if upper else (lambda e: e)
    rng = np.random.default_rng(len(utt))
    audio = (rng.standard_normal(NUM_SAMPLES) * 1000).astype(np.int16)
    sf.write(spk_dir / f"{name}.{ext('wav')}", audio, rate, format="NIST", subtype="PCM_16")
    phn = "".join(f"{s} {e} {p}\n" for s, e, p in PHN_ROWS)
    (spk_dir / f"{name}.{ext('phn')}").write_text(phn)
    (spk_dir / f"{name}.{ext('txt')}").write_text(f"0 {NUM_SAMPLES} {PROMPT}\n")
    (spk_dir / f"{name}.{ext('wrd')}").write_text("2000 4400 she\n")


def make_fake_timit(root: Path, upper: bool = True) -> Path:
    """A TIMIT tree: TRAIN/TEST, DRn/<SPK>/<UTT>.{WAV,PHN,TXT,WRD}; returns root."""
    case = (lambda s: s.upper()) if upper else (lambda s: s)
    for split, regions in (("train", TRAIN), ("test", TEST)):
        for region, speakers in regions.items():
            for spk in speakers:
                spk_dir = root / case(split) / case(region) / case(spk)
                spk_dir.mkdir(parents=True)
                for utt in UTTS:
                    _write_utt(spk_dir, utt, upper)
    return root


def _lists(tmp_path: Path, dev: list[str], test: list[str]) -> tuple[Path, Path]:
    (tmp_path / "dev.list").write_text("\n".join(dev) + "\n")
    (tmp_path / "test.list").write_text("\n".join(test) + "\n")
    return tmp_path / "dev.list", tmp_path / "test.list"


def _spk_dir(root: Path, *parts: str) -> Path:
    return root.joinpath(*(p.upper() for p in parts))


@pytest.mark.parametrize("upper", [True, False])
def test_prepare_upper_and_lower_case(tmp_path: Path, upper: bool, caplog: pytest.LogCaptureFixture) -> None:
    timit = make_fake_timit(tmp_path / "timit" / "data", upper=upper)
    dev, test = _lists(tmp_path, ["fadg0", "MJSW0"], ["fdhc0"])
    spk = timit / ("TRAIN/DR1/FCJF0" if upper else "train/dr1/fcjf0")
    (spk / "SI1027.WAV.wav").write_bytes(b"RIFF converted copy, ignored")
    with caplog.at_level(logging.INFO):
        out = prepare_timit(tmp_path / "timit", tmp_path / "out", dev, test)
    assert "'train': 9, 'dev': 6, 'test': 3" in caplog.text
    train = out["train"]
    assert train.utts[:3] == ["faem0_si1027", "faem0_sx127", "faem0_sx37"]
    assert len(train.utts) == 9 and not any("_sa" in u for u in train.utts)
    assert train.spk2gender == {"faem0": "f", "fcjf0": "f", "mdab0": "m"}
    assert sorted(out["dev"].spk2utt) == ["fadg0", "mjsw0"]
    assert out["test"].utts == ["fdhc0_si1027", "fdhc0_sx127", "fdhc0_sx37"]
    utt = "fcjf0_si1027"
    assert train.text[utt] == "she had your dark suit-case in greasy wash water all year"
    assert train.phone_text(utt) == ["sil", "sh", "ix", "n", "vcl", "d", "sil"]
    segs = train.phone_segments[utt]
    assert segs[2] == (2600 / RATE, 3600 / RATE, "ix"), "q is merged into the previous segment"
    assert segs[0][0] == 0.0 and segs[-1][1] == NUM_SAMPLES / RATE
    wav = Path(train.wav[utt])
    assert wav.is_absolute() and wav.name == ("SI1027.WAV" if upper else "si1027.wav")
    assert sf.info(str(wav)).format == "NIST", "audio is not converted"
    reread = read_datadir(tmp_path / "out" / "dev", require_phones=True)
    assert reread.utts == out["dev"].utts


def test_find_timit_root(tmp_path: Path) -> None:
    make_fake_timit(tmp_path / "TIMIT" / "TIMIT")
    root = tmp_path / "TIMIT" / "TIMIT"
    assert find_timit_root(root) == root
    assert find_timit_root(tmp_path / "TIMIT") == root
    with pytest.raises(DataError, match="does not exist"):
        find_timit_root(tmp_path / "missing")
    with pytest.raises(DataError, match="no TRAIN and TEST"):
        find_timit_root(tmp_path)
    (tmp_path / "half" / "TRAIN").mkdir(parents=True)
    with pytest.raises(DataError, match="no TRAIN and TEST"):
        find_timit_root(tmp_path / "half")


def test_read_txt(tmp_path: Path) -> None:
    p = tmp_path / "a.txt"
    p.write_text("0 46797 Don't ask me to carry an oily rag like that.\n")
    assert read_txt(p) == "don't ask me to carry an oily rag like that"
    p.write_text("Don't ask\n")
    with pytest.raises(DataError, match=r"a.txt: expected '<start> <end> <prompt>'"):
        read_txt(p)


@pytest.fixture
def timit(tmp_path: Path) -> Path:
    return make_fake_timit(tmp_path / "timit")


def _prepare(tmp_path: Path, timit: Path, dev: list[str] | None = None, test: list[str] | None = None, **kw):
    d, t = _lists(tmp_path, dev or ["fadg0"], test or ["fdhc0"])
    return prepare_timit(timit, tmp_path / "out", d, t, **kw)


def test_speaker_not_found(tmp_path: Path, timit: Path) -> None:
    with pytest.raises(DataError, match=r"test.list: speaker 'mxyz0' not found"):
        _prepare(tmp_path, timit, test=["fdhc0", "mxyz0"])
    with pytest.raises(DataError, match=r"speaker 'fdhc0' is also in"):
        _prepare(tmp_path, timit, dev=["fdhc0"], test=["fdhc0"])


def test_missing_phn_and_txt(tmp_path: Path, timit: Path) -> None:
    (_spk_dir(timit, "train", "dr1", "fcjf0") / "SX37.PHN").unlink()
    with pytest.raises(DataError, match=r"FCJF0/SX37.WAV: no .PHN file"):
        _prepare(tmp_path, timit)
    (_spk_dir(timit, "test", "dr1", "fdhc0") / "SI1027.TXT").unlink()
    (_spk_dir(timit, "train", "dr1", "fcjf0") / "SX37.WAV").unlink()
    with pytest.raises(DataError, match=r"FDHC0/SI1027.WAV: no .TXT file"):
        _prepare(tmp_path, timit)


@pytest.mark.parametrize(
    "phn, pattern",
    [
        ("0 2000 h#\n2000 oops sh\n", r"SI1027.PHN:2: expected '<start> <end> <phone>'"),
        ("0 2000 h#\n2000 6400\n", r"SI1027.PHN:2: expected"),
        ("0 2000 h#\n2000 9000 sh\n", r"SI1027.PHN:2: end offset 9000 is past the audio length \(6400 samples\)"),
        ("0 2000 h#\n1500 6400 sh\n", r"SI1027.PHN:2: segment 1500 6400 sh is out of order"),
        ("0 2000 h#\n2000 1000 sh\n", r"SI1027.PHN:2: .*out of order"),
        ("0 2000 h#\n2000 6400 xx\n", r"SI1027.PHN:2: unknown TIMIT phone 'xx'"),
        ("", r"SI1027.PHN: no phone segments"),
    ],
)
def test_bad_phn(tmp_path: Path, timit: Path, phn: str, pattern: str) -> None:
    (_spk_dir(timit, "test", "dr3", "fadg0") / "SI1027.PHN").write_text(phn)
    with pytest.raises(DataError, match=pattern):
        _prepare(tmp_path, timit)
    assert not (tmp_path / "out" / "train").exists(), "nothing is written when a split fails"


def test_phn_gap_and_zero_length(tmp_path: Path, timit: Path, caplog: pytest.LogCaptureFixture) -> None:
    phn = "0 2000 h#\n2000 2000 ix\n2000 2100 q\n2200 3000 sh\n3000 6400 h#\n"
    (_spk_dir(timit, "test", "dr1", "fdhc0") / "SX37.PHN").write_text(phn)
    out = _prepare(tmp_path, timit)
    assert out["test"].phone_segments["fdhc0_sx37"] == [(0.0, 0.1375, "sil"), (0.1375, 0.1875, "sh"), (0.1875, 0.4, "sil")]
    assert "gap before sh" in caplog.text and "zero-length" in caplog.text


def test_wrong_sample_rate(tmp_path: Path, timit: Path) -> None:
    spk = _spk_dir(timit, "train", "dr2", "faem0")
    _write_utt(spk, "sx127", upper=True, rate=8000)
    with pytest.raises(DataError, match=r"FAEM0/SX127.WAV: sample rate is 8000 Hz, expected 16000"):
        _prepare(tmp_path, timit)
    (spk / "SX127.WAV").write_bytes(b"not a sphere file" * 10)
    with pytest.raises(DataError, match=r"FAEM0/SX127.WAV: cannot read audio header"):
        _prepare(tmp_path, timit)


def test_expect_standard_counts(tmp_path: Path, timit: Path) -> None:
    with pytest.raises(DataError, match=r"counts \{'train': 9, 'dev': 3, 'test': 3\} differ .*3696"):
        _prepare(tmp_path, timit, expect_standard_counts=True)
    assert not (tmp_path / "out").exists()


def test_missing_timit(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="TIMIT directory does not exist"):
        _prepare(tmp_path, tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no TRAIN and TEST"):
        _prepare(tmp_path, tmp_path / "empty")


def test_shipped_speaker_lists() -> None:
    conf = Path(__file__).resolve().parents[1] / "recipes" / "timit" / "conf"
    dev = (conf / "dev_spk.list").read_text().split()
    test = (conf / "test_spk.list").read_text().split()
    assert len(dev) == 50 and len(test) == 24 and not set(dev) & set(test)
    assert all(s == s.lower() for s in dev + test)
    rows = (conf / "phones.60-48-39.map").read_text().splitlines()
    assert len(rows) == 61 and "q" in rows and "aa\taa\taa" in rows
