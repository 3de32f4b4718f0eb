"""End to end: the synthetic corpus through every stage of recipes/synth/run.sh.

Default run: one smoke run of the tiny corpus with the short training of tests/conf/*_smoke.yaml
(no held-out voice), checked stage by stage, and the commands that read its models. Slow tests
(``make test-slow``, ``pytest -m slow``): the tiny recipe with its own configuration, and make
demo's medium corpus.

Figures of a trained model move with the CPU (another CPU's float kernels, another thread
count, take training on another path), so the figures asserted here are relations between
systems and bounds a model that learnt nothing could not reach, with margins taken from the
spread measured over corpus seeds and torch thread counts (each comment names its measurement).
"""

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
#: The tree size of the tiny recipe's (and the smoke run's) CD model.
TINY_LEAVES = "300"
#: The tiny recipe as the slow tests run it.
TINY_OPTIONS = ("--conf", "recipes/synth/conf/ci_lstm_tiny.yaml", "--cd-conf", "recipes/synth/conf/cd_lstm_tiny.yaml",
                "--cd-leaves", TINY_LEAVES)
#: The smoke run: the tiny corpus without the held-out or the neural voice, shorter training (tests/conf/), a
#: 1000-word vocabulary and 500 LM sentences, stages 0-10 without the RNN decoder (stage 9: its dev
#: sweep alone takes minutes; the slow tests run it) and without MMI (tests/test_train_mmi.py and
#: the slow tests run it).
SMOKE_OPTIONS = ("--conf", "tests/conf/ci_lstm_smoke.yaml", "--cd-conf", "tests/conf/cd_lstm_smoke.yaml",
                 "--cd-leaves", TINY_LEAVES, "--unseen-voices", "", "--neural-voices", "", "--vocab-size", "1000",
                 "--lm-sentences", "500",
                 "--rnn-decoder", "false", "--mmi", "false")

# Margins, and the spread they come from (PER and WER in points; 16 dev and 16 test utterances,
# 135-138 words). The smoke run (SMOKE_OPTIONS) with corpus seeds 0, 1, 2:
#              CI dev  CI test  CD dev  CD test | WER: CI dev  CI test  CD dev  CD test
#   seed 0      54.07   57.72   54.63   55.37   |      77.54   84.44    78.26   85.93
#   seed 1      53.87   62.28   51.17   61.46   |      80.00   84.34    77.24   78.31
#   seed 2      50.36   55.43   48.34   58.72   |      73.30   79.43    72.73   81.14
# Seed 0 with 1 and with 2 torch threads gave the same PER to the last digit on the machine that
# measured it; the corpus seed moves one figure by up to 6.9 points (CI test). The tiny recipe
# (TINY_OPTIONS, seed 0), measured twice, before and after a trainer change (length-bucketed
# batches): CI dev 47.16 / 45.14, test 55.23 / 52.83, test_unseen 54.69 / 53.69; CD dev 45.50 /
# 42.75, test 53.52 / 50.94, test_unseen — / 54.94; WER CI dev 63.04 / 68.84, test 76.30 / 73.33,
# CD dev 58.70 / 60.14, test 77.04 / 68.89; on another CPU of the same kind the first version's
# CD model read an RNN dev PER of 44.59 against 41.83 here. A model that learnt nothing reads
# ~100% PER; the phone bigram nearly alone (the dev sweep's smallest acoustic scale, 0.05) reads
# 80-82% PER and the word trigram nearly alone (acwt 0.07) 91% WER, so the absolute bounds stay
# below those.
#: Most PER of the smoke run: the worst measured (62.28) plus 1.4 times the seed range (6.9).
SMOKE_PER_MAX = 72.0
#: Most WER of the smoke run on dev (worst measured 80.00, range 6.7) and test (worst 85.93,
#: range 7.6; 12.6% of the test words are out of the 1000-word vocabulary).
SMOKE_DEV_WER_MAX, SMOKE_TEST_WER_MAX = 88.0, 95.0
#: Most PER of the tiny recipe, HMM and RNN decoders: the worst measured (55.23) plus 1.4 times
#: the smoke run's seed range, as SMOKE_PER_MAX.
TINY_PER_MAX = 65.0
#: Most WER of the tiny recipe: the worst measured (77.04; one test word is 0.74 points) plus
#: 1.4 times the smoke run's test range (7.6).
TINY_WER_MAX = 88.0
#: Least PER gain of the HMM over the framewise argmax reading (measured 39.2 to 85 points).
ARGMAX_GAIN_MIN = 25.0
#: Most CD minus CI PER on each set. Measured: smoke +0.56, -2.35 (seed 0), -2.70, -0.82 (seed 1),
#: -2.02, +3.29 (seed 2, dev and test); tiny -1.66, -1.71, and -2.39, -1.89, +1.25 (test_unseen).
#: On 16 utterances the short-trained CD model is not reliably better; one with a wrong tree or
#: targets reads tens of points worse.
CD_OVER_CI_MAX = 6.0
#: Most RNN decoder minus HMM PER on each set. Measured: tiny CI -5.9 dev, -2.6 test, CD -3.7,
#: -2.4, and CI -2.9, -2.6, -3.3 (test_unseen), CD -4.6, -3.6, -5.0; smoke run with stage 9,
#: seed 0: CI -2.2, -1.2, CD -1.9, +2.2; seed 1 with a phone LM of the 64 training transcripts
#: only (--phone-lm-text false): CI +4.7, +3.4. The weaker the phone LM, the less the RNN decoder
#: gains; a broken one reads tens of points worse.
RNN_OVER_HMM_MAX = 5.0
#: Least gain in log-likelihood per frame of the Viterbi realignment over the uniform split under
#: the CI model (measured: smoke train 0.266-0.284, dev 0.338-0.367 over seeds 0-2; tiny train
#: 0.228, dev 0.405).
ALI_GAIN_MIN = 0.1
#: Most phone-LM perplexity (measured: tiny 10.3 dev, 14.3 test, 10.9 test_unseen; the uniform
#: distribution over 48 phones and the end symbol is 49).
PHONE_LM_PPL_MAX = 25.0
SYSTEMS = ("ci_lstm", f"cd_lstm_{TINY_LEAVES}")


def venv_env() -> dict[str, str]:
    """The environment with this virtualenv's ``asr`` first on PATH."""
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}


def run_recipe(out: Path, *options: str, size: str = "tiny", timeout: int = 1200,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """recipes/synth/run.sh on the CPU into ``out``; ``env``: more environment variables."""
    cmd = ["bash", str(ROOT / "recipes/synth/run.sh"), "--size", size, "--out", str(out), "--device", "cpu", *options]
    return subprocess.run(cmd, cwd=ROOT, env={**venv_env(), **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def asr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "asr"), *args], capture_output=True, text=True, timeout=300)


def scores(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    # one torch thread per process: the run neither waits on threads that other processes keep off
    # the cores (a 2-thread epoch took 60 s instead of 2 s on a loaded 2-core machine) nor depends
    # on the core count; decode-words still runs its 2 jobs
    proc = run_recipe(out, *SMOKE_OPTIONS, timeout=900, env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    out = tmp_path_factory.mktemp("recipe")
    proc = run_recipe(out, *TINY_OPTIONS)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc


# ---------------------------------------------------------------------------
# the smoke run (default suite)


def test_smoke_run_completes_every_stage(smoke):
    """Stages 0-8 and 10 each ran (stage_times.tsv times 0-8; stage 10 prints and writes the
    results table) and left their outputs; stage 9, the RNN decoder, is switched off and left
    no trace."""
    out, proc = smoke
    data, exp = out / "data/synth_tiny", out / "exp/synth_tiny"
    timed = [row.split("\t")[0].split()[0] for row in (exp / "stage_times.tsv").read_text().splitlines()]
    assert timed == [str(n) for n in range(9)], timed
    sets = ("dev", "test")
    outputs = {
        0: [data / "corpus/.complete"],
        1: [data / f"{s}/phone_text" for s in ("train", *sets)],
        2: [data / "lang/HCG.fst", data / "lang_words/G.fst", data / "lang_words/lexicon.txt",
            data / "graph_words_ci/HCLG.fst"],
        3: [data / f"{s}/{f}" for s in ("train", *sets) for f in ("feats.scp", "cmvn.scp")],
        4: [exp / f"ci_lstm/{f}" for f in ("final.pt", "bundle.yaml", "history.yaml", "training_curve.png")],
        5: [exp / f"ci_lstm/ali_{s}/ali.yaml" for s in ("train", "dev")],
        6: [exp / f"tree_{TINY_LEAVES}/{f}" for f in ("tree.json", "tree.yaml", "HCG.fst", "graph_words/HCLG.fst")],
        7: [exp / f"cd_lstm_{TINY_LEAVES}/{f}" for f in ("final.pt", "bundle.yaml", "targets.yaml")],
        8: [exp / f"{m}/decode_{kind}{s}/{f}" for m in SYSTEMS for kind in ("", "words_") for s in sets
            for f in ("scores.yaml", "per_report.txt" if not kind else "wer_report.txt")],
        10: [exp / "RESULTS.md"],
    }
    missing = {stage: [str(p.relative_to(out)) for p in paths if not p.is_file()] for stage, paths in outputs.items()}
    assert not any(missing.values()), missing
    assert not (data / "test_unseen").exists() and not (exp / "phone_lm").exists()
    assert not list(exp.glob("*/decode_rnn_*"))
    table = (exp / "RESULTS.md").read_text()
    for m in SYSTEMS:
        assert f"| {m} |" in proc.stdout and f"| {m} |" in table
        for kind in ("", "words_"):
            for s in sets:
                assert scores(exp / f"{m}/decode_{kind}{s}/scores.yaml")["failed_utterances"] == 0, (m, kind, s)
    assert "| dev WER | test WER |" in proc.stdout


def test_smoke_models_learn(smoke):
    """What the smoke run reaches on any CPU: PER and WER well below what a model that learnt
    nothing, or the language model alone, reads; the HMM far below the framewise argmax; the
    realignment above the uniform split; the CD model about as good as the CI model it started
    from, or better."""
    out, _ = smoke
    exp = out / "exp/synth_tiny"
    for name in ("train", "dev"):
        ali = scores(exp / f"ci_lstm/ali_{name}/ali.yaml")
        assert ali["failed_utterances"] == 0
        assert ali["loglike_per_frame"] > ali["uniform_loglike_per_frame"] + ALI_GAIN_MIN, ali
    per = {}
    for m in SYSTEMS:
        for s in ("dev", "test"):
            hmm = scores(exp / f"{m}/decode_{s}/scores.yaml")
            words = scores(exp / f"{m}/decode_words_{s}/scores.yaml")
            assert hmm["per"] < SMOKE_PER_MAX, (m, s, hmm)
            assert hmm["per"] < hmm["per_argmax"] - ARGMAX_GAIN_MIN, (m, s, hmm)
            assert words["wer"] < (SMOKE_DEV_WER_MAX if s == "dev" else SMOKE_TEST_WER_MAX), (m, s, words)
            per[m, s] = hmm["per"]
    for s in ("dev", "test"):
        assert per[SYSTEMS[1], s] < per["ci_lstm", s] + CD_OVER_CI_MAX, per


def test_test_set_is_decoded_with_the_scale_dev_chose(smoke):
    """The acoustic scale is chosen on dev alone; the test set only reads it."""
    out, _ = smoke
    model = out / "exp/synth_tiny/ci_lstm"
    tuned = scores(model / "decode.yaml")
    dev = scores(model / "decode_dev/scores.yaml")
    test = scores(model / "decode_test/scores.yaml")
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


def test_word_settings_are_the_best_of_the_dev_sweep(smoke):
    """Stage 8 (words): acoustic scale and word penalty chosen on dev, test decoded once with them."""
    out, _ = smoke
    for m in SYSTEMS:
        model = out / "exp/synth_tiny" / m
        tuned = scores(model / "word_decode.yaml")
        dev, test = (scores(model / f"decode_words_{s}/scores.yaml") for s in ("dev", "test"))
        assert tuned["dev_wer"] == min(r["wer"] for r in tuned["sweep"]) == pytest.approx(dev["wer"], abs=0.01)
        assert (test["acwt"], test["word_penalty"]) == (tuned["acwt"], tuned["word_penalty"])
        assert test["vocabulary"] >= 1000 and test["nj"] == 2
        assert "Sentence error rate" in (model / "decode_words_test/wer_report.txt").read_text()


@pytest.mark.slow  # kept out of the default suite's 5 minutes
def test_show_alignment_views(smoke, tmp_path):
    out, _ = smoke
    ali = out / "exp/synth_tiny/ci_lstm/ali_dev"
    text = asr("show-alignment", str(ali))
    assert text.returncode == 0 and " frames, " in text.stdout and "states: 0×" in text.stdout
    ctm = asr("show-alignment", str(ali), "--ctm").stdout.splitlines()
    assert len({line.split()[0] for line in ctm}) == 16  # every dev utterance
    assert asr("show-alignment", str(ali), "--textgrid", str(tmp_path / "tg")).returncode == 0
    assert len(list((tmp_path / "tg").glob("*.TextGrid"))) == 16
    bad = asr("show-alignment", str(ali), "nosuchutt")
    assert bad.returncode == 1 and "no alignment for utterance nosuchutt" in bad.stderr


@pytest.mark.slow  # kept out of the default suite's 5 minutes
def test_tree_on_hidden_activations_and_refusals(smoke, tmp_path):
    """build-tree on the CI network's last layer instead of the features; too few leaves,
    or alignments of the wrong data set, are refused by name. The recipe's tree keeps
    silence context-independent and stays within its leaf budget."""
    out, _ = smoke
    exp, data = out / "exp/synth_tiny", out / "data/synth_tiny"
    tree = yaml.safe_load((exp / f"tree_{TINY_LEAVES}/tree.yaml").read_text())
    # the tree's log-likelihood gain per frame: 1.82, 1.95, 2.22 measured (smoke run, seeds 0-2)
    assert 144 < tree["num_pdfs"] <= int(TINY_LEAVES) and tree["loglike_gain_per_frame"] > 1.0
    shown = asr("show-tree", str(exp / f"tree_{TINY_LEAVES}"))
    assert shown.returncode == 0 and "sil state 0: pdf " in shown.stdout  # silence is not split
    assert scores(exp / f"cd_lstm_{TINY_LEAVES}/decode_test/scores.yaml")["num_pdfs"] == tree["num_pdfs"]
    proc = asr("build-tree", str(data / "train"), str(exp / "ci_lstm/ali_train"), str(tmp_path / "t"),
               "--lang", str(data / "lang"), "--num-leaves", "200", "--hidden-from", str(exp / "ci_lstm"))
    assert proc.returncode == 0, proc.stderr
    info = yaml.safe_load((tmp_path / "t/tree.yaml").read_text())
    assert info["statistics"].startswith("hidden activations of") and 144 < info["num_pdfs"] <= 200
    proc = asr("build-tree", str(data / "train"), str(exp / "ci_lstm/ali_train"), str(tmp_path / "u"),
               "--lang", str(data / "lang"), "--num-leaves", "100")
    assert proc.returncode == 1 and "--num-leaves 100 is below the 144 (phone, state) pairs" in proc.stderr
    proc = asr("build-tree", str(data / "dev"), str(exp / "ci_lstm/ali_train"), str(tmp_path / "v"),
               "--lang", str(data / "lang"))
    assert proc.returncode == 1 and "ali_train" in proc.stderr, proc.stderr


@pytest.mark.slow  # kept out of the default suite's 5 minutes (test_bundle runs transcribe)
def test_transcribe_files(smoke, tmp_path):
    out, _ = smoke
    model = out / "exp/synth_tiny/ci_lstm"
    wav = sorted((out / "data/synth_tiny/corpus/TEST").rglob("*.WAV"))[0]
    audio, rate = sf.read(wav)
    stereo8k = tmp_path / "stereo8k.wav"
    sf.write(stereo8k, np.stack([audio[::2], audio[::2]], axis=1), rate // 2)
    proc = asr("transcribe", str(model), "--output", "phones", str(wav), str(stereo8k))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{wav}: sil ")
    assert len(lines[0].split()) > 10
    assert "resampled 8000 Hz to 16000 Hz" in proc.stderr and "down-mixed 2 channels" in proc.stderr
    ctm = asr("transcribe", str(model), "--output", "phones", "--format", "ctm", str(wav))
    first = ctm.stdout.splitlines()[0].split()
    assert first[:3] == [wav.stem, "1", "0.00"] and first[4] == "sil"
    cd = asr("transcribe", str(out / f"exp/synth_tiny/cd_lstm_{TINY_LEAVES}"), "--output", "phones", str(wav))
    assert cd.returncode == 0 and cd.stdout.startswith(f"{wav}: sil ") and len(cd.stdout.split()) > 10


@pytest.mark.slow  # kept out of the default suite's 5 minutes
def test_transcribe_bad_files_exit_nonzero(smoke, tmp_path):
    out, _ = smoke
    model = out / "exp/synth_tiny/ci_lstm"
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0), 16000)
    wav = sorted((out / "data/synth_tiny/corpus/TEST").rglob("*.WAV"))[0]
    proc = asr("transcribe", str(model), str(empty), str(tmp_path / "missing.flac"), str(wav))
    assert proc.returncode == 1
    assert "empty.wav: audio file is empty" in proc.stderr
    assert "missing.flac: audio file does not exist" in proc.stderr
    assert "2 of 3 files could not be decoded" in proc.stderr
    assert proc.stdout.startswith(str(wav))  # the good file is still decoded
    proc = asr("transcribe", str(tmp_path / "nomodel"), str(wav))
    assert proc.returncode == 1 and "model directory does not exist" in proc.stderr


# ---------------------------------------------------------------------------
# the recipe's options (no training)


def test_recipe_rejects_unknown_option(tmp_path):
    proc = subprocess.run(["bash", str(ROOT / "recipes/synth/run.sh"), "--sise", "tiny"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "unknown option --sise" in proc.stderr
    proc = subprocess.run(["bash", str(ROOT / "recipes/synth/run.sh"), "--stage", "x"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "--stage must be a number" in proc.stderr


@pytest.mark.slow  # kept out of the default suite's 5 minutes
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


# ---------------------------------------------------------------------------
# the tiny recipe (slow)


@pytest.mark.slow
def test_recipe_reaches_a_per_no_broken_model_could(recipe):
    out, proc = recipe
    model = out / "exp/synth_tiny/ci_lstm"
    test = scores(model / "decode_test/scores.yaml")
    dev = scores(model / "decode_dev/scores.yaml")
    unseen = scores(model / "decode_test_unseen/scores.yaml")
    # the measurements behind TINY_PER_MAX and ARGMAX_GAIN_MIN are listed with them
    for scored in (dev, test, unseen):
        assert scored["per"] < TINY_PER_MAX, scored
        assert scored["failed_utterances"] == 0
        assert scored["per"] < scored["per_argmax"] - ARGMAX_GAIN_MIN, scored
    assert unseen["acwt"] == dev["acwt"]
    assert "| ci_lstm |" in proc.stdout and "silence is scored" in proc.stdout
    assert (model / "decode_test/per_report.txt").is_file()


@pytest.mark.slow
def test_mmi_system(recipe):
    """Stage 7's MMI continuation of the CD model is a system of its own: trained from the CE
    model, decoded like the others, in the results table."""
    out, proc = recipe
    exp = out / "exp/synth_tiny"
    mmi = exp / f"cd_lstm_{TINY_LEAVES}_mmi"
    targets = scores(mmi / "targets.yaml")
    assert targets["criterion"] == "mmi" and targets["init_from"] == str((exp / f"cd_lstm_{TINY_LEAVES}").resolve())
    history = yaml.safe_load((mmi / "history.yaml").read_text())
    assert [r["epoch"] for r in history] == [1] and history[0]["seconds"] > 0
    for s in ("dev", "test"):
        assert scores(mmi / f"decode_{s}/scores.yaml")["per"] < TINY_PER_MAX
        assert scores(mmi / f"decode_words_{s}/scores.yaml")["wer"] < TINY_WER_MAX
    assert f"| cd_lstm_{TINY_LEAVES}_mmi | " in (exp / "RESULTS.md").read_text()
    assert "7 MMI" in (exp / "stage_times.tsv").read_text()


@pytest.mark.slow
def test_realignment_tree_and_cd_model(recipe):
    """Stages 5-7: the realignment scores higher than the uniform split under the model that
    made it, the tree keeps silence CI and stays within its leaf budget, and the CD model
    reads dev about as well as the CI model it started from, or better."""
    out, proc = recipe
    exp = out / "exp/synth_tiny"
    for name in ("train", "dev"):
        ali = scores(exp / f"ci_lstm/ali_{name}/ali.yaml")
        assert ali["failed_utterances"] == 0
        assert ali["loglike_per_frame"] > ali["uniform_loglike_per_frame"] + ALI_GAIN_MIN, ali
    tree = scores(exp / f"tree_{TINY_LEAVES}/tree.yaml")
    assert 144 < tree["num_pdfs"] <= int(TINY_LEAVES) and tree["loglike_gain_per_frame"] > 1.0
    cd = exp / f"cd_lstm_{TINY_LEAVES}"
    test = scores(cd / "decode_test/scores.yaml")
    dev = scores(cd / "decode_dev/scores.yaml")
    assert test["num_pdfs"] == tree["num_pdfs"] and test["context_width"] == 3
    ci_dev, ci_test = (scores(exp / f"ci_lstm/decode_{s}/scores.yaml") for s in ("dev", "test"))
    assert dev["per"] < TINY_PER_MAX and test["per"] < TINY_PER_MAX, (dev, test)
    assert dev["per"] < ci_dev["per"] + CD_OVER_CI_MAX, (dev, ci_dev)
    assert test["per"] < ci_test["per"] + CD_OVER_CI_MAX, (test, ci_test)
    assert f"| cd_lstm_{TINY_LEAVES} | {tree['num_pdfs']} | realigned, init ci_lstm |" in proc.stdout
    manifest = yaml.safe_load((cd / "bundle.yaml").read_text())["components"]
    assert manifest["context"]["context_width"] == 3 and manifest["context"]["num_pdfs"] == tree["num_pdfs"]


@pytest.mark.slow
def test_rnn_phone_decoder_stage(recipe):
    """Stage 9: the phone LM is trained (on the transcripts and the expanded word text) and
    installed in each bundle; the RNN decoder's settings are the best of the dev sweep, test
    reads them, and its PER stays within reach of the HMM with the phone bigram."""
    out, proc = recipe
    exp = out / "exp/synth_tiny"
    ppl = {Path(k).name: v["ppl"] for k, v in scores(exp / "phone_lm/phone_lm_ppl.yaml").items()}
    # A phone LM that learnt nothing has the perplexity of the uniform distribution over 49
    # symbols; measured (seed 0, CPU): dev 10.31, test 14.27, test_unseen 10.92 per phone.
    assert max(ppl.values()) < PHONE_LM_PPL_MAX and set(ppl) == {"dev", "test", "test_unseen"}, ppl
    for name in SYSTEMS:
        model = exp / name
        tuned = scores(model / "rnn_decode.yaml")
        assert round(tuned["dev_per"], 2) == min(r["per"] for r in tuned["sweep"]) and len(tuned["sweep"]) >= 10
        for s in ("dev", "test", "test_unseen"):
            rnn = scores(model / f"decode_rnn_{s}/scores.yaml")
            hmm = scores(model / f"decode_{s}/scores.yaml")
            assert rnn["decoder"] == "rnn" and rnn["failed_utterances"] == 0
            assert (rnn["acwt"], rnn["lm_weight"], rnn["penalty"]) == \
                tuple(tuned["settings"][k] for k in ("acwt", "lm_weight", "penalty"))
            assert rnn["per"] < TINY_PER_MAX, (name, s, rnn)
            assert rnn["per"] < hmm["per"] + RNN_OVER_HMM_MAX, (name, s, rnn, hmm)
        manifest = yaml.safe_load((model / "bundle.yaml").read_text())["components"]
        assert manifest["rnn_decode"]["phone_lm_sha256"] == manifest["phone_lm"]["sha256"]
        dev, test = (scores(model / f"decode_rnn_{s}/scores.yaml") for s in ("dev", "test"))
        assert f"| {dev['per']:.2f} | {test['per']:.2f} |" in proc.stdout  # the results table's RNN columns
    wav = next(iter((out / "data/synth_tiny/test/wav.scp").read_text().split("\n"))).split()[1]
    shown = asr("transcribe", str(exp / "ci_lstm"), "--output", "phones", "--decoder", "rnn", wav)
    assert shown.returncode == 0 and len(shown.stdout.split(":")[-1].split()) > 5, shown.stderr
    words = asr("transcribe", str(exp / "ci_lstm"), "--decoder", "rnn", wav)
    assert words.returncode == 1 and "use --output phones" in words.stderr


@pytest.mark.slow
def test_word_decoding_of_dev_and_test(recipe):
    """Stage 8 (words): acoustic scale and word penalty chosen on dev, test decoded once with them."""
    out, proc = recipe
    exp = out / "exp/synth_tiny"
    lm = (out / "data/synth_tiny/lang_words/lm_report.txt").read_text()
    assert "dev" in lm and "ppl" in lm
    for name in SYSTEMS:
        model = exp / name
        tuned = scores(model / "word_decode.yaml")
        # --tune-set auto: the tiny corpus has dev_unseen and dev_neural, so the mixed dev set
        assert Path(tuned["tuned_on"]).name == "dev_mixed"
        mixed = scores(model / "decode_words_dev_mixed/scores.yaml")
        dev = scores(model / "decode_words_dev/scores.yaml")
        test = scores(model / "decode_words_test/scores.yaml")
        assert tuned["dev_wer"] == min(r["wer"] for r in tuned["sweep"]) == pytest.approx(mixed["wer"], abs=0.01)
        for scored in (dev, test, scores(model / "decode_words_test_neural/scores.yaml")):
            assert (scored["acwt"], scored["word_penalty"]) == (tuned["acwt"], tuned["word_penalty"])
        assert test["failed_utterances"] == 0 and test["vocabulary"] >= 3000 and test["nj"] == 2
        report = (model / "decode_words_test/wer_report.txt").read_text()
        assert "SPKR" in report and "Sentence error rate" in report
        ctm = (model / "decode_words_test/hyp.ctm").read_text().splitlines()
        assert len(ctm) >= 0.8 * sum(len(line.split()) - 1 for line in
                                     (model / "decode_words_test/hyp.txt").read_text().splitlines())
        # measured (seed 0, CPU; 135 test words, 6.7% of them OOV): CI dev 63.04 / test 76.30,
        # CD dev 58.70 / test 77.04; a model that learnt nothing reads about 100%
        for scored in (dev, test):
            assert scored["wer"] < TINY_WER_MAX, (name, scored)
    assert "| dev WER | test WER |" in proc.stdout


@pytest.mark.slow
def test_second_run_reuses_everything(recipe):
    out, _ = recipe
    proc = run_recipe(out, *TINY_OPTIONS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "training finished already" in (out / "exp/synth_tiny/log/train_ci.log").read_text()
    assert "training finished already" in (out / f"exp/synth_tiny/log/train_cd_{TINY_LEAVES}.log").read_text()
    assert "alignment of train by ci_lstm is up to date, skipping" in proc.stderr
    assert "train_all and its alignment are up to date, skipping" in proc.stderr  # the neural voice's speakers
    assert "dev_mixed is up to date, skipping" in proc.stderr
    assert f"tree {out}/exp/synth_tiny/tree_{TINY_LEAVES} is up to date, skipping" in proc.stderr
    assert "ci_lstm: dev_mixed_phones decode is up to date, skipping" in proc.stderr
    assert f"cd_lstm_{TINY_LEAVES}: dev_mixed_phones decode is up to date, skipping" in proc.stderr
    assert "ci_lstm: dev_mixed_phones RNN decode is up to date, skipping" in proc.stderr
    assert "features exist with the same config" in (out / "exp/synth_tiny/log/feats.log").read_text()


def _phone_edits(a: list[str], b: list[str]) -> int:
    from asr.score.align import align

    return sum(r != h for r, h in align(a, b))


@pytest.mark.slow
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
    proc = asr("transcribe", str(model), "--output", "phones", *map(str, wavs + padded))
    assert proc.returncode == 0, proc.stderr
    phones = [line.split(": ", 1)[1].split() for line in proc.stdout.strip().splitlines()]
    plain, pad = phones[:4], phones[4:]
    edits = sum(_phone_edits(a, b) for a, b in zip(plain, pad))
    total = sum(len(a) for a in plain)
    # measured: 3 of 138 phones differ (0, 2, 1 and 0 in the four files)
    assert edits <= 0.06 * total, (edits, total, plain, pad)


def _transcribe_flite(model: Path, sentence: str, wav: Path, fmt: str = "json") -> subprocess.CompletedProcess:
    from asr.synth.tts import synthesize

    audio, rate, _ = synthesize(sentence, "kal16", {}, where="round trip")
    sf.write(wav, audio, rate)
    return asr("transcribe", str(model), "--format", fmt, str(wav))


@pytest.mark.slow
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
    # measured with the tiny model (seed 0, CPU): the training prompt 35.7% (14 words: "i to think
    # of the game it loan to have all the history"), the new sentence 54.5% of 11 words ("i think
    # that is lane wanting to"). One sentence moves by words, not points: the bounds allow four
    # (known) and three (novel) more wrong words, about twice the 4.7 points the smoke run's test
    # WER moved between corpus seeds; a broken front end or graph reads ~100%.
    assert wers["known"] < 65.0 and wers["novel"] < 82.0, wers


@pytest.mark.slow
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
                           "--lang", str(data / "lang"), "--conf", str(conf), "--device", "cpu", "--ngpu", "2"],
                          capture_output=True, text=True, timeout=600, env={**venv_env(), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "starting 2 training processes (gloo, on the CPU)" in proc.stderr
    assert "process 0 of 2" in proc.stderr
    for name in ("final.pt", "bundle.yaml", "history.yaml", "training_curve.png", "log_priors.txt"):
        assert (model / name).is_file(), name
    bad = subprocess.run([str(BIN / "asr"), "train", str(data / "train"), str(data / "dev"), str(tmp_path / "x"),
                          "--lang", str(data / "lang"), "--ngpu", "0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "--ngpu 0: give at least 1" in bad.stderr


@pytest.mark.slow
def test_demo_recipe_per(tmp_path):
    """make demo's recipe on the medium corpus (about 28 minutes on 2 CPU cores)."""
    proc = run_recipe(tmp_path, "--conf", "recipes/synth/conf/ci_lstm_medium.yaml",
                      "--cd-conf", "recipes/synth/conf/cd_lstm_medium.yaml", "--cd-leaves", "1000",
                      size="medium", timeout=3600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    exp = tmp_path / "exp/synth_medium"
    ci, cd = ({s: scores(exp / m / f"decode_{s}/scores.yaml") for s in ("dev", "test")}
              for m in ("ci_lstm", "cd_lstm_1000"))
    # Measured with seed 0 on CPU (make demo: 144 training speakers of four voices, speed
    # perturbation, CI 8 epochs, CD 5 from the CI model): CI dev 17.25%, test 15.13%, unseen
    # voice 35.54% PER, frame acc 73.07%; CD (1000 leaves) dev 12.47%, test 12.11%, unseen 35.28%.
    # The medium run's spread was not measured (28 minutes a run); the bounds sit 7-8 points above
    # the figures, about 1.6 times the largest move measured on the 16-utterance sets of the smoke
    # run (4.6 points), which the medium corpus's larger sets only narrow. CD beats CI on dev by 4.78
    # points, three times the margin asserted.
    assert ci["dev"]["per"] < 25.0 and ci["test"]["per"] < 23.0, ci
    assert cd["dev"]["per"] < 20.0 and cd["test"]["per"] < 20.0, cd
    assert cd["dev"]["per"] < ci["dev"]["per"] - 1.5, (cd, ci)
    unseen = scores(exp / "cd_lstm_1000/decode_test_unseen/scores.yaml")
    assert unseen["per"] < 45.0, unseen  # 35.28 measured: a voice never heard moves more
    words = {m: {s: scores(exp / m / f"decode_words_{s}/scores.yaml") for s in ("dev", "test")}
             for m in ("ci_lstm", "cd_lstm_1000")}
    # Measured (make demo, seed 0, CPU): WER CI dev 23.20 / test 18.16, CD dev 15.64 / test 14.72
    assert words["cd_lstm_1000"]["dev"]["wer"] < 23.0 and words["cd_lstm_1000"]["test"]["wer"] < 22.0, words
    assert words["ci_lstm"]["test"]["wer"] < 26.0, words
    # MMI after CE (stage 7, one epoch), measured (make demo, seed 0, CPU): WER dev_mixed 22.00 against
    # the CE model's 23.80, dev 11.25 / 12.83, test 6.88 / 8.80
    mmi = {s: scores(exp / f"cd_lstm_1000_mmi/decode_words_{s}/scores.yaml") for s in ("dev_mixed", "test")}
    ce_mixed = scores(exp / "cd_lstm_1000/decode_words_dev_mixed/scores.yaml")
    assert mmi["dev_mixed"]["wer"] < ce_mixed["wer"] + 0.5 and mmi["test"]["wer"] < 12.0, (mmi, ce_mixed)
