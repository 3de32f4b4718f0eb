"""Corpora as they come: Kaldi data dirs (pipes, segments, validation), the
LibriSpeech and aligner-style importers, and the synthetic corpus in both layouts.

The synthetic corpus is generated once (tiny, TIMIT layout, ~7 s on 2 cores);
its LibriSpeech layout is made from that very TIMIT layout (what
``generate_corpus(layout="librispeech")`` does with its work copy), so no speech
is synthesized twice. Every other tree is written here with soundfile.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.cli import main
from asr.synth import corpus as synth
from asr.corpus.datadir import (
    RecoSegment,
    read_datadir,
    read_utterance_audio,
    recording_seconds,
    utt2dur,
    validate_datadir,
    write_datadir,
)
from asr.corpus.layouts import import_aligner_dir, import_corpus, import_kaldi_dir, import_librispeech
from asr.synth.librispeech import ALIGNMENT_DIR, SPEAKERS_TXT, read_alignment_file, write_librispeech_layout
from asr.corpus.timit import prepare_timit
from asr.errors import AudioError, DataError

RATE = 16000
HAVE_SOX = shutil.which("sox") is not None


def _tone(n: int = 1600, seed: int = 0) -> np.ndarray:
    """(n,) int16 noise: distinct per seed."""
    return (np.random.default_rng(seed).standard_normal(n) * 3000).astype(np.int16)


def _wav(path: Path, n: int = 1600, seed: int = 0, fmt: str = "WAV") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), _tone(n, seed), RATE, format=fmt, subtype="PCM_16")
    return path


# ---------------------------------------------------------------- the synthetic corpus in both layouts


@pytest.fixture(scope="module")
def timit_corpus(tiny_synth_corpus: Path) -> Path:
    return tiny_synth_corpus


@pytest.fixture(scope="module")
def libri_corpus(timit_corpus: Path, tmp_path_factory) -> Path:
    """``generate_corpus(layout="librispeech")``, its TIMIT-layout work copy already made."""
    out = tmp_path_factory.mktemp("synth") / "libri"
    shutil.copytree(timit_corpus, out / synth.TIMIT_WORK_DIR)
    assert synth.generate_corpus(out, "tiny", seed=0, layout="librispeech", neural_voices=()) == out
    return out


def test_librispeech_layout_files(libri_corpus: Path) -> None:
    spec = synth.SIZES["tiny"]
    assert not (libri_corpus / synth.TIMIT_WORK_DIR).exists(), "the work copy is removed"
    parts = [p for p in synth.PARTITIONS if spec.speakers(p) and p not in synth.NEURAL_PARTITIONS]  # fixture: no neural
    assert sorted(p.name for p in libri_corpus.iterdir() if p.is_dir()) == sorted([*parts, ALIGNMENT_DIR])
    for part in parts:
        speakers = sorted(p.name for p in (libri_corpus / part).iterdir())
        assert len(speakers) == spec.speakers(part) and all(s.isdigit() for s in speakers)
        for flac in (libri_corpus / part).glob("*/*/*.flac"):
            info = sf.info(str(flac))
            assert (info.format, info.subtype, info.samplerate, info.channels) == ("FLAC", "PCM_16", RATE, 1)
        assert len(list((libri_corpus / part).glob("*/*/*.flac"))) == spec.speakers(part) * spec.utts_per_speaker
        assert not list((libri_corpus / part).rglob("*.PHN")), "no phone labels beside the audio"
    marker = (libri_corpus / synth.COMPLETE_FILE).read_text()
    assert '"layout": "librispeech"' in marker
    with pytest.raises(DataError, match="'layout': 'librispeech'.*'layout': 'timit'"):
        synth.generate_corpus(libri_corpus, "tiny", seed=0, neural_voices=())  # the TIMIT layout asked of a LibriSpeech dir
    assert synth.generate_corpus(libri_corpus, "tiny", seed=0, layout="librispeech", neural_voices=()) == libri_corpus


def _timit_number(utt: str) -> int:
    """``mabc0_sx12`` -> 12."""
    return int(utt.rsplit("_", 1)[1][2:])


def _speaker_names(libri_corpus: Path) -> dict[str, str]:
    """LibriSpeech speaker -> TIMIT-layout speaker (lower case), from SPEAKERS.TXT's NAME."""
    out = {}
    for line in (libri_corpus / SPEAKERS_TXT).read_text().splitlines():
        if not line.startswith(";"):
            fields = [f.strip() for f in line.split("|")]
            out[fields[0]] = fields[4].split()[0].lower()
    return out


def test_both_layouts_import_to_the_same_utterances(timit_corpus: Path, libri_corpus: Path, tmp_path: Path) -> None:
    """Mapping: LibriSpeech speaker -> TIMIT speaker by SPEAKERS.TXT's NAME; a speaker's
    utterances NNNN = 0, 1, ... -> its TIMIT utterances in increasing number. Same
    partition, count, words (upper-cased) and samples."""
    lists = {p: timit_corpus / name for p, name in synth.SPK_LISTS.items() if (timit_corpus / name).is_file()}
    timit = prepare_timit(timit_corpus, tmp_path / "timit", lists["dev"], lists["test"],
                          extra_test={p: lists[p] for p in ("test_unseen", "dev_unseen")})
    names = _speaker_names(libri_corpus)
    for part in ("train", "dev", "test", "test_unseen", "dev_unseen"):
        libri = import_librispeech(libri_corpus / part, tmp_path / "libri" / part)
        ref = timit[part]
        assert sorted(names[s] for s in libri.spk2utt) == sorted(ref.spk2utt)
        assert {names[s]: g for s, g in libri.spk2gender.items()} == ref.spk2gender
        for spk, utts in libri.spk2utt.items():
            ref_utts = sorted(ref.spk2utt[names[spk]], key=_timit_number)
            assert len(utts) == len(ref_utts)
            for utt, ref_utt in zip(utts, ref_utts):
                assert libri.text[utt] == ref.text[ref_utt].upper()
                np.testing.assert_array_equal(read_utterance_audio(libri, utt, RATE),
                                              read_utterance_audio(ref, ref_utt, RATE))


def test_alignment_side_files_hold_the_timit_labels(timit_corpus: Path, libri_corpus: Path) -> None:
    names = _speaker_names(libri_corpus)
    phones = read_alignment_file(libri_corpus / ALIGNMENT_DIR / "train.phones")
    words = read_alignment_file(libri_corpus / ALIGNMENT_DIR / "train.words")
    trans = {}
    for path in (libri_corpus / "train").glob("*/*/*.trans.txt"):
        trans |= dict(line.split(" ", 1) for line in path.read_text().splitlines())
    assert set(phones) == set(words) == set(trans)
    for utt in sorted(phones)[:: 7]:
        spk, _, nnnn = utt.split("-")
        stem = sorted(timit_corpus.glob(f"TRAIN/DR*/{names[spk].upper()}/*.PHN"),
                      key=lambda p: int(p.stem[2:]))[int(nnnn)]
        rows = [tuple(line.split()) for line in stem.read_text().splitlines()]
        assert phones[utt] == [(int(s), int(e), p) for s, e, p in rows]
        assert phones[utt][-1][1] == sf.info(str(next(libri_corpus.glob(f"train/*/*/{utt}.flac")))).frames
        assert [w for _, _, w in words[utt]] == trans[utt].split()


def test_librispeech_conversion_resumes(timit_corpus: Path, tmp_path: Path) -> None:
    speakers = synth.corpus_speakers("tiny", 0)
    write_librispeech_layout(timit_corpus, tmp_path, speakers)
    flacs = sorted(tmp_path.glob("*/*/*/*.flac"))
    lost, kept = flacs[3], flacs[0]
    data = lost.read_bytes()
    lost.unlink()
    mtime = kept.stat().st_mtime_ns
    write_librispeech_layout(timit_corpus, tmp_path, speakers)
    assert lost.read_bytes() == data and kept.stat().st_mtime_ns == mtime


# ---------------------------------------------------------------- LibriSpeech importer


def _libri(root: Path, spk: str = "19", chapter: str = "198", n: int = 3, sex: str = "F") -> Path:
    """ROOT/SPEAKERS.TXT and ROOT/subset/SPK/CHAPTER/{SPK-CHAPTER-NNNN.flac, .trans.txt}; returns the subset."""
    chap = root / "subset" / spk / chapter
    lines = []
    for k in range(n):
        utt = f"{spk}-{chapter}-{k:04d}"
        _wav(chap / f"{utt}.flac", seed=k, fmt="FLAC")
        lines.append(f"{utt} WORD{k}  AND   MORE\n")
    (chap / f"{spk}-{chapter}.trans.txt").write_text("".join(lines))
    speakers = root / SPEAKERS_TXT
    old = speakers.read_text() if speakers.is_file() else "; comment\n;ID |SEX| SUBSET |MINUTES| NAME\n"
    speakers.write_text(old + f"{spk:<4} | {sex} | subset | 1.00 | Some | Name\n")
    return root / "subset"


def test_librispeech_import(tmp_path: Path) -> None:
    subset = _libri(tmp_path / "ls")
    _libri(tmp_path / "ls", spk="200", chapter="7", n=1, sex="M")
    dd = import_librispeech(subset, tmp_path / "data")
    assert dd.utts == ["19-198-0000", "19-198-0001", "19-198-0002", "200-7-0000"]
    assert dd.text["19-198-0001"] == "WORD1 AND MORE", "whitespace collapsed, case kept"
    assert dd.spk2gender == {"19": "f", "200": "m"} and dd.utt2spk["200-7-0000"] == "200"
    again = import_librispeech(tmp_path / "ls", tmp_path / "data2", lowercase=True)  # the parent of one subset
    assert again.utts == dd.utts and again.text["19-198-0001"] == "word1 and more"
    (tmp_path / "ls" / SPEAKERS_TXT).unlink()
    assert import_librispeech(subset, tmp_path / "data3").spk2gender == {}
    (tmp_path / "ls" / "other" / "1" / "2").mkdir(parents=True)
    (tmp_path / "ls" / "other" / "1" / "2" / "1-2.trans.txt").write_text("")
    with pytest.raises(DataError, match=r"ls: holds several LibriSpeech subsets \(other, subset\)"):
        import_librispeech(tmp_path / "ls", tmp_path / "data4")


def test_librispeech_audio_without_transcript(tmp_path: Path, caplog) -> None:
    subset = _libri(tmp_path)
    _wav(subset / "19" / "198" / "19-198-0007.flac", fmt="FLAC")
    with pytest.raises(DataError, match=r"19-198-0007\.flac: no transcript for it in .*19-198\.trans\.txt"):
        import_librispeech(subset, tmp_path / "data")
    assert not (tmp_path / "data").exists()
    with caplog.at_level(logging.WARNING):
        dd = import_librispeech(subset, tmp_path / "data", skip_incomplete=True)
    assert len(dd.utts) == 3 and "skipped 1 incomplete utterance" in caplog.text


@pytest.mark.parametrize("edit, pattern", [
    # transcript without audio
    (lambda c: (c / "19-198-0001.flac").unlink(), r"19-198\.trans\.txt:2: transcript of 19-198-0001 has no audio"),
    # unreadable audio
    (lambda c: (c / "19-198-0002.flac").write_bytes(b"not flac"), r"19-198-0002\.flac: cannot read audio"),
    # duplicate utterance ids
    (lambda c: (c / "19-198.trans.txt").write_text("19-198-0000 A\n19-198-0001 B\n19-198-0000 C\n"),
     r"19-198\.trans\.txt:3: duplicate utterance id '19-198-0000' \(first on line 1\)"),
    # non-UTF-8 text
    (lambda c: (c / "19-198.trans.txt").write_bytes(b"19-198-0000 A\n19-198-0001 CAF\xc9\n"),
     r"19-198\.trans\.txt:2: not valid UTF-8"),
    # an id of another chapter
    (lambda c: (c / "19-198.trans.txt").write_text("19-199-0000 A\n"), r"19-198\.trans\.txt:1: utterance id '19-199-0000'"),
])
def test_librispeech_errors(tmp_path: Path, edit, pattern: str) -> None:
    subset = _libri(tmp_path)
    edit(subset / "19" / "198")
    with pytest.raises(DataError, match=pattern):
        import_librispeech(subset, tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_empty_and_missing_corpora(tmp_path: Path) -> None:
    (tmp_path / "ls" / "19" / "198").mkdir(parents=True)
    (tmp_path / "ls" / "19" / "198" / "19-198.trans.txt").write_text("")
    with pytest.raises(DataError, match=r"ls: empty corpus"):
        import_librispeech(tmp_path / "ls", tmp_path / "data")
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match=r"flat: empty corpus"):
        import_aligner_dir(tmp_path / "flat", tmp_path / "data")
    with pytest.raises(DataError, match=r"nope: corpus directory does not exist"):
        import_librispeech(tmp_path / "nope", tmp_path / "data")


# ---------------------------------------------------------------- aligner-style dirs


def test_aligner_flat_and_speaker_dirs(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    _wav(flat / "ab01.wav", seed=1)
    (flat / "ab01.lab").write_text("  Hello   World\n again \n")
    _wav(flat / "ab02.flac", seed=2, fmt="FLAC")
    (flat / "ab02.txt").write_text("Second one")
    _wav(flat / "cd my file.wav", seed=3)
    (flat / "cd my file.lab").write_text("third")
    (flat / "notes.md").write_text("ignored")
    dd = import_aligner_dir(flat, tmp_path / "d1")
    assert dd.utt2spk == {"ab01": "ab01", "ab02": "ab02", "cd_my_file": "cd_my_file"}
    assert dd.text["ab01"] == "Hello World again"
    dd = import_aligner_dir(flat, tmp_path / "d2", speaker_chars=2)
    assert dd.spk2utt == {"ab": ["ab01", "ab02"], "cd": ["cd_my_file"]}
    spk = tmp_path / "spk"
    for s in ("anna", "bob"):
        _wav(spk / s / "take1.wav", seed=len(s))
        (spk / s / "take1.lab").write_text(f"{s} says hi")
    _wav(spk / "bob" / "more" / "take2.wav")
    (spk / "bob" / "more" / "take2.txt").write_text("nested")
    dd = import_aligner_dir(spk, tmp_path / "d3")
    assert dd.spk2utt == {"anna": ["anna-take1"], "bob": ["bob-take1", "bob-take2"]}
    assert dd.wav["bob-take2"] == str(spk / "bob" / "more" / "take2.wav")


@pytest.mark.parametrize("files, pattern", [
    ({"a.wav": None}, r"a\.wav: no transcript \(\.lab or \.txt\) named a beside it"),
    ({"a.wav": None, "a.lab": "x", "b.txt": "y"}, r"b\.txt: no audio file \(\.wav or \.flac\) named b"),
    ({"a.wav": None, "a.flac": None, "a.lab": "x"}, r"a\.wav: a\.flac is beside it"),
    ({"a.wav": None, "a.lab": "x", "a.txt": "y"}, r"a\.txt: a\.lab is beside it"),
    ({"a.wav": b"RIFFjunk", "a.lab": "x"}, r"a\.wav: cannot read audio"),
    ({"a.wav": None, "a.lab": b"fine\ncaf\xe9\n"}, r"a\.lab:2: not valid UTF-8"),
    ({"a b.wav": None, "a b.lab": "x", "a_b.wav": None, "a_b.lab": "y"},
     r"a_b\.wav: utterance id 'a_b' is also the id of .*a b\.wav"),
])
def test_aligner_errors(tmp_path: Path, files: dict, pattern: str) -> None:
    (tmp_path / "c").mkdir()
    for name, content in files.items():
        path = tmp_path / "c" / name
        if content is None:
            _wav(path, fmt="FLAC" if name.endswith(".flac") else "WAV")
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    with pytest.raises(DataError, match=pattern):
        import_aligner_dir(tmp_path / "c", tmp_path / "data")
    assert not (tmp_path / "data").exists()


# ---------------------------------------------------------------- Kaldi data dirs


def _kaldi(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


@pytest.fixture
def kaldi_files(tmp_path: Path) -> dict[str, str]:
    a, b = _wav(tmp_path / "a.wav", seed=1), _wav(tmp_path / "b.wav", seed=2)
    return {"wav.scp": f"s1-u1 {a}\ns1-u2 {b}\ns2-u1 {a}\n", "text": "s1-u1 hello\ns1-u2 \ns2-u1 a b\n",
            "utt2spk": "s1-u1 s1\ns1-u2 s1\ns2-u1 s2\n", "spk2utt": "s1 s1-u1 s1-u2\ns2 s2-u1\n"}


@pytest.mark.parametrize("name, old, new, pattern", [
    ("wav.scp", "s1-u1 {a}\ns1-u2", "s1-u2 {b}\ns1-u1 {a}\ns1-u2", r"wav\.scp:2: key 's1-u1' is not sorted"),
    ("text", "s2-u1 a b\n", "s2-u1 a b\ns1-u1 again\n", r"text:4: duplicate key 's1-u1' \(first on line 1\)"),
    ("spk2utt", "s1 s1-u1 s1-u2", "s1 s1-u1", r"spk2utt:1: utterances of speaker 's1' disagree with utt2spk"),
    ("utt2spk", "s2-u1 s2", "s2-u1 s0", r"utt2spk:3: utterance 's2-u1' of speaker 's0' sorts after 's1-u2' of "
                                       r"speaker 's1'.*prefix each utterance id with its speaker id"),
    ("text", "a b", "caf\udce9", r"text:3: not valid UTF-8"),
    ("wav.scp", "s2-u1 {a}", "s2-u1 no-such-program {a} |", r"wav\.scp:3: utterance 's2-u1': program 'no-such-program'"),
])
def test_kaldi_validation_errors(tmp_path: Path, kaldi_files: dict, name: str, old: str, new: str,
                                 pattern: str) -> None:
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    old, new = old.format(a=a, b=b), new.format(a=a, b=b)
    assert old in kaldi_files[name]
    kaldi_files[name] = kaldi_files[name].replace(old, new)
    d = _kaldi(tmp_path / "data", {k: v for k, v in kaldi_files.items() if k != name})
    (d / name).write_bytes(kaldi_files[name].encode("utf-8", errors="surrogateescape"))
    with pytest.raises(DataError, match=pattern):
        validate_datadir(d)
    with pytest.raises(DataError, match=pattern):
        import_kaldi_dir(d, tmp_path / "out")


def test_kaldi_import_makes_paths_absolute(tmp_path: Path, kaldi_files: dict, monkeypatch) -> None:
    kaldi_files["wav.scp"] = "s1-u1 a.wav\ns1-u2 b.wav\ns2-u1 a.wav\n"
    kaldi_files["text"] = "s1-u1  Hello\tthere \ns1-u2\ns2-u1 a b\n"
    d = _kaldi(tmp_path / "data", kaldi_files)
    monkeypatch.chdir(tmp_path)
    dd = import_corpus("kaldi", Path("data"), tmp_path / "out")
    assert dd.wav["s1-u1"] == str(tmp_path / "a.wav") and dd.text == {"s1-u1": "Hello there", "s1-u2": "",
                                                                       "s2-u1": "a b"}
    assert utt2dur(dd) == pytest.approx({"s1-u1": 0.1, "s1-u2": 0.1, "s2-u1": 0.1})
    assert read_datadir(d).wav["s1-u1"] == "a.wav", "the source is left as it was"


def _segments_dir(tmp_path: Path, segments: str) -> Path:
    _wav(tmp_path / "rec1.wav", n=RATE, seed=5)
    _wav(tmp_path / "rec2.wav", n=RATE // 2, seed=6)
    return _kaldi(tmp_path / "data", {
        "wav.scp": f"rec1 {tmp_path / 'rec1.wav'}\nrec2 {tmp_path / 'rec2.wav'}\n",
        "segments": segments, "text": "s1-a x\ns1-b y\ns2-a z\n",
        "utt2spk": "s1-a s1\ns1-b s1\ns2-a s2\n", "spk2utt": "s1 s1-a s1-b\ns2 s2-a\n"})


def test_segments_cut_their_recordings(tmp_path: Path) -> None:
    d = _segments_dir(tmp_path, "s1-a rec1 0.0 0.25\ns1-b rec1 0.5 -1\ns2-a rec2 0.1 0.2\n")
    dd = read_datadir(d)
    assert dd.segments["s1-b"] == RecoSegment("rec1", 0.5, None) and dd.recording("s2-a") == "rec2"
    full = sf.read(str(tmp_path / "rec1.wav"), dtype="float32")[0]
    np.testing.assert_array_equal(read_utterance_audio(dd, "s1-a", RATE), full[:4000])
    np.testing.assert_array_equal(read_utterance_audio(dd, "s1-b", RATE), full[8000:])
    assert len(read_utterance_audio(dd, "s2-a", RATE)) == 1600
    assert utt2dur(dd) == pytest.approx({"s1-a": 0.25, "s1-b": 0.5, "s2-a": 0.1})
    out = import_kaldi_dir(d, tmp_path / "copy")
    assert (tmp_path / "copy" / "segments").read_text().splitlines()[1] == "s1-b rec1 0.50000 -1"
    assert out.segments == dd.segments


@pytest.mark.parametrize("segments, pattern", [
    ("s1-a rec1 0.0 0.25\ns1-b rec9 0.5 -1\ns2-a rec2 0.1 0.2\n", r"segments:2: utterance 's1-b': recording 'rec9' is not in"),
    ("s1-a rec1 0.3 0.25\ns1-b rec1 0.5 -1\ns2-a rec2 0.1 0.2\n", r"segments:1: utterance 's1-a': end 0.25 s is not after start"),
    ("s1-a rec1 0.0 0.25\ns1-b rec1 0.5 0.5\ns2-a rec2 0.1 0.2\n", r"segments:2: utterance 's1-b': end 0.5 s is not after"),
    ("s1-a rec1 0.0 0.25\ns1-b rec1 0.5 -1\ns2-a rec1 0.1 0.2\n", r"wav\.scp:2: recording 'rec2' has no utterance in"),
    ("s1-a rec1 0.0 x\n", r"segments:1: times '0.0' 'x' are not numbers"),
])
def test_segments_errors(tmp_path: Path, segments: str, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        read_datadir(_segments_dir(tmp_path, segments))


def test_segment_past_the_recording(tmp_path: Path) -> None:
    dd = read_datadir(_segments_dir(tmp_path, "s1-a rec1 0.0 0.25\ns1-b rec1 0.5 -1\ns2-a rec2 0.4 1.5\n"))
    with pytest.raises(DataError, match=r"segments: utterance s2-a: segment ends at 1.5 s, past the end"):
        read_utterance_audio(dd, "s2-a", RATE)


@pytest.mark.skipif(not HAVE_SOX, reason="sox is not installed")
def test_wav_scp_pipes(tmp_path: Path) -> None:
    flac = _wav(tmp_path / "x.flac", seed=3, fmt="FLAC")
    wav = _wav(tmp_path / "y.wav", seed=4)
    d = write_datadir(tmp_path / "data", {"s-a": f"sox {flac} -t wav - |", "s-b": f"cat {wav} |",
                                          "s-c": f"sox {tmp_path / 'missing.flac'} -t wav - |"},
                      {"s-a": "a", "s-b": "b", "s-c": "c"}, {"s-a": "s", "s-b": "s", "s-c": "s"})
    np.testing.assert_array_equal(read_utterance_audio(d, "s-a", RATE), sf.read(str(flac), dtype="float32")[0])
    np.testing.assert_array_equal(read_utterance_audio(d, "s-b", RATE), sf.read(str(wav), dtype="float32")[0])
    with pytest.raises(DataError, match=r"utterance s-c: command 'sox .*missing\.flac -t wav -' failed with exit status"):
        read_utterance_audio(d, "s-c", RATE)
    with pytest.raises(AudioError, match=r"utterance s-a: command 'sox .*': sample rate is 16000 Hz, expected 8000"):
        read_utterance_audio(d, "s-a", 8000)
    assert recording_seconds(d.wav["s-a"]) == pytest.approx(0.1)  # a pipe is run to time it
    with pytest.raises(DataError, match=r"wav\.scp: s-c: command 'sox .*' failed"):
        utt2dur(d)


def test_failing_pipe_names_utterance_and_command(tmp_path: Path) -> None:
    d = write_datadir(tmp_path / "data", {"s-a": "false |", "s-b": "true |"}, {"s-a": "", "s-b": ""},
                      {"s-a": "s", "s-b": "s"})
    with pytest.raises(DataError, match=r"utterance s-a: command 'false' failed with exit status 1"):
        read_utterance_audio(d, "s-a", RATE)
    with pytest.raises(DataError, match=r"utterance s-b: command 'true' wrote no audio"):
        read_utterance_audio(d, "s-b", RATE)


# ---------------------------------------------------------------- the command


def test_import_corpus_command(tmp_path: Path, capsys) -> None:
    _wav(tmp_path / "c" / "spk1" / "a.wav")
    (tmp_path / "c" / "spk1" / "a.lab").write_text("Hi")
    assert main(["import-corpus", "aligner", str(tmp_path / "c"), str(tmp_path / "out")]) == 0
    assert read_datadir(tmp_path / "out").text == {"spk1-a": "Hi"}
    assert main(["import-corpus", "kaldi", str(tmp_path / "out"), str(tmp_path / "out2"), "--lowercase"]) == 0
    assert read_datadir(tmp_path / "out2").text == {"spk1-a": "hi"}
    assert main(["import-corpus", "librispeech", str(tmp_path / "c"), str(tmp_path / "o3"), "--speaker-chars", "2"]) == 1
    assert "--speaker-chars does nothing for the librispeech layout" in capsys.readouterr().err
    _wav(tmp_path / "c" / "spk1" / "b.wav")
    assert main(["import-corpus", "aligner", str(tmp_path / "c"), str(tmp_path / "o4")]) == 1
    err = capsys.readouterr().err
    assert "b.wav: no transcript" in err and "--skip-incomplete" in err and "Traceback" not in err
    assert not (tmp_path / "o4").exists()
    assert main(["import-corpus", "aligner", str(tmp_path / "c"), str(tmp_path / "o4"), "--skip-incomplete"]) == 0
    assert read_datadir(tmp_path / "o4").utts == ["spk1-a"] and "skipping" in capsys.readouterr().err


def test_aligner_speakers_whose_ids_do_not_sort_are_named(tmp_path: Path) -> None:
    """Speaker folders ``s1`` and ``s1-b`` give ids ``s1-x`` and ``s1-b-a``, whose order is
    not the speakers': refused before writing, naming both sources."""
    src = tmp_path / "corpus"
    for spk, name in (("s1", "x"), ("s1-b", "a")):
        _wav(src / spk / f"{name}.wav")
        (src / spk / f"{name}.txt").write_text("hello\n")
    with pytest.raises(DataError, match=r"s1/x\.wav.*s1-b/a\.wav|s1-b/a\.wav.*s1/x\.wav") as err:
        import_aligner_dir(src, tmp_path / "out")
    assert "speaker order" in str(err.value) and not (tmp_path / "out").exists()
