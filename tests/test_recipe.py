"""End to end: the synthetic corpus through every stage of recipes/synth/run.sh
(tiny in the default run; medium, make demo's corpus, as a slow test, ``pytest -m slow``)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: The tree size of the tiny recipe's CD model.
TINY_LEAVES = "300"


def venv_env() -> dict[str, str]:
    """The environment with this virtualenv's ``asr`` first on PATH."""
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}


def run_recipe(out: Path, size: str = "tiny", conf: str = "recipes/synth/conf/ci_lstm_tiny.yaml",
               cd_conf: str = "recipes/synth/conf/cd_lstm_tiny.yaml", cd_leaves: str = TINY_LEAVES,
               timeout: int = 1200, *extra: str) -> subprocess.CompletedProcess:
    cmd = ["bash", str(ROOT / "recipes/synth/run.sh"), "--size", size, "--out", str(out),
           "--device", "cpu", "--conf", conf, "--cd-conf", cd_conf, "--cd-leaves", cd_leaves, *extra]
    return subprocess.run(cmd, cwd=ROOT, env=venv_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    out = tmp_path_factory.mktemp("recipe")
    proc = run_recipe(out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc


def asr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "asr"), *args], capture_output=True, text=True, timeout=300)


def test_recipe_reaches_a_per_no_broken_model_could(recipe):
    out, proc = recipe
    model = out / "exp/synth_tiny/ci_lstm"
    test = yaml.safe_load((model / "decode_test/scores.yaml").read_text())
    dev = yaml.safe_load((model / "decode_dev/scores.yaml").read_text())
    # Measured on the tiny corpus (seed 0, 64 training utterances of four voices, speed
    # perturbation, CPU, deterministic): dev 47.16%, test 55.23% PER, test frame accuracy
    # 38.77%, argmax 96.05%. The margins (2-2.5 points) are crossed by a real regression;
    # a model that learnt nothing gives ~100% PER.
    assert test["per"] < 57.5, test
    assert dev["per"] < 49.5, dev
    assert test["frame_acc"] > 36.5, test
    unseen = yaml.safe_load((model / "decode_test_unseen/scores.yaml").read_text())
    assert unseen["per"] < 57.0 and unseen["acwt"] == dev["acwt"], unseen  # 54.69% measured
    # the HMM beats the framewise argmax reading by far (40.8 points measured)
    assert test["per"] < test["per_argmax"] - 25.0, test
    assert "| ci_lstm |" in proc.stdout and "silence is scored" in proc.stdout
    assert (model / "decode_test/per_report.txt").is_file()
    assert test["failed_utterances"] == 0 and dev["failed_utterances"] == 0


def test_realignment_tree_and_cd_model(recipe):
    """Stages 5-7: the realignment scores higher than the uniform split under the model that
    made it, the tree keeps silence CI and stays within its leaf budget, and the CD model
    reads dev better than the CI model it started from, even on this tiny corpus."""
    out, proc = recipe
    exp = out / "exp/synth_tiny"
    for name in ("train", "dev"):
        ali = yaml.safe_load((exp / f"ci_lstm/ali_{name}/ali.yaml").read_text())
        assert ali["failed_utterances"] == 0
        # measured: train 3.528 vs 3.300, dev 2.871 vs 2.466 (log-likelihood per frame)
        assert ali["loglike_per_frame"] > ali["uniform_loglike_per_frame"] + 0.15, ali
    tree = yaml.safe_load((exp / f"tree_{TINY_LEAVES}/tree.yaml").read_text())
    assert 144 < tree["num_pdfs"] <= int(TINY_LEAVES) and tree["loglike_gain_per_frame"] > 1.0
    shown = asr("show-tree", str(exp / f"tree_{TINY_LEAVES}"))
    assert shown.returncode == 0 and "sil state 0: pdf " in shown.stdout  # silence is not split
    cd = exp / f"cd_lstm_{TINY_LEAVES}"
    test = yaml.safe_load((cd / "decode_test/scores.yaml").read_text())
    dev = yaml.safe_load((cd / "decode_dev/scores.yaml").read_text())
    assert test["num_pdfs"] == tree["num_pdfs"] and test["context_width"] == 3
    # measured (seed 0, CPU; started from the CI model): dev 45.50%, test 53.52% PER, against
    # the CI model's 47.16% and 55.23%
    assert dev["per"] < 47.5 and test["per"] < 55.5, (dev, test)
    ci_dev = yaml.safe_load((exp / "ci_lstm/decode_dev/scores.yaml").read_text())
    assert dev["per"] < ci_dev["per"] - 1.0, (dev, ci_dev)
    assert f"| cd_lstm_{TINY_LEAVES} | {tree['num_pdfs']} | realigned, init ci_lstm |" in proc.stdout
    manifest = yaml.safe_load((cd / "bundle.yaml").read_text())["components"]
    assert manifest["context"]["context_width"] == 3 and manifest["context"]["num_pdfs"] == tree["num_pdfs"]


def test_tree_on_hidden_activations_and_refusals(recipe, tmp_path):
    """build-tree on the CI network's last layer instead of the features; too few leaves,
    or alignments of the wrong data set, are refused by name."""
    out, _ = recipe
    exp, data = out / "exp/synth_tiny", out / "data/synth_tiny"
    proc = asr("build-tree", str(data / "train"), str(exp / "ci_lstm/ali_train"), str(tmp_path / "t"),
               "--num-leaves", "200", "--hidden-from", str(exp / "ci_lstm"))
    assert proc.returncode == 0, proc.stderr
    info = yaml.safe_load((tmp_path / "t/tree.yaml").read_text())
    assert info["statistics"].startswith("hidden activations of") and 144 < info["num_pdfs"] <= 200
    proc = asr("build-tree", str(data / "train"), str(exp / "ci_lstm/ali_train"), str(tmp_path / "u"),
               "--num-leaves", "100")
    assert proc.returncode == 1 and "--num-leaves 100 is below the 48 phones x 3 states" in proc.stderr
    proc = asr("build-tree", str(data / "dev"), str(exp / "ci_lstm/ali_train"), str(tmp_path / "v"))
    assert proc.returncode == 1 and "ali_train" in proc.stderr, proc.stderr


def test_show_alignment_views(recipe, tmp_path):
    out, _ = recipe
    ali = out / "exp/synth_tiny/ci_lstm/ali_dev"
    text = asr("show-alignment", str(ali))
    assert text.returncode == 0 and " frames, " in text.stdout and "states: 0×" in text.stdout
    ctm = asr("show-alignment", str(ali), "--ctm").stdout.splitlines()
    assert len({line.split()[0] for line in ctm}) == 16  # every dev utterance
    assert asr("show-alignment", str(ali), "--textgrid", str(tmp_path / "tg")).returncode == 0
    assert len(list((tmp_path / "tg").glob("*.TextGrid"))) == 16
    bad = asr("show-alignment", str(ali), "nosuchutt")
    assert bad.returncode == 1 and "no alignment for utterance nosuchutt" in bad.stderr


def test_test_set_is_decoded_with_the_scale_dev_chose(recipe):
    """The acoustic scale is chosen on dev alone; the test set only reads it."""
    out, _ = recipe
    model = out / "exp/synth_tiny/ci_lstm"
    tuned = yaml.safe_load((model / "decode.yaml").read_text())
    dev = yaml.safe_load((model / "decode_dev/scores.yaml").read_text())
    test = yaml.safe_load((model / "decode_test/scores.yaml").read_text())
    assert tuned["tuned_on"] == str(out / "data/synth_tiny/dev")
    # the chosen value is the best of the dev sweep, and the dev sweep is all dev decodes
    assert tuned["acwt"] == min(tuned["sweep"], key=tuned["sweep"].get)
    assert tuned["dev_per"] == min(tuned["sweep"].values())
    swept = sorted(float(p.stem.removeprefix("per_acwt")) for p in (model / "decode_dev").glob("per_acwt*.txt"))
    assert swept == sorted(tuned["sweep"])
    assert not list((model / "decode_test").glob("*acwt*"))  # no sweep on test
    assert test["acwt"] == dev["acwt"] == tuned["acwt"]
    manifest = yaml.safe_load((model / "bundle.yaml").read_text())["components"]
    assert manifest["decode"]["acwt"] == tuned["acwt"]
    assert manifest["decode"]["graph_sha256"] == manifest["graph"]["sha256"]


def test_rnn_phone_decoder_stage(recipe, tmp_path):
    """Stage 9: the phone LM is trained (on the transcripts and the expanded word text) and
    installed in each bundle; the RNN decoder's settings are the best of the dev sweep, test
    reads them, and it beats the HMM with the phone bigram on dev (tiny corpus)."""
    out, proc = recipe
    exp = out / "exp/synth_tiny"
    ppl = {Path(k).name: v["ppl"] for k, v in yaml.safe_load((exp / "phone_lm/phone_lm_ppl.yaml").read_text()).items()}
    # measured (seed 0, CPU): dev 10.31, test 14.27, test_unseen 10.92 per phone
    assert ppl["dev"] < 11.5 and ppl["test"] < 15.5 and ppl["test_unseen"] < 12.0, ppl
    # measured: CI dev 41.28 / test 52.66 (HMM 47.16 / 55.23); CD 41.83 / 51.11 (HMM 45.50 / 53.52)
    for name, dev_max, test_max in (("ci_lstm", 43.5, 55.0), (f"cd_lstm_{TINY_LEAVES}", 44.0, 53.5)):
        model = exp / name
        tuned = yaml.safe_load((model / "rnn_decode.yaml").read_text())
        assert round(tuned["dev_per"], 2) == min(r["per"] for r in tuned["sweep"]) and len(tuned["sweep"]) >= 10
        dev = yaml.safe_load((model / "decode_rnn_dev/scores.yaml").read_text())
        test = yaml.safe_load((model / "decode_rnn_test/scores.yaml").read_text())
        hmm_dev = yaml.safe_load((model / "decode_dev/scores.yaml").read_text())
        assert dev["decoder"] == test["decoder"] == "rnn"
        assert (test["acwt"], test["lm_weight"], test["penalty"]) == \
            tuple(tuned["settings"][k] for k in ("acwt", "lm_weight", "penalty"))
        assert dev["per"] < dev_max and test["per"] < test_max, (name, dev, test)
        assert dev["per"] < hmm_dev["per"] - 2.0, (name, dev, hmm_dev)
        manifest = yaml.safe_load((model / "bundle.yaml").read_text())["components"]
        assert manifest["rnn_decode"]["phone_lm_sha256"] == manifest["phone_lm"]["sha256"]
        assert f"| {dev['per']:.2f} | {test['per']:.2f} |" in proc.stdout  # the results table's RNN columns
    wav = next(iter((out / "data/synth_tiny/test/wav.scp").read_text().split("\n"))).split()[1]
    shown = asr("transcribe", "--model", str(exp / "ci_lstm"), "--output", "phones", "--decoder", "rnn", wav)
    assert shown.returncode == 0 and len(shown.stdout.split(":")[-1].split()) > 5, shown.stderr
    words = asr("transcribe", "--model", str(exp / "ci_lstm"), "--decoder", "rnn", wav)
    assert words.returncode == 1 and "use --output phones" in words.stderr


def test_second_run_reuses_everything(recipe):
    out, _ = recipe
    proc = run_recipe(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "training finished already" in (out / "exp/synth_tiny/log/train_ci.log").read_text()
    assert "training finished already" in (out / f"exp/synth_tiny/log/train_cd_{TINY_LEAVES}.log").read_text()
    assert "alignment of train is up to date, skipping" in proc.stderr
    assert f"tree {out}/exp/synth_tiny/tree_{TINY_LEAVES} is up to date, skipping" in proc.stderr
    assert "ci_lstm: dev decode is up to date, skipping" in proc.stderr
    assert f"cd_lstm_{TINY_LEAVES}: dev decode is up to date, skipping" in proc.stderr
    assert "ci_lstm: dev RNN decode is up to date, skipping" in proc.stderr
    assert "features exist with the same config" in (out / "exp/synth_tiny/log/feats.log").read_text()


def test_transcribe_files(recipe, tmp_path):
    out, _ = recipe
    model = out / "exp/synth_tiny/ci_lstm"
    wav = sorted((out / "data/synth_tiny/corpus/TEST").rglob("*.WAV"))[0]
    audio, rate = sf.read(wav)
    stereo8k = tmp_path / "stereo8k.wav"
    sf.write(stereo8k, np.stack([audio[::2], audio[::2]], axis=1), rate // 2)
    proc = asr("transcribe", "--model", str(model), "--output", "phones", str(wav), str(stereo8k))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{wav}: sil ")
    assert len(lines[0].split()) > 10
    assert "resampled 8000 Hz to 16000 Hz" in proc.stderr and "down-mixed 2 channels" in proc.stderr
    ctm = asr("transcribe", "--model", str(model), "--output", "phones", "--format", "ctm", str(wav))
    first = ctm.stdout.splitlines()[0].split()
    assert first[:3] == [wav.stem, "1", "0.00"] and first[4] == "sil"
    cd = asr("transcribe", "--model", str(out / f"exp/synth_tiny/cd_lstm_{TINY_LEAVES}"), "--output", "phones",
             str(wav))
    assert cd.returncode == 0 and cd.stdout.startswith(f"{wav}: sil ") and len(cd.stdout.split()) > 10


def _phone_edits(a: list[str], b: list[str]) -> int:
    from asr.score.align import align

    return sum(r != h for r, h in align(a, b))


def test_leading_silence_does_not_change_the_phones(recipe, tmp_path):
    """Five seconds of near-silence (-80 dBFS noise) before each of four test utterances:
    with CMVN over Silero's speech frames, the phones barely move."""
    out, _ = recipe
    model = out / "exp/synth_tiny/ci_lstm"
    wavs = sorted((out / "data/synth_tiny/corpus/TEST").rglob("*.WAV"))[:4]
    rng = np.random.default_rng(0)
    padded = []
    for wav in wavs:
        audio, rate = sf.read(wav)
        padded.append(tmp_path / f"{wav.parent.name}_{wav.stem}.wav")
        sf.write(padded[-1], np.concatenate([1e-4 * rng.standard_normal(5 * rate), audio]), rate)
    proc = asr("transcribe", "--model", str(model), "--output", "phones", *map(str, wavs + padded))
    assert proc.returncode == 0, proc.stderr
    phones = [line.split(": ", 1)[1].split() for line in proc.stdout.strip().splitlines()]
    plain, pad = phones[:4], phones[4:]
    edits = sum(_phone_edits(a, b) for a, b in zip(plain, pad))
    total = sum(len(a) for a in plain)
    # measured: 3 of 138 phones differ (0, 2, 1 and 0 in the four files)
    assert edits <= 0.06 * total, (edits, total, plain, pad)


def test_word_decoding_of_dev_and_test(recipe):
    """Stage 8 (words): acoustic scale and word penalty chosen on dev, test decoded once with them."""
    out, proc = recipe
    exp = out / "exp/synth_tiny"
    lm = (out / "data/synth_tiny/lang_words/lm_report.txt").read_text()
    assert "dev" in lm and "ppl" in lm
    results = {}
    for name in ("ci_lstm", f"cd_lstm_{TINY_LEAVES}"):
        model = exp / name
        tuned = yaml.safe_load((model / "word_decode.yaml").read_text())
        dev = yaml.safe_load((model / "decode_words_dev/scores.yaml").read_text())
        test = yaml.safe_load((model / "decode_words_test/scores.yaml").read_text())
        assert tuned["dev_wer"] == min(r["wer"] for r in tuned["sweep"]) == pytest.approx(dev["wer"], abs=0.01)
        assert (test["acwt"], test["word_penalty"]) == (tuned["acwt"], tuned["word_penalty"])
        assert test["failed_utterances"] == 0 and test["vocabulary"] >= 3000 and test["nj"] == 2
        report = (model / "decode_words_test/wer_report.txt").read_text()
        assert "SPKR" in report and "Sentence error rate" in report
        ctm = (model / "decode_words_test/hyp.ctm").read_text().splitlines()
        assert len(ctm) >= 0.8 * sum(len(line.split()) - 1 for line in
                                     (model / "decode_words_test/hyp.txt").read_text().splitlines())
        results[name] = (dev["wer"], test["wer"])
    # measured on the tiny corpus (seed 0, CPU; 135 test words, 6.7% of them OOV): CI dev 63.04 /
    # test 76.30, CD dev 58.70 / test 77.04 (one word is 0.74 points of test); a model that
    # learnt nothing reads about 100%
    assert results["ci_lstm"][1] < 84.0 and results[f"cd_lstm_{TINY_LEAVES}"][1] < 80.0, results
    assert results[f"cd_lstm_{TINY_LEAVES}"][0] < 68.0, results
    assert "| dev WER | test WER |" in proc.stdout


def _transcribe_flite(model: Path, sentence: str, wav: Path, fmt: str = "json") -> subprocess.CompletedProcess:
    from asr.corpus.tts import synthesize

    audio, rate, _ = synthesize(sentence, "kal16", {}, where="round trip")
    sf.write(wav, audio, rate)
    return asr("transcribe", "--model", str(model), "--format", fmt, str(wav))


def test_transcribe_prints_words_of_a_flite_sentence(recipe, tmp_path):
    """Round trip: flite reads in-vocabulary sentences, the tiny CD model prints words with
    times and confidences: a training prompt (read by a voice of the corpus) and a sentence
    the model never heard."""
    import json

    from asr.score.per import score_words

    out, _ = recipe
    model = out / f"exp/synth_tiny/cd_lstm_{TINY_LEAVES}"
    known = (out / "data/synth_tiny/train/text").read_text().splitlines()[0].split(maxsplit=1)[1]
    novel = "i think that is the way you want to do it"
    wers = {}
    for name, sentence in (("known", known), ("novel", novel)):
        proc = _transcribe_flite(model, sentence, tmp_path / f"{name}.wav")
        assert proc.returncode == 0, proc.stderr
        record = json.loads(proc.stdout)
        words = [w["word"] for w in record["words"]]
        assert record["text"] == " ".join(words)
        duration = sf.info(tmp_path / f"{name}.wav").duration
        assert all(0.0 <= w["start"] < w["end"] <= duration + 0.02 for w in record["words"])
        assert all(0.0 <= w["confidence"] <= 1.0 for w in record["words"])
        wers[name] = score_words({"u": sentence}, {"u": record["text"]}).counts.rate
        text = _transcribe_flite(model, sentence, tmp_path / f"{name}.wav", "text")
        assert text.stdout.strip() == f"{tmp_path / name}.wav: {record['text']}"  # the same words as JSON
    # measured with the tiny model: the training prompt 35.7% (14 words: "i to think of the game
    # it loan to have all the history"), the new sentence 54.5% ("i think that is lane wanting
    # to"); two more wrong words cross each bound; a broken front end or graph reads ~100%
    assert wers["known"] <= 50.0 and wers["novel"] <= 73.0, wers


def test_transcribe_bad_files_exit_nonzero(recipe, tmp_path):
    out, _ = recipe
    model = out / "exp/synth_tiny/ci_lstm"
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0), 16000)
    wav = sorted((out / "data/synth_tiny/corpus/TEST").rglob("*.WAV"))[0]
    proc = asr("transcribe", "--model", str(model), str(empty), str(tmp_path / "missing.flac"), str(wav))
    assert proc.returncode == 1
    assert "empty.wav: audio file is empty" in proc.stderr
    assert "missing.flac: audio file does not exist" in proc.stderr
    assert "2 of 3 files could not be decoded" in proc.stderr
    assert proc.stdout.startswith(str(wav))  # the good file is still decoded
    proc = asr("transcribe", "--model", str(tmp_path / "nomodel"), str(wav))
    assert proc.returncode == 1 and "model directory does not exist" in proc.stderr


def test_recipe_rejects_unknown_option(tmp_path):
    proc = subprocess.run(["bash", str(ROOT / "recipes/synth/run.sh"), "--sise", "tiny"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "unknown option --sise" in proc.stderr
    proc = subprocess.run(["bash", str(ROOT / "recipes/synth/run.sh"), "--stage", "x"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "--stage must be a number" in proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the choice made without a CUDA device")
def test_auto_size_is_medium_without_a_gpu(tmp_path):
    """make demo's --size auto: the medium corpus on CPU; --device cuda without one is refused."""
    assert asr("device").stdout.strip() == "cpu"
    script = str(ROOT / "recipes/synth/run.sh")
    proc = subprocess.run(["bash", script, "--stage", "99", "--out", str(tmp_path)], capture_output=True, text=True,
                          env=venv_env())
    assert proc.returncode == 0 and "--size auto: medium (device cpu)" in proc.stderr, proc.stderr
    assert (tmp_path / "exp/synth_medium").is_dir()
    proc = subprocess.run(["bash", script, "--stage", "99", "--device", "cuda", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=venv_env())
    assert proc.returncode == 1 and "torch sees no CUDA device" in proc.stderr, proc.stderr


def test_timit_recipe_needs_an_existing_path(tmp_path):
    env = venv_env()
    script = str(ROOT / "recipes/timit/run.sh")
    proc = subprocess.run(["bash", script], capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and "Usage:" in proc.stderr
    proc = subprocess.run(["bash", script, "--timit", str(tmp_path / "nope"), "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and "does not exist" in proc.stderr


@pytest.mark.slow
def test_demo_recipe_per(tmp_path):
    """make demo's recipe on the medium corpus (about 28 minutes on 2 CPU cores)."""
    proc = run_recipe(tmp_path, "medium", "recipes/synth/conf/ci_lstm_medium.yaml",
                      "recipes/synth/conf/cd_lstm_medium.yaml", "1000", 3600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    exp = tmp_path / "exp/synth_medium"
    ci, cd = ({s: yaml.safe_load((exp / m / f"decode_{s}/scores.yaml").read_text()) for s in ("dev", "test")}
              for m in ("ci_lstm", "cd_lstm_1000"))
    # Measured with seed 0 on CPU (make demo: 144 training speakers of four voices, speed
    # perturbation, CI 8 epochs, CD 5 from the CI model): CI dev 17.25%, test 15.13%, unseen
    # voice 35.54% PER, frame acc 73.07%; CD (1000 leaves) dev 12.47%, test 12.11%, unseen 35.28%.
    assert ci["dev"]["per"] < 18.5 and ci["test"]["per"] < 16.5, ci
    assert ci["test"]["frame_acc"] > 71.5, ci
    assert cd["dev"]["per"] < 13.5 and cd["test"]["per"] < 13.5, cd
    assert cd["dev"]["per"] < ci["dev"]["per"] - 1.0
    unseen = yaml.safe_load((exp / "cd_lstm_1000/decode_test_unseen/scores.yaml").read_text())
    assert unseen["per"] < 37.0, unseen
    words = {m: {s: yaml.safe_load((exp / m / f"decode_words_{s}/scores.yaml").read_text()) for s in ("dev", "test")}
             for m in ("ci_lstm", "cd_lstm_1000")}
    # Measured (make demo, seed 0, CPU): WER CI dev 23.20 / test 18.16, CD dev 15.64 / test 14.72
    assert words["cd_lstm_1000"]["dev"]["wer"] < 17.0 and words["cd_lstm_1000"]["test"]["wer"] < 16.5, words
    assert words["ci_lstm"]["test"]["wer"] < 20.0, words


def test_train_with_two_gloo_processes(recipe, tmp_path):
    """``asr train --ngpu 2`` on the CPU starts two gloo processes with torchrun; the first
    writes the bundle, which decodes."""
    out, _ = recipe
    data = out / "data/synth_tiny"
    conf = tmp_path / "uni.yaml"
    conf.write_text("model: {bidirectional: false, num_layers: 1, hidden: 32, output_delay: 2}\n"
                    "train: {epochs: 1, tbptt: 20, batch_frames: 2000}\n")
    model = tmp_path / "uni"
    proc = subprocess.run([str(BIN / "asr"), "train", str(data / "train"), str(data / "dev"), str(model),
                           "--conf", str(conf), "--device", "cpu", "--ngpu", "2"],
                          capture_output=True, text=True, timeout=600, env={**venv_env(), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "starting 2 training processes (gloo, on the CPU)" in proc.stderr
    assert "process 0 of 2" in proc.stderr
    for name in ("final.pt", "bundle.yaml", "history.yaml", "training_curve.png", "log_priors.txt"):
        assert (model / name).is_file(), name
    bad = subprocess.run([str(BIN / "asr"), "train", str(data / "train"), str(data / "dev"), str(tmp_path / "x"),
                          "--ngpu", "0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "--ngpu 0: give at least 1" in bad.stderr
