"""Prompt sampling from pocketsphinx's en-us trigram LM (real model files)."""

from __future__ import annotations

import numpy as np
import pytest

from asr.synth import prompts as P


@pytest.fixture(scope="module")
def sampler() -> P.PromptSampler:
    return P.load_sampler()


def test_model_files_exist():
    lm_path, dict_path = P.model_paths()
    assert lm_path.name == "en-us.lm.bin" and lm_path.stat().st_size > 10_000_000
    assert dict_path.name == "cmudict-en-us.dict"


def test_prompt_word_rules():
    assert P._is_prompt_word("water") and P._is_prompt_word("a") and P._is_prompt_word("i")
    for bad in ("tv", "mr", "x", "don't", "Water", "abc1", "café", ""):
        assert not P._is_prompt_word(bad), bad


def test_vocabulary(sampler):
    vocab = sampler.vocab
    assert len(vocab) == P.VOCAB_SIZE == len(set(vocab))
    assert vocab[0] == "the"  # most probable unigram of this LM
    assert all(P._is_prompt_word(w) for w in vocab)
    assert all(sampler.lm.prob([w]) > P.UNKNOWN_SCORE for w in vocab[:: 50])


def test_sampling_is_deterministic(sampler):
    a = [sampler.sample_words(np.random.default_rng([7, i])) for i in range(5)]
    b = [sampler.sample_words(np.random.default_rng([7, i])) for i in range(5)]
    c = [sampler.sample_words(np.random.default_rng([8, i])) for i in range(5)]
    assert a == b
    assert a != c


def test_sampled_words_in_vocabulary_and_lm(sampler):
    vocab = set(sampler.vocab)
    rng = np.random.default_rng(3)
    lengths = []
    for _ in range(15):
        words = sampler.sample_words(rng)
        lengths.append(len(words))
        assert P.MIN_WORDS <= len(words) <= P.MAX_WORDS
        for w in words:
            assert w in vocab
            assert sampler.lm.prob([w]) > P.UNKNOWN_SCORE
    # sentences end by </s> as well as by the cap (measured: mean ~10 words)
    assert min(lengths) < P.MAX_WORDS
    assert 6 <= np.mean(lengths) <= 13


def test_next_word_probs_follow_the_lm(sampler):
    """P(w | <s>) and P(w | <s> i) over the vocabulary, renormalised from lm.prob."""
    p = sampler.next_word_probs([P.SENT_START])
    assert p.shape == (len(sampler.vocab) + 1,)
    assert abs(p.sum() - 1.0) < 1e-9
    top = {sampler.vocab[k] for k in np.argsort(-p[:-1])[:10]}
    assert {"i", "the"} <= top, sorted(top)
    p_i = sampler.next_word_probs([P.SENT_START, "i"])
    best = sampler.vocab[int(np.argmax(p_i[:-1]))]
    assert best in {"think", "mean", "don", "have", "was", "am", "guess", "know"}, best
    # the trigram history matters: after "<s> i" "think" is far likelier than after "<s> the"
    k = sampler.vocab.index("think")
    assert p_i[k] > 20 * sampler.next_word_probs([P.SENT_START, "the"])[k]


def test_unique_prompts(sampler):
    taken = {"the end of it"}
    got = P.sample_unique_prompts(sampler, 8, np.random.default_rng(1), taken)
    texts = [" ".join(w) for w in got]
    assert len(set(texts)) == 8
    assert len(taken) == 9


def test_next_word_probs_close_to_exact_trigram(sampler):
    """Only the likeliest candidates get a trigram call; the rest back off. Measured TV <= 0.05."""
    targets = sampler.vocab + [P.SENT_END]
    for hist in (["of", "the"], ["i", "think"], ["want", "to"]):
        exact = np.array([sampler.lm.prob([w, hist[1], hist[0]]) for w in targets], dtype=np.float64)
        exact = np.exp((exact - exact.max()) * P.LOGMATH_TO_LN)
        exact /= exact.sum()
        approx = sampler.next_word_probs(hist)
        assert 0.5 * np.abs(exact - approx).sum() < 0.08, hist
