"""The word LM: text sampled from pocketsphinx's LM (fast sampler path), kaldingram
training and pruning, OOV rate and perplexity (real pocketsphinx and kaldingram)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asr.synth import prompts as P
from asr.errors import GraphError
from asr.lang import word_lm as W
from asr.lang.ngram import arpa_vocabulary, read_arpa_counts

VOCAB = 150  # small enough for the probed bigram table (~1 s)
SEED = 3


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """LM text of 40 sentences over the top 150 words, with one training sentence holding a new word."""
    path = tmp_path_factory.mktemp("wordlm") / "lm_text.txt"
    stats = W.sample_lm_text(path, 40, set(), SEED, vocab_size=VOCAB, extra_sentences=["the zorblat said"])
    return path, stats


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_text_layout_and_appended_vocabulary(sampled):
    path, stats = sampled
    lines = _lines(path)
    lm, _, ranked = W._ranked_words()
    vocab = P.select_vocabulary(lm, list(ranked), VOCAB)
    assert stats["sentences"] == stats["kept"] == 40 and stats["excluded"] == 0
    assert stats["extra_sentences"] == 1 and lines[40] == "the zorblat said"
    assert all(P.MIN_WORDS <= len(s.split()) <= P.MAX_WORDS for s in lines[:40])
    # words of the sampled sentences are in the vocabulary; the missing ones follow, one a line
    assert {w for s in lines[:40] for w in s.split()} <= set(vocab)
    appended = lines[41:]
    assert len(appended) == stats["appended_words"] > 0
    assert all(len(s.split()) == 1 for s in appended)
    assert {w for s in lines for w in s.split()} == set(vocab) | {"zorblat"}
    assert stats["tokens"] == sum(len(s.split()) for s in lines)


def test_excluded_prompts_never_appear_and_rest_is_deterministic(sampled, tmp_path):
    path, _ = sampled
    drawn = _lines(path)[:40]
    planted = [drawn[0], drawn[17]]
    # given as Kaldi transcripts would be: other case and spacing are normalised
    exclude = {planted[0].upper(), "  " + planted[1].replace(" ", "   ")}
    out = tmp_path / "text"
    stats = W.sample_lm_text(out, 40, exclude, SEED, vocab_size=VOCAB, extra_sentences=["the zorblat said"])
    kept = _lines(out)[: stats["kept"]]
    assert not set(planted) & set(_lines(out))
    assert stats["excluded"] == sum(s in planted for s in drawn) >= 2
    assert kept == [s for s in drawn if s not in planted]  # same seed: the same draws


def test_same_text_with_two_jobs(tmp_path):
    """The work is split in seeded chunks: the text does not depend on num_jobs."""
    n = W.CHUNK_SENTENCES + 20
    one = W.sample_lm_text(tmp_path / "one", n, set(), 11, vocab_size=VOCAB, num_jobs=1)
    two = W.sample_lm_text(tmp_path / "two", n, set(), 11, vocab_size=VOCAB, num_jobs=2)
    assert (tmp_path / "one").read_text() == (tmp_path / "two").read_text()
    assert one["tokens"] == two["tokens"]


def test_fast_sampler_follows_the_trigram():
    """The fast path's distribution is the LM's trigram renormalised over the vocabulary."""
    lm, lm_path, ranked = W._ranked_words()
    vocab = list(ranked[:VOCAB])
    fast = P.PromptSampler(lm, vocab, P.bigram_successors(lm, lm_path, vocab, probes=ranked[-5:]))
    targets = [*vocab, P.SENT_END]
    for hist in (["<s>"], ["<s>", "i"], ["of", "the"], ["want", "to"]):
        ctx = list(reversed(hist)) if hist != ["<s>"] else ["<s>"]
        exact = np.array([lm.prob([w, *ctx]) for w in targets], dtype=np.float64)
        exact = np.exp((exact - exact.max()) * P.LOGMATH_TO_LN)
        exact /= exact.sum()
        assert 0.5 * np.abs(fast.next_word_probs(hist) - exact).sum() < 0.01, hist
    # the sampler draws that distribution (without building it): coarse check on the likeliest words
    h2, h1 = len(vocab), vocab.index("i")
    rng = np.random.default_rng(0)
    draws = np.bincount([fast._fast_draw(h2, h1, rng) for _ in range(4000)], minlength=len(targets)) / 4000
    p = fast.next_word_probs(["<s>", "i"])
    top = np.argsort(-p)[:5]
    assert np.all(np.abs(draws[top] - p[top]) < 4 * np.sqrt(p[top] / 4000) + 1e-3)


def test_fast_sampler_caches_do_not_change_the_text(monkeypatch):
    """The caches only save lm.prob calls: caches that evict almost everything draw the same
    sentences as the default ones."""
    lm, lm_path, ranked = W._ranked_words()
    vocab = list(ranked[:VOCAB])
    table = P.bigram_successors(lm, lm_path, vocab, probes=ranked[-5:])

    def draw() -> list[list[str]]:
        sampler, rng = P.PromptSampler(lm, vocab, table), np.random.default_rng(3)
        return [sampler.sample_words(rng) for _ in range(300)]

    default = draw()
    monkeypatch.setattr(P, "FAST_TRIGRAM_CACHE_SIZE", 3)
    monkeypatch.setattr(P, "FAST_BIGRAM_CACHE_SIZE", 3)
    assert draw() == default


@pytest.fixture(scope="module")
def trained(sampled, tmp_path_factory) -> tuple[Path, dict]:
    path, _ = sampled
    arpa = tmp_path_factory.mktemp("wordlm_arpa") / "lm.arpa"
    return arpa, W.train_word_lm(path, arpa, order=3, prune=1e-5)


def test_every_vocabulary_word_is_in_the_pruned_lm(sampled, trained):
    path, _ = sampled
    arpa, stats = trained
    words = {w for s in _lines(path) for w in s.split()}
    assert arpa_vocabulary(arpa) == words  # pruning keeps every unigram
    assert stats["counts"] == read_arpa_counts(arpa) and sorted(stats["counts"]) == [1, 2, 3]
    assert stats["counts"][1] == stats["counts_unpruned"][1] == len(words) + 2  # + <s>, </s>
    assert stats["ngrams"] < sum(stats["counts_unpruned"].values())  # 1e-5 prunes some
    assert stats["tokens"] == sum(len(s.split()) for s in _lines(path))


def test_oov_counted_not_fatal(trained, tmp_path):
    arpa, _ = trained
    (tmp_path / "text").write_text("u1 the zorblat said\nu2 i think that qwxlpz is a good thing\nu3\n")
    r = W.lm_report(arpa, {"dev": tmp_path / "text"})["dev"]
    assert (r["sentences"], r["words"], r["oov"]) == (2, 11, 1)
    assert r["oov_rate"] == pytest.approx(1 / 11)
    assert math.isfinite(r["ppl"]) and r["ppl"] > 1
    table = W.format_lm_report({"dev": r})
    assert "dev" in table.splitlines()[1] and "9.09" in table


TOY_ARPA = """\\data\\
ngram 1=5
ngram 2=8

\\1-grams:
-99.0000000\t<s>\t-0.2730013
-0.6020600\ta\t-0.3979400
-0.6020600\tb\t0.0791812
-0.6020600\tc\t-0.5740313
-0.6020600\t</s>

\\2-grams:
-0.2730013\t<s> a
-0.6989700\t<s> c
-0.1870866\ta b
-0.8239087\ta </s>
-0.8239087\tb c
-0.8239087\tb b
-0.3979400\tb </s>
-0.0969100\tc a

\\end\\
"""


def test_perplexity_of_a_toy_lm(tmp_path):
    """kaldingram's bigram of 'a b c a / a b b / c a b', scored by hand."""
    arpa = tmp_path / "toy.arpa"
    arpa.write_text(TOY_ARPA)
    (tmp_path / "text").write_text("s1 a b c\ns2 a zz b\n")
    r = W.lm_report(arpa, {"t": tmp_path / "text"})["t"]
    # s1: P(a|<s>) P(b|a) P(c|b) bow(c)P(</s>); s2: P(a|<s>), zz skipped, P(b) (no "zz b"), P(</s>|b)
    s1 = -0.2730013 - 0.1870866 - 0.8239087 + (-0.5740313 - 0.6020600)
    s2 = -0.2730013 - 0.6020600 - 0.3979400
    assert r["logprob"] == pytest.approx(s1 + s2, abs=1e-9)
    assert r["oov"] == 1 and r["words"] == 6
    assert r["ppl"] == pytest.approx(10 ** (-(s1 + s2) / (6 - 1 + 2)), rel=1e-9)
    assert r["ppl1"] == pytest.approx(10 ** (-(s1 + s2) / (6 - 1)), rel=1e-9)
    # kaldingram's own ppl agrees on the OOV-free sentence (it drops a sentence with an OOV)
    (tmp_path / "s1").write_text("a b c\n")
    out = subprocess.run([sys.executable, "-m", "kaldingram.cli", "ppl", "--lm", str(arpa), "--text",
                          str(tmp_path / "s1")], capture_output=True, text=True, check=True)
    logprob = re.search(r"logprob=\s*(-?[\d.]+)", out.stdout + out.stderr)
    assert logprob and float(logprob.group(1)) == pytest.approx(s1, abs=1e-4)


def test_bad_text_files_name_the_file(tmp_path, trained):
    arpa, _ = trained
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(GraphError, match=re.escape(str(empty))):
        W.train_word_lm(empty, tmp_path / "lm.arpa")
    assert not (tmp_path / "lm.arpa").exists()
    with pytest.raises(GraphError, match=re.escape(str(tmp_path / "missing.txt"))):
        W.train_word_lm(tmp_path / "missing.txt", tmp_path / "lm.arpa")
    blank = tmp_path / "text"
    blank.write_text("u1 a b\n\nu2 c\n")
    with pytest.raises(GraphError, match=re.escape(f"{blank}:2")):
        W.lm_report(arpa, {"dev": blank})
    (tmp_path / "bad.arpa").write_text("not an arpa file\n")
    with pytest.raises(GraphError, match="bad.arpa"):
        W.lm_report(tmp_path / "bad.arpa", {"dev": blank})


def test_make_word_lm_is_resumable(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train").write_text("u1 the cat sat down\n")
    (data / "dev").write_text("u2 i think so\n")
    lang = tmp_path / "lang"
    args = dict(num_sentences=30, vocab_size=VOCAB, order=2, prune=1e-6, seed=1)
    arpa = W.make_word_lm(lang, data / "train", [data / "dev"], **args)
    record = W._read_record(lang / W.LM_YAML)
    assert arpa == lang / W.LM_ARPA and "cat" in arpa_vocabulary(arpa)
    assert record["vocab_size"] == VOCAB and record["lm"]["stats"]["counts"] == read_arpa_counts(arpa)
    assert "i think so" not in _lines(lang / W.LM_TEXT)
    stamps = {p: (lang / p).stat().st_mtime_ns for p in (W.LM_TEXT, W.LM_ARPA)}
    W.make_word_lm(lang, data / "train", [data / "dev"], **args)  # up to date: nothing rebuilt
    assert stamps == {p: (lang / p).stat().st_mtime_ns for p in stamps}
    W.make_word_lm(lang, data / "train", [data / "dev"], **{**args, "prune": 0.0})  # only the LM
    assert (lang / W.LM_TEXT).stat().st_mtime_ns == stamps[W.LM_TEXT]
    assert (lang / W.LM_ARPA).stat().st_mtime_ns != stamps[W.LM_ARPA]
    assert W._read_record(lang / W.LM_YAML)["lm"]["settings"]["prune"] == 0.0


@pytest.mark.slow
def test_dumped_bigram_table_matches_probing(tmp_path):
    """The truncated ARPA dump and pair-by-pair probing agree (measured: ~5% of the dumped
    pairs score exactly as backed off, no trigram; probing cannot see those, harmlessly)."""
    lm, lm_path, ranked = W._ranked_words()
    vocab = list(ranked[:200])
    dumped = P.read_bigram_successors(lm_path, vocab, tmp_path)
    probed = P.bigram_successors(lm, lm_path, vocab, probes=ranked[-5:])
    d = {(h, int(t)) for h in range(len(vocab) + 1) for t in dumped.of(h)}
    p = {(h, int(t)) for h in range(len(vocab) + 1) for t in probed.of(h)}
    assert p <= d
    assert len(d - p) < 0.1 * len(d)
