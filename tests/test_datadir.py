"""Kaldi data dirs: write, read back, and every validation error."""

from __future__ import annotations

from pathlib import Path

import pytest

from asr.corpus.datadir import (
    DataDir,
    read_datadir,
    read_scp,
    read_speaker_list,
    shortest_subset,
    subset_datadir,
    validate_datadir,
    write_datadir,
    write_scp,
)
from asr.errors import DataError

#: The phones the fixture's phone segments use (a stand-in for a lang dir's phone set).
PHONES = frozenset({"sil", "hh", "ah", "s"})


def _audio(tmp_path: Path, name: str) -> str:
    p = tmp_path / "audio" / f"{name}.wav"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"RIFF")  # existence is all the data dir checks
    return str(p)


@pytest.fixture
def contents(tmp_path: Path) -> dict:
    utts = {"spkb_u1": "spkb", "spka_u2": "spka", "spka_u1": "spka"}
    return dict(
        wav={u: _audio(tmp_path, u) for u in utts},
        text={"spka_u1": "hello world", "spka_u2": "", "spkb_u1": "a b c"},
        utt2spk=utts,
        spk2gender={"spka": "f", "spkb": "m"},
        phone_segments={
            "spka_u1": [(0.1, 0.25, "hh"), (0.0, 0.1, "sil"), (0.25, 0.4, "ah")],
            "spka_u2": [(0.0, 0.5, "sil")],
            "spkb_u1": [(0.0, 0.123456, "s"), (0.123456, 0.2, "sil")],
        },
    )


def _write(tmp_path: Path, contents: dict) -> DataDir:
    return write_datadir(tmp_path / "data", **contents)


def test_roundtrip_sorted(tmp_path: Path, contents: dict) -> None:
    d = _write(tmp_path, contents)
    assert d.utts == ["spka_u1", "spka_u2", "spkb_u1"]
    assert d.spk2utt == {"spka": ["spka_u1", "spka_u2"], "spkb": ["spkb_u1"]}
    assert d.phone_text("spka_u1") == ["sil", "hh", "ah"]
    assert d.text["spka_u2"] == ""
    lines = (tmp_path / "data" / "utt2spk").read_text().splitlines()
    assert lines == ["spka_u1 spka", "spka_u2 spka", "spkb_u1 spkb"]
    seg = (tmp_path / "data" / "phone_segments").read_text().splitlines()
    assert seg[0] == "spka_u1 0.00000 0.10000 sil"
    assert seg[-2] == "spkb_u1 0.00000 0.12346 s"
    assert (tmp_path / "data" / "phone_text").read_text().splitlines()[0] == "spka_u1 sil hh ah"
    again = read_datadir(tmp_path / "data", require_phones=True)
    assert again.phone_segments["spka_u1"][1] == (0.1, 0.25, "hh")
    assert again.wav == d.wav and again.text == d.text and again.spk2gender == d.spk2gender


def test_extra_files_ignored_and_optional_absent(tmp_path: Path, contents: dict) -> None:
    contents.pop("phone_segments")
    contents.pop("spk2gender")
    d = _write(tmp_path, contents)
    write_scp(tmp_path / "data" / "feats.scp", {"spka_u1": "feats.ark:12"})
    (tmp_path / "data" / "cmvn.scp").write_text("garbage line without sorting\n")
    again = read_datadir(tmp_path / "data")
    assert again.phone_segments == {} and again.spk2gender == {}
    assert again.utts == d.utts
    with pytest.raises(DataError, match="phone_segments.*missing"):
        read_datadir(tmp_path / "data", require_phones=True)
    with pytest.raises(DataError, match="no phone segments for utterance 'spka_u1'"):
        again.phone_text("spka_u1")


def test_scp_values_with_spaces(tmp_path: Path) -> None:
    write_scp(tmp_path / "x.scp", {"b": "two words", "a": "/p/a b.ark:7"})
    assert (tmp_path / "x.scp").read_text() == "a /p/a b.ark:7\nb two words\n"
    assert read_scp(tmp_path / "x.scp") == {"a": "/p/a b.ark:7", "b": "two words"}
    (tmp_path / "bad.scp").write_text("a x\nb\n")
    with pytest.raises(DataError, match=r"bad.scp:2: key 'b' has no value"):
        read_scp(tmp_path / "bad.scp")
    (tmp_path / "dup.scp").write_text("a x\na y\n")
    with pytest.raises(DataError, match=r"dup.scp:2: duplicate key 'a'"):
        read_scp(tmp_path / "dup.scp")
    with pytest.raises(DataError, match="missing"):
        read_scp(tmp_path / "none.scp")


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, text)
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    "fname, old, new, pattern",
    [
        ("utt2spk", "spka_u1 spka\nspka_u2 spka\n", "spka_u2 spka\nspka_u1 spka\n", r"utt2spk:2: key 'spka_u1' is not sorted"),
        ("text", "spka_u2\n", "spka_u1 again\n", r"text:2: duplicate key 'spka_u1'"),
        ("text", "spkb_u1 a b c\n", "", r"text.*utt2spk list different utterances.*'spkb_u1'"),
        ("wav.scp", "spkb_u1 ", "spkc_u1 ", r"wav.scp.*different utterances"),
        ("utt2spk", "spkb_u1 spkb", "spkb_u1 spkb extra", r"utt2spk:3: expected '<utt> <spk>'"),
        ("utt2spk", "spkb_u1", "spkb_u1 spkb\nxyz_u2", r"xyz"),
        ("spk2utt", "spka spka_u1 spka_u2", "spka spka_u1", r"spk2utt:1: utterances of speaker 'spka' disagree"),
        ("spk2gender", "spkb m", "spkb x", r"spk2gender:2: speaker 'spkb' has gender 'x'"),
        ("phone_segments", "0.25000 0.40000 ah", "0.25000 0.40000 zz", r"phone_segments:\d+: utterance 'spka_u1': unknown phone 'zz'"),
        ("phone_segments", "0.25000 0.40000 ah", "0.26000 0.40000 ah", r"not contiguous|contiguous"),
        ("phone_segments", "0.25000 0.40000 ah", "0.25000 0.20000 ah", r"negative or zero length"),
        ("phone_segments", "spka_u2 0.00000 0.50000 sil", "spka_u2 0.00000 sil", r"phone_segments:4: expected"),
        ("phone_segments", "spka_u1 0.00000 0.10000 sil\n", "", r"phone_text.*differs|contiguous"),
        ("phone_text", "spka_u1 sil hh ah", "spka_u1 sil hh", r"phone_text:1: utterance 'spka_u1': phone sequence differs"),
    ],
)
def test_validation_errors(tmp_path: Path, contents: dict, fname: str, old: str, new: str, pattern: str) -> None:
    _write(tmp_path, contents)
    _edit(tmp_path / "data" / fname, old, new)
    with pytest.raises(DataError, match=pattern):
        validate_datadir(tmp_path / "data", phones=PHONES)


def test_any_phone_is_accepted_without_a_phone_set(tmp_path: Path, contents: dict) -> None:
    contents["phone_segments"]["spka_u2"] = [(0.0, 0.5, "zz")]
    assert _write(tmp_path, contents).phone_text("spka_u2") == ["zz"]
    with pytest.raises(DataError, match=r"phone_segments:4: utterance 'spka_u2': unknown phone 'zz'"):
        validate_datadir(tmp_path / "data", phones=PHONES)


def test_utt_not_prefixed_by_speaker(tmp_path: Path, contents: dict) -> None:
    contents.pop("spk2gender")
    contents["utt2spk"]["spkb_u1"] = "spka"  # not prefixed, but sorted consistently: Kaldi accepts it
    assert _write(tmp_path / "ok", contents).spk2utt == {"spka": ["spka_u1", "spka_u2", "spkb_u1"]}
    contents["utt2spk"]["spka_u1"] = "spkb"  # sorted by utterance, speakers go spkb, spka: refused
    with pytest.raises(DataError, match=r"utt2spk:2: utterance 'spka_u2' of speaker 'spka' sorts after "
                                        r"'spka_u1' of speaker 'spkb'.*prefix each utterance id with its speaker id"):
        _write(tmp_path, contents)
    assert not (tmp_path / "data").exists(), "nothing is written when validation fails"


def test_missing_audio_and_pipes(tmp_path: Path, contents: dict) -> None:
    _write(tmp_path, contents)
    Path(contents["wav"]["spkb_u1"]).unlink()
    with pytest.raises(DataError, match=r"wav.scp:3: utterance 'spkb_u1': audio file .* does not exist"):
        read_datadir(tmp_path / "data")
    contents["wav"]["spkb_u1"] = "sox x.wav -t wav - |"  # a pipe: its program must exist, not its file
    assert _write(tmp_path, contents).wav["spkb_u1"] == "sox x.wav -t wav - |"
    contents["wav"]["spkb_u1"] = "no-such-program x.flac |"
    with pytest.raises(DataError, match=r"wav.scp:3: utterance 'spkb_u1': program 'no-such-program' .* not found"):
        _write(tmp_path, contents)


def test_missing_files_and_empty(tmp_path: Path, contents: dict) -> None:
    with pytest.raises(DataError, match="data dir does not exist"):
        read_datadir(tmp_path / "nope")
    _write(tmp_path, contents)
    (tmp_path / "data" / "text").unlink()
    with pytest.raises(DataError, match=r"text: required file is missing"):
        read_datadir(tmp_path / "data")
    with pytest.raises(DataError, match="empty"):
        write_datadir(tmp_path / "empty", wav={}, text={}, utt2spk={})
    empty = tmp_path / "empty2"
    empty.mkdir()
    for name in ("wav.scp", "text", "utt2spk", "spk2utt"):
        (empty / name).write_text("")
    with pytest.raises(DataError, match="empty"):
        read_datadir(empty)


def test_blank_line_is_malformed(tmp_path: Path, contents: dict) -> None:
    _write(tmp_path, contents)
    _edit(tmp_path / "data" / "wav.scp", "\nspkb_u1", "\n\nspkb_u1")
    with pytest.raises(DataError, match=r"wav.scp:3: empty line"):
        read_datadir(tmp_path / "data")


def test_write_rejects_bad_segments(tmp_path: Path, contents: dict) -> None:
    contents["phone_segments"]["spka_u2"] = [(0.0, 0.2, "sil"), (0.3, 0.5, "ah")]
    with pytest.raises(DataError, match="spka_u2.*contiguous"):
        _write(tmp_path, contents)
    contents["phone_segments"]["spka_u2"] = [(0.0, 0.5, "q")]
    with pytest.raises(DataError, match="unknown phone 'q'"):
        write_datadir(tmp_path / "data", **contents, phones=PHONES)


def test_subset_keeps_the_speakers_utterances_and_features(tmp_path: Path, contents: dict) -> None:
    d = _write(tmp_path, contents)
    write_scp(d.path / "feats.scp", {u: f"/ark/raw.ark:{i}" for i, u in enumerate(d.utts)})
    write_scp(d.path / "cmvn.scp", {"spka": "/ark/cmvn.ark:1", "spkb": "/ark/cmvn.ark:2"})  # per speaker
    (d.path / "feats.yaml").write_text("kind: fbank\n")
    sub = subset_datadir(d.path, tmp_path / "sub", ["spka"])
    assert sub.utts == ["spka_u1", "spka_u2"] and sub.spk2gender == {"spka": "f"}
    assert sub.phone_text("spka_u1") == ["sil", "hh", "ah"]
    assert read_scp(tmp_path / "sub/feats.scp") == {"spka_u1": "/ark/raw.ark:0", "spka_u2": "/ark/raw.ark:1"}
    assert read_scp(tmp_path / "sub/cmvn.scp") == {"spka": "/ark/cmvn.ark:1"}
    assert (tmp_path / "sub/feats.yaml").read_text() == "kind: fbank\n"
    validate_datadir(tmp_path / "sub", require_phones=True)
    with pytest.raises(DataError, match="no speaker spkc .*1 of 2 missing"):
        subset_datadir(d.path, tmp_path / "bad", ["spka", "spkc"])
    assert not (tmp_path / "bad").exists()


def test_shortest_subset_keeps_the_shortest_utterances(tmp_path: Path, contents: dict) -> None:
    import numpy as np
    import soundfile as sf

    for utt, seconds in (("spkb_u1", 0.3), ("spka_u2", 0.1), ("spka_u1", 0.2)):
        sf.write(contents["wav"][utt], np.zeros(int(16000 * seconds), dtype=np.float32), 16000)
    d = _write(tmp_path, contents)
    write_scp(d.path / "feats.scp", {u: f"/ark/raw.ark:{i}" for i, u in enumerate(d.utts)})
    sub = shortest_subset(d.path, tmp_path / "sub", 2)
    assert sub.utts == ["spka_u1", "spka_u2"] and sub.spk2gender == {"spka": "f"}
    assert read_scp(tmp_path / "sub/feats.scp") == {"spka_u1": "/ark/raw.ark:0", "spka_u2": "/ark/raw.ark:1"}
    assert shortest_subset(d.path, tmp_path / "all", 5).utts == d.utts
    with pytest.raises(DataError, match="subset of 0 utterances"):
        shortest_subset(d.path, tmp_path / "none", 0)


def test_speaker_list_errors(tmp_path: Path) -> None:
    (tmp_path / "ok").write_text("# first\nSPKB\n\nspka  # comment\n")
    assert read_speaker_list(tmp_path / "ok") == ["spkb", "spka"]
    (tmp_path / "dup").write_text("spka\nSPKA\n")
    with pytest.raises(DataError, match="duplicate"):
        read_speaker_list(tmp_path / "dup")
    with pytest.raises(DataError, match="empty"):
        (tmp_path / "empty").write_text("# nothing\n")
        read_speaker_list(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        read_speaker_list(tmp_path / "absent")
