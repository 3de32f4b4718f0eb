"""The word LM's perplexity report is reproducible; the source LM's ceiling; bench/word_lm.py.

A small LM (40 sampled sentences over the top 150 words, the probed bigram
table: ~1 s) is built twice from the same seed and settings: the text, the
ARPA file and the perplexity must come out the same, and equal to the figure
a real run printed.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asr.errors import GraphError
from asr.lang import word_lm as W
from asr.synth import prompts as P

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import word_lm as bench  # noqa: E402

VOCAB = 150
SEED = 5
#: Kaldi text scored by the tests here: 32 words, 2 of them outside the top-150 vocabulary (zorblat, one more).
HELD_OUT = """\
u1 i think that it is a good thing
u2 we have to do it now
u3 he said that the people of the world
u4 this is not the way we want to go zorblat
"""
#: What a real run printed for HELD_OUT (lm_report and source_lm_report, this file's settings).
EXPECTED_PPL = 50.58732153756543
EXPECTED_SOURCE_PPL = 8.854999916880015


def _build(root: Path) -> tuple[Path, dict]:
    """LM text (40 sentences, seed SEED, vocab 150, HELD_OUT excluded) and a pruned trigram in ``root``."""
    held = root / "held" / "text"
    held.parent.mkdir(parents=True)
    held.write_text(HELD_OUT)
    text = root / W.LM_TEXT
    W.sample_lm_text(text, 40, W.read_excluded_prompts([held]), SEED, vocab_size=VOCAB)
    W.train_word_lm(text, root / W.LM_ARPA, order=3, prune=1e-5)
    return held, W.lm_report(root / W.LM_ARPA, {"held": held})["held"]


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory) -> tuple[tuple[Path, dict], tuple[Path, dict]]:
    return _build(tmp_path_factory.mktemp("a")), _build(tmp_path_factory.mktemp("b"))


def test_same_seed_and_settings_give_the_same_perplexity(two_builds):
    (held_a, a), (held_b, b) = two_builds
    root_a, root_b = held_a.parents[1], held_b.parents[1]
    assert (root_a / W.LM_TEXT).read_bytes() == (root_b / W.LM_TEXT).read_bytes()
    assert (root_a / W.LM_ARPA).read_bytes() == (root_b / W.LM_ARPA).read_bytes()
    assert a == b
    assert (a["sentences"], a["words"], a["oov"]) == (4, 32, 2)
    assert a["ppl"] == pytest.approx(EXPECTED_PPL, rel=1e-6)


def test_source_ceiling_is_a_normalised_distribution():
    """P(. | h) of the source restricted to the vocabulary (+ </s>) sums to 1, for trigram and bigram histories."""
    lm, _, vocab = W._load_vocabulary(VOCAB)
    targets = [*vocab, W.EOS]
    for ctx in (["<s>"], ["is", "it"], ["the", "of"], []):
        norm = W._source_log_norm(lm, targets, ctx)
        total = sum(10 ** (lm.prob([t, *ctx]) * P.LOGMATH_TO_LN / math.log(10) - norm) for t in targets)
        assert total == pytest.approx(1.0, abs=1e-9), ctx


def test_source_ceiling_figure_and_oov(two_builds, tmp_path):
    (held, trained), _ = two_builds
    r = W.source_lm_report({"held": held}, VOCAB)["held"]
    assert (r["sentences"], r["words"], r["oov"]) == (4, 32, 2)
    assert r["ppl"] == pytest.approx(EXPECTED_SOURCE_PPL, rel=1e-6)
    assert W.source_lm_report({"held": held}, VOCAB)["held"] == r  # pure
    # by hand: one sentence, the OOV skipped and the history restarted after it
    lm, _, vocab = W._load_vocabulary(VOCAB)
    targets = [*vocab, W.EOS]
    one = tmp_path / "text"
    one.write_text("u1 the zorblat people\n")

    def lp(w, ctx):
        return lm.prob([w, *ctx]) * P.LOGMATH_TO_LN / math.log(10) - W._source_log_norm(lm, targets, ctx)

    want = lp("the", ["<s>"]) + lp("people", []) + lp(W.EOS, ["people"])
    got = W.source_lm_report({"one": one}, VOCAB)["one"]
    assert got["logprob"] == pytest.approx(want, abs=1e-9) and got["oov"] == 1
    assert got["ppl"] == pytest.approx(10 ** (-want / 3), rel=1e-9)


def test_source_ceiling_names_a_bad_text(tmp_path):
    with pytest.raises(GraphError, match=re.escape(str(tmp_path / "missing"))):
        W.source_lm_report({"x": tmp_path / "missing"}, VOCAB)
    bad = tmp_path / "text"
    bad.write_text("u1 a b\n\n")
    with pytest.raises(GraphError, match=re.escape(f"{bad}:2")):
        W.source_lm_report({"x": bad}, VOCAB)


def test_bench_scores_given_lms(two_builds, capsys, monkeypatch):
    (held, a), (held_b, _) = two_builds
    monkeypatch.setattr(sys, "argv", ["word_lm.py", "--lm", str(held.parents[1]), str(held_b.parents[1] / W.LM_ARPA),
                                      "--texts", str(held)])
    assert bench.main() == 0
    out = capsys.readouterr().out.splitlines()
    assert "held ppl" in out[0] and len(out) == 3
    assert all(f"{a['ppl']:.1f}" in line for line in out[1:])


@pytest.mark.slow  # kept out of the default suite's 5 minutes
def test_bench_builds_old_and_new_side_by_side(two_builds, tmp_path):
    """A quick build run (tiny settings) in a child process, as a user runs it."""
    (held, _), _ = two_builds
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "word_lm.py"), "--texts", str(held),
                           "--sentences", "20", "40", "--prune", "1e-5", "1e-6", "--vocab-size", str(VOCAB),
                           "--seed", str(SEED), "--work-dir", str(tmp_path / "w")],
                          capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""},
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.splitlines()
    assert rows[1].split()[:3] == ["old", "20", "1e-05"] and rows[2].split()[:3] == ["new", "40", "1e-06"]
    assert not set(HELD_OUT.splitlines()) & set((tmp_path / "w" / "new" / W.LM_TEXT).read_text().splitlines())
    bad = subprocess.run([sys.executable, str(ROOT / "bench" / "word_lm.py"), "--texts", str(tmp_path / "nope"),
                          "--lm", str(tmp_path / "w" / "new")], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""}, timeout=120)
    assert bad.returncode != 0 and "nope" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_defaults_follow_the_library():
    from asr import cli

    assert cli.WORD_LM_DEFAULTS["lm_sentences"] == W.DEFAULT_NUM_SENTENCES
    assert cli.WORD_LM_DEFAULTS["prune"] == W.DEFAULT_PRUNE
    assert cli.WORD_LM_DEFAULTS["vocab_size"] == W.DEFAULT_VOCAB_SIZE
    assert np.isfinite(W.DEFAULT_PRUNE) and W.DEFAULT_NUM_SENTENCES % W.CHUNK_SENTENCES == 0


@pytest.mark.slow  # kept out of the default suite's 5 minutes
def test_a_larger_sample_starts_with_the_smaller_one(tmp_path):
    """Chunks are seeded by their index: the first N sentences (N a multiple of CHUNK_SENTENCES)
    of a larger draw are the N-sentence draw (what the bench's threshold sweeps rely on)."""
    n = W.CHUNK_SENTENCES
    small = W.sample_lm_text(tmp_path / "small", n, set(), SEED, vocab_size=VOCAB)
    W.sample_lm_text(tmp_path / "large", 2 * n, set(), SEED, vocab_size=VOCAB)
    assert small["kept"] == n
    assert (tmp_path / "large").read_text().splitlines()[:n] == (tmp_path / "small").read_text().splitlines()[:n]


REAL_LANG = Path("/work/runs/phones/data/synth_medium")


@pytest.mark.skipif(not (REAL_LANG / "lang_words" / W.LM_ARPA).is_file(), reason="no synth_medium run here")
def test_the_old_demo_lm_figure():
    """The figure docs quote for the old default LM (20k sentences, 1e-7) on synth_medium's dev set."""
    r = W.lm_report(REAL_LANG / "lang_words" / W.LM_ARPA, {"dev": REAL_LANG / "dev" / "text"})["dev"]
    assert (r["words"], r["oov"]) == (569, 0)
    assert r["ppl"] == pytest.approx(135.9, abs=0.05)
