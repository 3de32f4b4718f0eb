"""The synthetic TIMIT-style corpus, generated for real with flite (tiny size)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.synth import corpus as synth
from asr.synth.perturb import OUT_RATE, resample_ratio, warp
from asr.synth.labels import find_burst, rescale_rows, timit_phones, word_rows
from asr.synth.tts import FliteSegment, flite_version, synthesize, word_pronunciations
from asr.errors import DataError
from asr.phones.timit import PHONES61

SPEC = synth.SIZES["tiny"]
SPK_RE = re.compile(r"^[MF][A-Z]{3}[0-9]$")
UTT_RE = re.compile(r"^S[XI][0-9]+$")
CLOSURES = {"bcl", "dcl", "gcl", "pcl", "tcl", "kcl"}


@pytest.fixture(scope="module")
def corpus(tiny_synth_corpus: Path) -> Path:
    return tiny_synth_corpus


def _utts(root: Path) -> dict[str, Path]:
    """'TRAIN/DR1/MABC0/SX1' -> stem path."""
    return {str(p.relative_to(root).with_suffix("")): p.with_suffix("") for p in root.glob("*/DR*/*/*.WAV")}


def _rows(path: Path) -> list[tuple[int, int, str]]:
    rows = []
    for line in path.read_text().splitlines():
        s, e, label = line.split()
        rows.append((int(s), int(e), label))
    return rows


def _spk_lists(root: Path) -> tuple[list[str], list[str]]:
    return ((root / synth.DEV_LIST).read_text().split(), (root / synth.TEST_LIST).read_text().split())


def test_layout_and_counts(corpus):
    train = sorted(p.name for p in corpus.glob("TRAIN/DR*/*"))
    test = sorted(p.name for p in corpus.glob("TEST/DR*/*"))
    # the shared fixture has no neural voices (tests/test_synth_neural.py)
    assert len(train) == SPEC.train and len(test) == SPEC.dev + SPEC.test + SPEC.test_unseen + SPEC.dev_unseen
    assert len(set(train) | set(test)) == len(train) + len(test)
    for spk_dir in corpus.glob("*/DR*/*"):
        assert SPK_RE.match(spk_dir.name), spk_dir
        assert re.fullmatch(r"DR[1-8]", spk_dir.parent.name)
        names = sorted(p.name for p in spk_dir.iterdir())
        stems = {n.rsplit(".", 1)[0] for n in names}
        assert len(stems) == SPEC.utts_per_speaker and all(UTT_RE.match(s) for s in stems)
        assert sum(s.startswith("SX") for s in stems) == SPEC.sx_per_speaker
        assert names == sorted(f"{s}.{e}" for s in stems for e in synth.UTT_EXTS)
    dev, tst = _spk_lists(corpus)
    unseen = (corpus / synth.SPK_LISTS["test_unseen"]).read_text().split()
    dev_unseen = (corpus / synth.SPK_LISTS["dev_unseen"]).read_text().split()
    assert len(dev) == SPEC.dev and len(tst) == SPEC.test and len(unseen) == SPEC.test_unseen
    assert len(dev_unseen) == SPEC.dev_unseen
    assert sorted(dev + tst + unseen + dev_unseen) == sorted(s.lower() for s in test)
    assert not (corpus / synth.SPK_LISTS["test_neural"]).exists()
    marker = json.loads((corpus / synth.COMPLETE_FILE).read_text())
    assert marker == {"size": "tiny", "seed": 0, "unseen_voices": ["awb"], "flite_version": flite_version(),
                      "neural_voices": [], "neural_versions": {}}
    assert not (corpus / synth.IN_PROGRESS_FILE).exists()


def test_sphere_audio_and_txt(corpus):
    for stem in _utts(corpus).values():
        wav = stem.with_suffix(".WAV")
        info = sf.info(str(wav))
        assert (info.format, info.subtype, info.samplerate, info.channels) == ("NIST", "PCM_16", 16000, 1)
        assert wav.read_bytes()[:7] == b"NIST_1A"
        fields = stem.with_suffix(".TXT").read_text().split()
        assert fields[0] == "0" and int(fields[1]) == info.frames
        assert fields[2][0].isupper() and fields[-1].endswith(".")
        assert 0.5 < info.frames / OUT_RATE < 10


def test_phn_files(corpus):
    n_closures = n_stops = 0
    for stem in _utts(corpus).values():
        rows = _rows(stem.with_suffix(".PHN"))
        n = sf.info(str(stem.with_suffix(".WAV"))).frames
        assert rows[0][0] == 0 and rows[-1][1] == n
        assert rows[0][2] == "h#" and rows[-1][2] == "h#"
        assert all(r[2] != "h#" for r in rows[1:-1])
        for (s0, e0, _), (s1, e1, _) in zip(rows, rows[1:]):
            assert e0 == s1 and s1 < e1, (stem, s0, e0, s1, e1)
        assert all(p in PHONES61 for _, _, p in rows), stem
        for (_, _, a), (_, _, b) in zip(rows, rows[1:]):
            if a in CLOSURES:
                assert b in {"b", "d", "g", "p", "t", "k", "jh", "ch"}, (stem, a, b)
        n_closures += sum(p in CLOSURES for _, _, p in rows)
        n_stops += sum(p in {"b", "d", "g", "p", "t", "k"} for _, _, p in rows)
    # the burst detector splits most stops (measured 55-80% depending on the voice)
    assert n_closures > 0.4 * n_stops, (n_closures, n_stops)


def test_wrd_files(corpus):
    for stem in _utts(corpus).values():
        phn = _rows(stem.with_suffix(".PHN"))
        wrd = _rows(stem.with_suffix(".WRD"))
        words = [w.lower().rstrip(".") for w in stem.with_suffix(".TXT").read_text().split()[2:]]
        assert [w for _, _, w in wrd] == words
        bounds = {s for s, _, _ in phn} | {e for _, e, _ in phn}
        assert wrd[0][0] >= phn[0][1] and wrd[-1][1] <= phn[-1][0]
        for s, e, w in wrd:
            assert s < e and s in bounds and e in bounds, (stem, s, e, w)
        for (_, e0, _), (s1, _, _) in zip(wrd, wrd[1:]):
            assert e0 <= s1


def test_partitions_and_prompts(corpus):
    lists = {p: set((corpus / name).read_text().split()) for p, name in synth.SPK_LISTS.items()
             if (corpus / name).is_file()}
    part_of = {}
    for key, stem in _utts(corpus).items():
        spk = stem.parent.name.lower()
        part_of[key] = "train" if key.startswith("TRAIN") else next(p for p in lists if spk in lists[p])
    texts: dict[str, set[str]] = {p: set() for p in synth.PARTITIONS}
    readers: dict[str, set[str]] = {}
    for key, stem in _utts(corpus).items():
        text = " ".join(stem.with_suffix(".TXT").read_text().split()[2:])
        texts[part_of[key]].add(text)
        readers.setdefault(f"{stem.name}:{text}", set()).add(stem.parent.name)
    for a, b in itertools.combinations(synth.PARTITIONS, 2):
        assert not texts[a] & texts[b], (a, b)
    ids_by_text: dict[str, set[str]] = {}
    for key, spks in readers.items():
        utt, text = key.split(":", 1)
        ids_by_text.setdefault(text, set()).add(utt)
        part = part_of[next(k for k in _utts(corpus) if k.endswith(f"/{next(iter(spks))}/{utt}"))]
        shared_by = min(2, SPEC.speakers(part))  # dev_unseen has one tiny speaker
        assert len(spks) == 1 if utt.startswith("SI") else len(spks) >= shared_by, (key, spks)
    assert all(len(ids) == 1 for ids in ids_by_text.values())  # one id per prompt text


@pytest.mark.slow  # 11 s: synthesizes the tiny corpus twice more (the LibriSpeech layout's resume stays in make test)
def test_regenerate_is_identical_and_resumes(corpus, tmp_path):
    other = tmp_path / "again"
    synth.generate_corpus(other, "tiny", seed=0, num_jobs=1, neural_voices=())
    first = sorted(str(p.relative_to(corpus)) for p in corpus.rglob("*") if p.is_file())
    assert first == sorted(str(p.relative_to(other)) for p in other.rglob("*") if p.is_file())
    for rel in first:
        assert (corpus / rel).read_bytes() == (other / rel).read_bytes(), rel
    # an interrupted run: one utterance missing, no .complete, the in-progress marker left
    stem = sorted(_utts(other).values())[3]
    for ext in synth.UTT_EXTS:
        stem.with_suffix(f".{ext}").unlink()
    keep = sorted(_utts(other).values())[0].with_suffix(".WAV")
    mtime = keep.stat().st_mtime_ns
    marker = other / synth.COMPLETE_FILE
    marker.rename(other / synth.IN_PROGRESS_FILE)
    synth.generate_corpus(other, "tiny", seed=0, num_jobs=1, neural_voices=())
    for ext in synth.UTT_EXTS:
        rel = stem.with_suffix(f".{ext}").relative_to(other)
        assert (corpus / rel).read_bytes() == (other / rel).read_bytes(), rel
    assert keep.stat().st_mtime_ns == mtime  # untouched: skipped
    assert marker.is_file() and not (other / synth.IN_PROGRESS_FILE).exists()


def test_complete_corpus_returns_at_once_and_mismatch_raises(corpus, monkeypatch, caplog):
    def must_not_run(*args, **kwargs):
        raise AssertionError("a complete corpus was worked on again")

    for name in ("sample_prompts", "make_jobs", "_map_maybe_pool", "synthesize_utterance", "_write_speaker_lists"):
        monkeypatch.setattr(synth, name, must_not_run)
    before = {p: p.stat().st_mtime_ns for p in corpus.rglob("*")}
    with caplog.at_level("INFO", logger="asr"):
        assert synth.generate_corpus(corpus, "tiny", seed=0, neural_voices=()) == corpus
    assert {p: p.stat().st_mtime_ns for p in corpus.rglob("*")} == before  # nothing written, nothing added
    assert "already complete" in caplog.text
    with pytest.raises(DataError, match="'seed': 0.*'seed': 1"):
        synth.generate_corpus(corpus, "tiny", seed=1, neural_voices=())
    with pytest.raises(DataError, match="'size': 'small'"):
        synth.generate_corpus(corpus, "small", seed=0, neural_voices=())
    with pytest.raises(DataError, match="unknown synthetic corpus size 'huge'"):
        synth.generate_corpus(corpus, "huge")


def test_foreign_directory_refused(tmp_path):
    (tmp_path / "TRAIN").mkdir()
    with pytest.raises(DataError, match="not made here"):
        synth.generate_corpus(tmp_path, "tiny")


def test_held_out_voices_speak_only_test_unseen():
    spks = synth.make_speakers(synth.SIZES["small"], seed=0, unseen_voices=["awb", "slt"])
    by_part = {p: {s.voice.voice for s in spks if s.partition == p} for p in synth.PARTITIONS}
    assert by_part["test_unseen"] == by_part["dev_unseen"] == {"awb", "slt"}
    assert all(by_part[p] == {"kal", "kal16", "rms"} for p in ("train", "dev", "test")), by_part
    assert sum(s.partition == "test_unseen" for s in spks) == synth.SIZES["small"].test_unseen == 8
    none_held = synth.make_speakers(synth.SIZES["small"], seed=0, unseen_voices=[])
    assert {s.voice.voice for s in none_held if s.partition == "train"} == set(synth.VOICES)
    assert not any(s.partition == "test_unseen" for s in none_held)
    with pytest.raises(DataError, match="unknown flite voice 'bob'"):
        synth.make_speakers(synth.SIZES["tiny"], seed=0, unseen_voices=["bob"])
    with pytest.raises(DataError, match="none would be left"):
        synth.make_speakers(synth.SIZES["tiny"], seed=0, unseen_voices=list(synth.VOICES))


def test_speakers_and_sizes():
    assert (synth.SIZES["timit"].train, synth.SIZES["timit"].dev, synth.SIZES["timit"].test) == (462, 50, 24)
    spks = synth.make_speakers(synth.SIZES["timit"], seed=5)
    assert len({s.spk_id for s in spks}) == 536 + 24 + 12  # + test_unseen, dev_unseen (awb)
    assert all(SPK_RE.match(s.spk_id) for s in spks)
    assert {s.spk_id[0] for s in spks} == {"M", "F"}
    assert {s.region for s in spks} == set(range(1, 9))
    assert spks == synth.make_speakers(synth.SIZES["timit"], seed=5)
    assert [s.spk_id for s in spks] != [s.spk_id for s in synth.make_speakers(synth.SIZES["timit"], seed=6)]


def test_medium_size_holds_the_training_voices_equally():
    """make demo's corpus: 144 training speakers, the four training voices 36 each."""
    spks = synth.make_speakers(synth.SIZES["medium"], seed=0, unseen_voices=["awb"])
    train = [s.voice.voice for s in spks if s.partition == "train"]
    assert len(train) == 144 and {v: train.count(v) for v in set(train)} == {"kal": 36, "kal16": 36, "rms": 36,
                                                                              "slt": 36}
    assert [sum(s.partition == p for s in spks) for p in ("dev", "test", "test_unseen")] == [8, 8, 8]


def test_sx_prompt_sharing_for_timit_size():
    spec = synth.SIZES["timit"]
    prompts = {p: [[f"{p}{i}"] for i in range(n)] for p, n in _prompt_counts(spec).items()}
    jobs = synth.make_jobs(spec, 0, Path("/x"), synth.make_speakers(spec, 0), prompts)
    assert len(jobs) == (536 + 24 + 12) * 8
    readers: dict[str, int] = {}
    for j in jobs:
        readers[j.utt_id] = readers.get(j.utt_id, 0) + 1
    sx = [n for u, n in readers.items() if u.startswith("SX")]
    assert min(sx) >= 5 and max(sx) <= 7  # like TIMIT's 7 readers per SX prompt
    assert all(n == 1 for u, n in readers.items() if u.startswith("SI"))


def _prompt_counts(spec: synth.SizeSpec) -> dict[str, int]:
    counts: dict[str, int] = {}
    for part, _ in synth._prompt_keys(spec, 0):
        counts[part] = counts.get(part, 0) + 1
    return counts


def test_prompt_text():
    assert synth.prompt_text(["i", "think", "so", "i", "do"]) == "I think so I do."
    assert synth.prompt_text(["water", "is", "wet"]) == "Water is wet."


# ---------------------------------------------------------------- labelling units


def test_find_burst_on_a_silence_then_noise_segment():
    sr = 16000
    rng = np.random.default_rng(0)
    x = np.concatenate([1e-4 * rng.standard_normal(800), 0.3 * rng.standard_normal(400)])  # 50 ms + 25 ms
    b = find_burst(x, sr)
    assert b is not None and abs(b - 800) <= 48, b
    assert find_burst(x[:200], sr) is None  # 12.5 ms: too short to split
    assert find_burst(0.3 * rng.standard_normal(1200), sr) is None  # no quiet closure


def test_timit_phones_maps_pauses_and_stops():
    sr = 16000
    rng = np.random.default_rng(1)
    audio = np.concatenate([np.zeros(1600), 0.2 * rng.standard_normal(800), 1e-4 * rng.standard_normal(800),
                            0.3 * rng.standard_normal(400), np.zeros(1000), 0.2 * rng.standard_normal(800), np.zeros(1600)])
    segs = [FliteSegment("pau", 0, 1600), FliteSegment("ae", 1600, 2400), FliteSegment("p", 2400, 3600),
            FliteSegment("pau", 3600, 4000), FliteSegment("brth", 4000, 4600), FliteSegment("s", 4600, 5400),
            FliteSegment("pau", 5400, 7000)]
    rows = timit_phones(audio, sr, segs, "u")
    assert [r[2] for r in rows] == ["h#", "ae", "pcl", "p", "pau", "s", "h#"]
    assert rows[3][0] - 3200 in range(-48, 49)
    assert rows[4] == (3600, 4600, "pau")
    with pytest.raises(DataError, match="u: flite phone 'zz'"):
        timit_phones(audio, sr, segs[:1] + [FliteSegment("zz", 1600, 2400)] + segs[-1:], "u")


def test_word_rows_survive_pronunciation_changes():
    segs = [FliteSegment(p, 10 * i, 10 * i + 10) for i, p in enumerate("pau dh iy ae p ax l pau".split())]
    ok = word_rows(segs, ["the", "apple"], [["dh", "ax"], ["ae", "p", "ax", "l"]], "u")
    assert ok == [(10, 30, "the"), (30, 70, "apple")]
    # a pronunciation that has nothing to do with what was said: proportional fallback
    odd = word_rows(segs, ["the", "apple"], [["zz"], ["yy", "xx", "ww"]], "u")
    assert [w for _, _, w in odd] == ["the", "apple"] and odd[0][1] == odd[1][0] and odd[0][0] == 10
    # an empty pronunciation still gets a phone
    empty = word_rows(segs, ["the", "x", "apple"], [["dh", "ax"], [], ["ae", "p", "ax", "l"]], "u")
    assert all(s < e for s, e, _ in empty)


def test_rescale_rows_clamps_to_audio_length():
    rows = [(0, 100, "h#"), (100, 150, "aa"), (150, 301, "h#")]
    out = rescale_rows(rows, 2 / 3, 200, close=True)
    assert out == [(0, 67, "h#"), (67, 100, "aa"), (100, 200, "h#")]


def test_warp_length_and_rate():
    x = np.random.default_rng(0).standard_normal(8000)  # 1 s at 8 kHz
    y = warp(x, 8000, 110)
    assert resample_ratio(8000, 110) == pytest.approx(16000 / 8000 / 1.1)
    assert len(y) == int(np.ceil(8000 * 16000 / 8000 / 1.1))


def test_flite_real_segments_cover_audio():
    """kal (8 kHz diphone) stops short of its last pause: the waveform is padded."""
    audio, sr, segs = synthesize("she had your dark suit.", "kal", {}, "u")
    assert sr == 8000 and segs[0].start == 0 and segs[-1].end == len(audio)
    assert [s.phone for s in segs][:4] == ["pau", "sh", "iy", "hh"]
    prons = word_pronunciations(["she", "had", "your"], "u")
    assert prons == [["sh", "iy"], ["hh", "ae", "d"], ["y", "ao", "r"]]
