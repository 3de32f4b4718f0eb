"""End to end (slow): recipes/words/run.sh on the tiny synthetic corpus in the LibriSpeech layout,
word transcripts only: flat start, realignment rounds over the training graphs, tree, CD model,
the DNN's realignment the tree and CD model read, word decoding. The corpus keeps the synthesizer's true boundaries (alignments/), so each round's
alignment of dev is scored against them with bench/alignment.py's scorer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "bench"))
import alignment as bench  # noqa: E402

#: Most WER of the tiny word-supervised system. 64 training utterances are too few for a flat
#: start to reach a useful WER (measured, CPU, seed 0: CI dev / test / test_unseen 93.48 / 99.26 /
#: 96.65, CD 91.30 / 99.26 / 90.43); the bound catches a decoder that runs wild (insertions).
TINY_WORDS_WER_MAX = 105.0
#: Least improvement (ms) of the last CI model's and the DNN's realignments over the equal
#: alignment, mean word-boundary error on dev. Measured on tiny (CPU, seed 0): equal 103.1, round 0
#: (the DNN on the equal alignment of 64 utterances) 314.8 — worse: too little speech to learn
#: from, so it is not asserted —, round 1 81.6, last CI 63.6, the DNN 46.3; on medium 103.7, 36.2,
#: 21.4, 19.0, 15.4.
ALI_GAIN_MIN_MS = 20.0


def scores(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def words_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("words")
    cmd = ["bash", str(ROOT / "recipes/words/run.sh"), "--size", "tiny", "--out", str(out), "--device", "cpu"]
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc


def boundary_error_ms(ali: Path, corpus: Path) -> tuple[float, float]:
    """Mean absolute word and phone boundary error (ms) of an alignment dir against the truth."""
    from asr.corpus.datadir import read_datadir

    dd = read_datadir(bench.ali_source_data(ali))
    finder = bench.TruthFinder(corpus)
    truth = {u: finder.find(u, bench.audio_path(dd.wav[u])) for u in dd.utts}
    res = bench.SetResult(ali.name, "dev", sorted(dd.utts), bench.read_ali_dir(ali), {}, 0.0)
    s = bench.score_set(res, truth)
    return s["words"]["mae_ms"], s["phones"]["mae_ms"]


@pytest.mark.slow
def test_flat_start_realignments_come_closer_to_the_truth(words_run):
    out, _ = words_run
    exp, corpus = out / "exp/words_synth_tiny", out / "data/words_synth_tiny/corpus"
    equal = boundary_error_ms(exp / "ali_equal_dev", corpus)
    errors = {}
    for name in ("ci_lstm_round0", "ci_lstm_round1", "ci_lstm", "ci_lstm_dnn"):
        ali = exp / name / "ali_dev"
        meta = scores(ali / "ali.yaml")
        assert meta["failed_utterances"] == 0 and (ali / "words.ctm").is_file()
        errors[name] = boundary_error_ms(ali, corpus)
    for name in ("ci_lstm", "ci_lstm_dnn"):
        word_mae, phone_mae = errors[name]
        assert word_mae < equal[0] - ALI_GAIN_MIN_MS, (name, errors, equal)
        assert phone_mae < equal[1] - ALI_GAIN_MIN_MS, (name, errors, equal)
    # each round realigns closer than the one before (tiny: 314.8, 81.6, 63.6, 46.3 ms)
    words = [errors[n][0] for n in ("ci_lstm_round0", "ci_lstm_round1", "ci_lstm", "ci_lstm_dnn")]
    assert words == sorted(words, reverse=True), errors


@pytest.mark.slow
def test_every_stage_runs_to_a_word_error_rate(words_run):
    out, proc = words_run
    exp = out / "exp/words_synth_tiny"
    stages = [line.split("\t")[0] for line in (exp / "stage_times.tsv").read_text().splitlines()]
    assert {s.split()[0] for s in stages} >= {"0", "1", "2", "3", "4", "5", "6", "7", "8"}, stages
    systems = [exp / "ci_lstm", exp / "ci_lstm_realigned", *sorted(exp.glob("cd_lstm_*"))]
    assert len(systems) == 3
    # the CI LSTM retrained on the DNN's realignment, and the CD model started from it
    realigned = scores(exp / "ci_lstm_realigned/targets.yaml")["alignment"]
    assert realigned == [str((exp / f"ci_lstm_dnn/ali_{s}").resolve()) for s in ("train", "dev")]
    assert scores(systems[2] / "targets.yaml")["init_from"] == str((exp / "ci_lstm_realigned").resolve())
    for model in systems:
        for s in ("dev", "test", "test_unseen"):
            scored = scores(model / f"decode_words_{s}/scores.yaml")
            assert scored["failed_utterances"] == 0 and scored["wer"] < TINY_WORDS_WER_MAX, (model, s, scored)
        assert not list(model.glob("decode_dev")), "word supervision scores no PER"
    assert "| dev WER | test WER |" in proc.stdout
