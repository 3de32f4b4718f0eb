"""``asr align-corpus``: forced alignment of an aligner-style corpus dir into TextGrids / CTM.

A small CI model (a DNN on spliced frames, trained for a few seconds on the
tiny synthetic corpus's training speakers) with a word graph over the
training transcripts' words is built once for the module; the corpus to align
is made of the tiny corpus's *test* speakers' recordings (so most of their
words are new to the lexicon), in the aligner layout, plus broken entries.
Word boundaries are compared with the corpus's true .WRD boundaries.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import numpy as np
import parselmouth
import pytest
import soundfile as sf
import torch
from parselmouth.praat import call

from asr.audio import resample_audio
from asr.cli import main
from asr.decode.bundle import update_manifest
from asr.lang.lexicon import Lexicon
from asr.steps.align_corpus import (TIMIT48_TO_ARPABET, arpabet_phones, lexicon_words, list_corpus,
                                    read_transcript, AlignFailure)

CPU = torch.device("cpu")
RATE = 16000
#: Recordings of the tiny corpus's test speakers aligned by the module's main run:
#: (TIMIT dir, utterance) -> (name in the aligner corpus, audio extension, transcript extension).
GOOD = {
    ("FYRQ0", "SI54"): ("fyrq0_si54", ".wav", ".txt"),   # "Ah fair like that decision." (fair, like: new)
    ("FYRQ0", "SI52"): ("fyrq0_si52", ".wav", ".lab"),
    ("MVIK0", "SI55"): ("mvik0/si55", ".flac", ".txt"),  # a speaker subfolder, FLAC
    ("MVIK0", "SX14"): ("mvik0/sx14", ".wav", ".lab"),
}
#: Aligned at 22.05 kHz (resampled to the model's 16 kHz).
RESAMPLED = ("FYRQ0", "SX13", "fyrq0_sx13_22k")
#: The failures the main run must report: name -> words of the reason.
FAILURES = {
    "silence": "no speech found",
    "lonely": "no transcript",
    "broken": "cannot read audio",
    "empty": "is empty",
    "short": "too short for its transcript",
}


# ---- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tiny_synth_corpus: Path, tmp_path_factory) -> Path:
    """A CI DNN trained on the tiny corpus's training set, with a word graph over the words of
    its transcripts (a unigram LM; lexicon from CMUdict) installed; ~20 s on 2 cores."""
    from asr.corpus.timit import prepare_timit
    from asr.decode.hybrid import HybridModel
    from asr.decode.words import install_word_graph
    from asr.features.extract import FeatureConfig
    from asr.features.storage import make_features
    from asr.hmm.context import ContextDependency
    from asr.lang.lang_dir import prepare_lang
    from asr.lang.ngram import train_ngram
    from asr.lang.word_graph import make_word_graph
    from asr.nn.train import TrainConfig
    from asr.phones.timit import timit_lang
    from asr.steps.train_am import train_am

    out = tmp_path_factory.mktemp("align_corpus_model")
    corpus = tiny_synth_corpus
    prepare_timit(corpus, out / "data", corpus / "dev_spk.list", corpus / "test_spk.list")
    for name in ("train", "dev"):
        make_features(out / "data" / name, out / "feats", FeatureConfig(cmvn="speech"))
    lang = timit_lang()
    ctx = ContextDependency.ci(list(lang.phones), lang.topology)
    model_opts = {"kind": "dnn", "num_layers": 2, "hidden": 256, "context": 5, "dropout": 0.0,
                  "bidirectional": False}
    train_am(out / "data/train", out / "data/dev", out / "model", model_opts,
             TrainConfig(epochs=8, lr=0.002, batch_frames=4000, chunk_frames=400, seed=0), CPU, ctx, lang)
    text = out / "lm_text"
    text.write_text("".join(line.split(" ", 1)[1] for line in (out / "data/train/text").open()))
    train_ngram(text, out / "lm.arpa", 1)
    prepare_lang(out / "lang_words", out / "lm.arpa", lang, train_text=out / "data/train/text")
    make_word_graph(out / "lang_words", ctx, out / "graph_words")
    install_word_graph(HybridModel.load(out / "model", CPU), out / "graph_words")
    return out / "model"


def timit_file(corpus: Path, spk: str, utt: str, ext: str) -> Path:
    """The file ``TEST/DR*/<spk>/<utt>.<ext>`` of the tiny corpus."""
    found = sorted(corpus.glob(f"TEST/DR*/{spk}/{utt}.{ext}"))
    assert len(found) == 1, (spk, utt, found)
    return found[0]


def prompt(corpus: Path, spk: str, utt: str) -> str:
    """The transcript as written in the .TXT file (case and punctuation kept), without its two numbers."""
    return " ".join(timit_file(corpus, spk, utt, "TXT").read_text().split()[2:])


def true_words(corpus: Path, spk: str, utt: str, rate: int = RATE) -> list[tuple[float, float, str]]:
    """(start_s, end_s, word) of the .WRD file (sample offsets at 16 kHz)."""
    rows = [line.split() for line in timit_file(corpus, spk, utt, "WRD").read_text().splitlines()]
    return [(int(a) / rate, int(b) / rate, w) for a, b, w in rows]


def read_tiers(path: Path) -> dict[str, list[tuple[float, float, str]]]:
    """{tier name: [(start_s, end_s, label), ...]} of a TextGrid, read by Praat (parselmouth)."""
    grid = parselmouth.read(str(path))
    tiers = {}
    for t in range(1, call(grid, "Get number of tiers") + 1):
        assert call(grid, "Is interval tier...", t)
        n = call(grid, "Get number of intervals...", t)
        tiers[call(grid, "Get tier name...", t)] = [
            (call(grid, "Get start time of interval...", t, i), call(grid, "Get end time of interval...", t, i),
             call(grid, "Get label of interval...", t, i)) for i in range(1, n + 1)]
    return tiers


@pytest.fixture(scope="module")
def corpus(tiny_synth_corpus: Path, tmp_path_factory) -> dict:
    """The aligner-style corpus dir: GOOD and RESAMPLED recordings, a ~60 s recording of
    one test speaker's utterances one after another, and the FAILURES' files. Returns {"dir": ..., "long": truth}."""
    src = tiny_synth_corpus
    d = tmp_path_factory.mktemp("aligner_corpus")
    (d / "mvik0").mkdir()
    for (spk, utt), (name, audio_ext, text_ext) in GOOD.items():
        samples, rate = sf.read(timit_file(src, spk, utt, "WAV"), dtype="float32")
        sf.write(d / f"{name}{audio_ext}", samples, rate)
        (d / f"{name}{text_ext}").write_text(prompt(src, spk, utt) + "\n")
    spk, utt, name = RESAMPLED
    samples, _ = sf.read(timit_file(src, spk, utt, "WAV"), dtype="float32")
    sf.write(d / f"{name}.wav", resample_audio(samples, RATE, 22050), 22050)
    (d / f"{name}.txt").write_text(prompt(src, spk, utt) + "\n")
    # ~60 s of one speaker: FYRQ0's 8 test utterances, one after another, again and again
    pieces, words, text, offset = [], [], [], 0.0
    order = sorted(src.glob("TEST/DR*/FYRQ0/*.WAV"))
    while offset < 60.0:
        wav = order[len(pieces) % len(order)]
        spk, utt = wav.parent.name, wav.stem
        samples, _ = sf.read(wav, dtype="float32")
        pieces.append(samples)
        words += [(a + offset, b + offset, w) for a, b, w in true_words(src, spk, utt)]
        text.append(prompt(src, spk, utt))
        offset += len(samples) / RATE
    sf.write(d / "long.wav", np.concatenate(pieces), RATE)
    (d / "long.txt").write_text("\n".join(text) + "\n")
    # the failures
    rng = np.random.default_rng(0)
    sf.write(d / "silence.wav", (1e-4 * rng.standard_normal(2 * RATE)).astype(np.float32), RATE)
    (d / "silence.txt").write_text("hello world\n")
    shutil.copy(d / "fyrq0_si54.wav", d / "lonely.wav")
    (d / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    (d / "broken.txt").write_text("no audio here\n")
    shutil.copy(d / "fyrq0_si54.wav", d / "empty.wav")
    (d / "empty.txt").write_text(" .  \n")
    samples, _ = sf.read(d / "fyrq0_si52.wav", dtype="float32")
    sf.write(d / "short.wav", samples[RATE: RATE + RATE // 4], RATE)  # 0.25 s of speech
    shutil.copy(d / "fyrq0_si52.lab", d / "short.txt")
    return {"dir": d, "long": words}


@pytest.fixture(scope="module")
def run(tiny_model: Path, corpus: dict, tmp_path_factory) -> dict:
    """The main run: align-corpus over the whole corpus (TextGrids); rc, stdout, stderr."""
    out = tmp_path_factory.mktemp("aligned")
    (out / "silence.TextGrid").write_text("from an earlier run")
    stdout, stderr = io.StringIO(), io.StringIO()  # capsys is function-scoped: capture by hand
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = main(["align-corpus", str(corpus["dir"]), str(out), "--model", str(tiny_model)])
    return {"rc": rc, "out": out, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


# ---- the main run ------------------------------------------------------------------------


def test_failures_are_reported_by_name_and_the_rest_written(run):
    assert run["rc"] == 1
    assert "Traceback" not in run["stdout"] + run["stderr"]
    total = len(GOOD) + 2 + len(FAILURES)
    assert f"{len(GOOD) + 2} aligned, {len(FAILURES)} failed (of {total} recordings" in run["stdout"]
    failed = dict(line.split("\t") for line in (run["out"] / "failed.txt").read_text().splitlines())
    assert set(failed) == set(FAILURES)
    for name, why in FAILURES.items():
        assert why in failed[name], (name, failed[name])
        assert re.search(rf"failed: {name}: .*{why}", run["stdout"]), name
        assert not (run["out"] / f"{name}.TextGrid").exists()  # silence's stale one removed too
    assert "lonely.wav: no transcript (lonely.lab or lonely.txt) beside it" in run["stderr"]
    assert "broken.wav: cannot read audio" in run["stderr"]
    written = sorted(p.relative_to(run["out"]).as_posix() for p in run["out"].rglob("*.TextGrid"))
    assert written == sorted([f"{n}.TextGrid" for n, _, _ in GOOD.values()]
                             + [f"{RESAMPLED[2]}.TextGrid", "long.TextGrid"])  # speaker folder mirrored


def _check_grid(path: Path, audio: Path) -> dict[str, list[tuple[float, float, str]]]:
    """The TextGrid's tiers, checked: words and phones, contiguous over [0, the audio's duration]."""
    tiers = read_tiers(path)
    assert list(tiers) == ["words", "phones"]
    duration = sf.info(str(audio)).frames / sf.info(str(audio)).samplerate
    for intervals in tiers.values():
        assert intervals[0][0] == 0 and intervals[-1][1] == pytest.approx(duration, abs=1e-6)
        for (_, end, _), (start, _, _) in zip(intervals, intervals[1:]):
            assert end == start
        assert all(a < b for a, b, _ in intervals)
    return tiers


def _boundary_errors(hyp: list[tuple[float, float, str]], ref: list[tuple[float, float, str]]) -> np.ndarray:
    assert [w for _, _, w in hyp] == [w for _, _, w in ref]
    return np.abs(np.array([(a, b) for a, b, _ in hyp]) - np.array([(a, b) for a, b, _ in ref])).ravel()


def test_textgrids_have_the_words_in_order_near_the_true_boundaries(run, corpus, tiny_synth_corpus):
    errors = []
    for (spk, utt), (name, audio_ext, _) in GOOD.items():
        tiers = _check_grid(run["out"] / f"{name}.TextGrid", corpus["dir"] / f"{name}{audio_ext}")
        words = [iv for iv in tiers["words"] if iv[2]]
        assert [w for _, _, w in words] == read_transcript_words(prompt(tiny_synth_corpus, spk, utt))
        errors.append(_boundary_errors(words, true_words(tiny_synth_corpus, spk, utt)))
        # each word's phones lie within it, and the phones tier is empty outside the words
        phones = [iv for iv in tiers["phones"] if iv[2]]
        assert all(any(a >= wa - 1e-9 and b <= wb + 1e-9 for wa, wb, _ in words) for a, b, _ in phones)
    errors = np.concatenate(errors)
    # measured: mean 12.2 ms, 79.5% within 20 ms, max 61 ms (the tiny DNN, 8 epochs; the demo's
    # CD BLSTM: mean 10.9 ms, 93.4% within 20 ms on 10 files of the medium corpus)
    assert errors.mean() < 0.020 and np.mean(errors <= 0.020) > 0.70 and errors.max() < 0.100, errors


def read_transcript_words(text: str) -> list[str]:
    """The words tier's words of a .TXT prompt: lower case, no punctuation."""
    return [w.strip(".,?!;:\"'").lower() for w in text.split() if w.strip(".,?!;:\"'")]


def test_audio_at_another_rate_is_resampled(run, corpus, tiny_synth_corpus):
    spk, utt, name = RESAMPLED
    tiers = _check_grid(run["out"] / f"{name}.TextGrid", corpus["dir"] / f"{name}.wav")
    errors = _boundary_errors([iv for iv in tiers["words"] if iv[2]], true_words(tiny_synth_corpus, spk, utt))
    assert errors.mean() < 0.025 and errors.max() < 0.060, errors  # measured: 18.7 ms, 33 ms (16 kHz: 19.5, 43)
    assert "resampled 22050 Hz to 16000 Hz" in run["stderr"]


def test_a_60_second_file_is_aligned_whole(run, corpus):
    tiers = _check_grid(run["out"] / "long.TextGrid", corpus["dir"] / "long.wav")
    assert tiers["words"][-1][1] > 60.0
    errors = _boundary_errors([iv for iv in tiers["words"] if iv[2]], corpus["long"])
    assert len(errors) > 300
    # measured: mean 15.8 ms, 73% within 20 ms, max 102 ms (short files of this model: 12 ms)
    assert errors.mean() < 0.025 and np.mean(errors <= 0.020) > 0.6 and errors.max() < 0.200, \
        (errors.mean(), np.mean(errors <= 0.020), errors.max())


def test_new_words_get_pronunciations_listed_in_oovs_txt(run, tiny_model):
    lexicon = Lexicon.load(tiny_model / "graph_words/lexicon.txt", None)
    rows = [line.split() for line in (run["out"] / "oovs.txt").read_text().splitlines()]
    assert rows and all(w not in lexicon.prons for w, *_ in rows)
    listed = {(w, tuple(p)) for w, *p in rows}
    assert ("fair", ("f", "eh", "r")) in listed  # CMUdict's F EH1 R on TIMIT's 48 phones
    assert {"fair", "like", "seventeen", "washington"} <= {w for w, _ in listed}
    tiers = read_tiers(run["out"] / "fyrq0_si54.TextGrid")
    fair = next(iv for iv in tiers["words"] if iv[2] == "fair")
    assert [p for a, b, p in tiers["phones"] if fair[0] <= a and b <= fair[1]] == ["f", "eh", "r"]


# ---- other options and cases ------------------------------------------------------------


def test_ctm_output_and_arpabet_phones(tiny_model, corpus, tmp_path, capsys):
    d = tmp_path / "c"
    d.mkdir()
    shutil.copy(corpus["dir"] / "fyrq0_si54.wav", d / "a b.wav")  # a space in the name
    # a word CMUdict and flite have no pronunciation for: aligned as <unk> (garbage phone, sil)
    (d / "a b.txt").write_text("日本 " + (corpus["dir"] / "fyrq0_si54.txt").read_text())
    assert main(["align-corpus", str(d), str(tmp_path / "out"), "--model", str(tiny_model),
                 "--format", "both", "--phone-set", "arpabet", "--beam", "10", "--sil-prob", "0.3"]) == 0
    assert "1 aligned, 0 failed" in capsys.readouterr().out
    assert "日本 sil\n" in (tmp_path / "out/oovs.txt").read_text()
    words = [line.split() for line in (tmp_path / "out/words.ctm").read_text().splitlines()]
    assert [w[0] for w in words] == ["a_b"] * 6
    assert [w[4] for w in words] == "日本 ah fair like that decision".split()
    phones = [line.split() for line in (tmp_path / "out/phones.ctm").read_text().splitlines()]
    arpabet = {p for p in TIMIT48_TO_ARPABET.values() if p} | {"spn"}
    assert phones and {p[4] for p in phones} <= arpabet and phones[0][4] == "spn"
    fair = next(w for w in words if w[4] == "fair")
    start, end = float(fair[2]), float(fair[2]) + float(fair[3])
    assert [p[4] for p in phones if start - 1e-6 <= float(p[2]) < end - 1e-6] == ["F", "EH", "R"]
    tiers = read_tiers(tmp_path / "out/a b.TextGrid")
    assert [p for _, _, p in tiers["phones"] if p] == [p[4] for p in phones]
    assert "D" in [p[4] for p in phones]  # "decision": vcl d merged into one D


def test_a_model_without_a_word_graph_is_a_clear_error(tiny_model, corpus, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    update_manifest(model, word_graph=None, word_decode=None)
    assert main(["align-corpus", str(corpus["dir"]), str(tmp_path / "out"), "--model", str(model)]) == 1
    err = capsys.readouterr().err
    assert "word_graph" in err and str(model) in err and "Traceback" not in err


def test_missing_corpus_dir_is_a_clear_error(tiny_model, tmp_path, capsys):
    assert main(["align-corpus", str(tmp_path / "nowhere"), str(tmp_path / "out"), "--model", str(tiny_model)]) == 1
    assert "nowhere: corpus directory does not exist" in capsys.readouterr().err


# ---- pieces -------------------------------------------------------------------------------


def test_list_corpus_pairs_files_and_names_problems(tmp_path):
    (tmp_path / "s1").mkdir()
    for name in ("a.wav", "a.TXT", "b.flac", "b.wav", "b.lab", "c.lab", "s1/d.WAV", "s1/d.lab", ".e.wav", "f.PHN"):
        (tmp_path / name).write_bytes(b"")
    files = {f.name: f for f in list_corpus(tmp_path)}
    assert list(files) == ["a", "b", "c", "s1/d"]
    assert files["a"].audio.name == "a.wav" and files["a"].transcript.name == "a.TXT" and not files["a"].problem
    assert files["b"].problem == "b.flac and b.wav are both there: keep one audio file per name"
    assert files["c"].problem == "no audio file (c.wav or c.flac) beside it"
    assert files["s1/d"].transcript == tmp_path / "s1/d.lab"


def test_transcript_tokens_and_lexicon_spelling(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("\ufeff“Hello,” she said -- it's <unk> twenty-two!\n")
    tokens = read_transcript(path)
    assert tokens == ["Hello", "she", "said", "it's", "<unk>", "twenty-two"]
    prons = {"hello": [("h",)], "said": [("s",)], "twenty": [("t",)], "two": [("t",)], "<unk>": [("sil",)]}
    assert lexicon_words(tokens, prons) == ["hello", "she", "said", "it's", "<unk>", "twenty", "two"]
    path.write_bytes(b"caf\xe9\n")
    with pytest.raises(AlignFailure, match="not UTF-8"):
        read_transcript(path)


def test_arpabet_merges_closures_and_names_silence():
    phones = [(0.0, 0.1, ""), (0.1, 0.2, "cl"), (0.2, 0.25, "t"), (0.25, 0.3, "ax"), (0.3, 0.4, "vcl"),
              (0.4, 0.5, "jh"), (0.5, 0.6, "sil"), (0.6, 0.7, ""), (0.7, 0.8, "dx")]
    assert arpabet_phones(phones, "sil") == [(0.0, 0.1, ""), (0.1, 0.25, "T"), (0.25, 0.3, "AH"),
                                             (0.3, 0.5, "JH"), (0.5, 0.6, "spn"), (0.6, 0.7, ""),
                                             (0.7, 0.8, "T")]
