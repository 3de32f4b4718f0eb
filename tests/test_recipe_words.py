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

#: Most WER of the tiny word-supervised system (3000-word LM, 64 training utterances; measured
#: on the CPU, seed 0: the CD model 94-96% on test under load, dev similar). A model that learnt
#: nothing reads 100% or more (every word deleted or wrong).
TINY_WORDS_WER_MAX = 99.5
#: Least improvement (ms) of the flat start's realignments over the equal alignment, mean word
#: boundary error on dev (medium corpus: 103.7 → 33.8 ms after round 0).
ALI_GAIN_MIN_MS = 10.0


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
    for ali in (exp / "ci_lstm_round0/ali_dev", exp / "ci_lstm/ali_dev", exp / "ci_lstm_dnn/ali_dev"):
        meta = scores(ali / "ali.yaml")
        assert meta["failed_utterances"] == 0 and (ali / "words.ctm").is_file()
        word_mae, phone_mae = boundary_error_ms(ali, corpus)
        assert word_mae < equal[0] - ALI_GAIN_MIN_MS, (ali, word_mae, equal)
        assert phone_mae < equal[1] - ALI_GAIN_MIN_MS, (ali, phone_mae, equal)


@pytest.mark.slow
def test_every_stage_runs_to_a_word_error_rate(words_run):
    out, proc = words_run
    exp = out / "exp/words_synth_tiny"
    stages = [line.split("\t")[0] for line in (exp / "stage_times.tsv").read_text().splitlines()]
    assert {s.split()[0] for s in stages} >= {"0", "1", "2", "3", "4", "5", "6", "7", "8"}, stages
    systems = [exp / "ci_lstm", *sorted(exp.glob("cd_lstm_*"))]
    assert len(systems) == 2
    for model in systems:
        for s in ("dev", "test", "test_unseen"):
            scored = scores(model / f"decode_words_{s}/scores.yaml")
            assert scored["failed_utterances"] == 0 and scored["wer"] < TINY_WORDS_WER_MAX, (model, s, scored)
        assert not list(model.glob("decode_dev")), "word supervision scores no PER"
    assert "| dev WER | test WER |" in proc.stdout
