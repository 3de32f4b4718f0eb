"""Prompt sentences sampled from pocketsphinx's English trigram LM.

The LM (``en-us/en-us.lm.bin``, 72k words) cannot be written as ARPA (the
writer segfaults), so it is only queried: ``lm.prob([w, h1, h2])`` is
log P(w | h2 h1) in LogMath units (base 1.0001). The sampling vocabulary is
the ``VOCAB_SIZE`` most probable unigrams that are purely alphabetic, lower
case, in the pocketsphinx dictionary and look like pronounceable words (at
least one vowel letter; single letters only "a" and "i"). Each next word is
drawn from the trigram distribution renormalised over that vocabulary plus
``</s>``.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from asr.errors import DataError

log = logging.getLogger(__name__)

#: Size of the sampling vocabulary (most probable unigrams that qualify).
VOCAB_SIZE = 4000
#: Prompt length bounds, in words.
MIN_WORDS = 4
MAX_WORDS = 14
#: LogMath base of pocketsphinx's LM scores: value * ln(1.0001) is a natural log.
LOGMATH_TO_LN = math.log(1.0001)
#: pocketsphinx's score for an unknown word.
UNKNOWN_SCORE = -536870912
#: Next-word candidates scored by the trigram (the likeliest under the bigram).
TRIGRAM_CANDIDATES = 1200
#: Least likely candidates whose trigram - bigram score estimates the back-off weight.
BACKOFF_PROBE = 200
#: Bigram distributions kept per sampler (~30 kB each).
BIGRAM_CACHE_SIZE = 2048
#: Redraws allowed when a sampled prompt duplicates an earlier one.
MAX_DUPLICATE_DRAWS = 1000
SENT_START = "<s>"
SENT_END = "</s>"
_VOWEL_LETTERS = frozenset("aeiouy")
_SINGLE_LETTER_WORDS = frozenset({"a", "i"})


def model_paths() -> tuple[Path, Path]:
    """(LM binary, pronunciation dictionary) shipped with the pocketsphinx package.

    Raises:
        DataError: when pocketsphinx or its en-us model files are missing.
    """
    try:
        import pocketsphinx
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise DataError(f"pocketsphinx is not installed ({e}); it ships the prompt LM") from None
    root = Path(pocketsphinx.get_model_path()) / "en-us"
    lm_path, dict_path = root / "en-us.lm.bin", root / "cmudict-en-us.dict"
    for p in (lm_path, dict_path):
        if not p.is_file():
            raise DataError(f"{p}: pocketsphinx model file is missing")
    return lm_path, dict_path


def load_lm(lm_path: Path):
    """Load a pocketsphinx NGramModel (quietly)."""
    from pocketsphinx import Config, LogMath, NGramModel

    config = Config(loglevel="ERROR")
    try:
        return NGramModel(config, LogMath(), str(lm_path))
    except Exception as e:  # pocketsphinx raises bare RuntimeError/ValueError
        raise DataError(f"{lm_path}: cannot load the n-gram LM ({e})") from None


def _is_prompt_word(word: str) -> bool:
    """Purely alphabetic lower-case ASCII, with a vowel letter; single letters a / i only."""
    if not (word.isascii() and word.isalpha() and word.islower()):
        return False
    if len(word) == 1:
        return word in _SINGLE_LETTER_WORDS
    return any(c in _VOWEL_LETTERS for c in word)


def read_dictionary_words(dict_path: Path) -> list[str]:
    """Distinct head words of a CMU-style dictionary (alternates ``w(2)`` skipped), sorted."""
    words: set[str] = set()
    with open(dict_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            head = line.split(" ", 1)[0].strip()
            if head and _is_prompt_word(head):
                words.add(head)
    if not words:
        raise DataError(f"{dict_path}: no usable words in the pronunciation dictionary")
    return sorted(words)


def select_vocabulary(lm, words: list[str], size: int = VOCAB_SIZE) -> list[str]:
    """The ``size`` words with the highest unigram score (ties by spelling), known to the LM."""
    scored = [(lm.prob([w]), w) for w in words]
    known = [(s, w) for s, w in scored if s > UNKNOWN_SCORE]
    known.sort(key=lambda sw: (-sw[0], sw[1]))
    if len(known) < MIN_WORDS:
        raise DataError(f"only {len(known)} dictionary words are in the LM; cannot sample prompts")
    return [w for _, w in known[:size]]


@dataclass
class PromptSampler:
    """Draws word sequences from a trigram LM restricted to ``vocab``.

    Attributes:
        lm: a pocketsphinx NGramModel.
        vocab: the sampling vocabulary; index ``len(vocab)`` stands for ``</s>``.
    """

    lm: object
    vocab: list[str]

    def __post_init__(self) -> None:
        self._start_cdf: Optional[np.ndarray] = None
        self._targets = [*self.vocab, SENT_END]
        self._bigram_cache: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def _bigram(self, h1: str) -> tuple[np.ndarray, np.ndarray]:
        """(scores (V+1,) float32 LogMath of P(w | h1) over vocab + </s>, indices sorted by score desc); cached."""
        hit = self._bigram_cache.get(h1)
        if hit is not None:
            self._bigram_cache.move_to_end(h1)
            return hit
        prob = self.lm.prob
        scores = np.fromiter((prob([w, h1]) for w in self._targets), dtype=np.float64, count=len(self._targets))
        hit = (scores.astype(np.float32), np.argsort(-scores, kind="stable")[:TRIGRAM_CANDIDATES])
        self._bigram_cache[h1] = hit
        if len(self._bigram_cache) > BIGRAM_CACHE_SIZE:
            self._bigram_cache.popitem(last=False)
        return hit

    def next_word_probs(self, history: Sequence[str]) -> np.ndarray:
        """P(next | history) over vocab + ``</s>``: (len(vocab)+1,), sums to 1.

        ``history`` is in reading order, e.g. ``["<s>", "i"]``; the last two
        words count. The TRIGRAM_CANDIDATES likeliest words after the last
        word are scored by the trigram ``lm.prob([w, h1, h2])``; the rest,
        which the trigram scores by backing off, get their bigram score plus
        the back-off weight, estimated as the median trigram-minus-bigram
        score of the least likely candidates (a trigram call per word costs
        ~2 us, and this keeps a step at ~1/3 of the full cost).
        """
        h1 = history[-1]
        bigram, order = self._bigram(h1)
        scores = bigram.astype(np.float64)
        if len(history) >= 2:
            h2, prob = history[-2], self.lm.prob
            cand = order
            tri = np.fromiter((prob([self._targets[k], h1, h2]) for k in cand), dtype=np.float64, count=len(cand))
            backoff = float(np.median(tri[-BACKOFF_PROBE:] - scores[cand[-BACKOFF_PROBE:]]))
            scores += backoff
            scores[cand] = tri
        p = np.exp((scores - scores.max()) * LOGMATH_TO_LN)
        return p / p.sum()

    def _cdf(self, history: Sequence[str]) -> np.ndarray:
        """Cumulative next-word distribution; the one after ``<s>`` alone is cached."""
        if len(history) == 1:
            if self._start_cdf is None:
                self._start_cdf = np.cumsum(self.next_word_probs(history))
            return self._start_cdf
        return np.cumsum(self.next_word_probs(history))

    def sample_words(self, rng: np.random.Generator) -> list[str]:
        """One prompt of MIN_WORDS..MAX_WORDS words (``</s>`` refused before MIN_WORDS)."""
        words: list[str] = []
        end_index = len(self.vocab)
        while len(words) < MAX_WORDS:
            cdf = self._cdf([SENT_START, *words])
            if len(words) < MIN_WORDS:
                cdf = cdf[:end_index] / cdf[end_index - 1]
            k = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
            k = min(k, len(cdf) - 1)
            if k == end_index:
                break
            words.append(self.vocab[k])
        return words


def load_sampler(vocab_size: int = VOCAB_SIZE) -> PromptSampler:
    """A PromptSampler over pocketsphinx's en-us LM and dictionary."""
    lm_path, dict_path = model_paths()
    lm = load_lm(lm_path)
    vocab = select_vocabulary(lm, read_dictionary_words(dict_path), vocab_size)
    log.info("prompt vocabulary: %d words from %s", len(vocab), dict_path.name)
    return PromptSampler(lm, vocab)


def sample_unique_prompts(
    sampler: PromptSampler, n: int, rng: np.random.Generator, taken: set[str], max_tries: int = MAX_DUPLICATE_DRAWS
) -> list[list[str]]:
    """``n`` prompts whose texts are not in ``taken``; each new text is added to ``taken``.

    Raises:
        DataError: when ``max_tries`` draws in a row give only known prompts.
    """
    prompts: list[list[str]] = []
    while len(prompts) < n:
        for _ in range(max_tries):
            words = sampler.sample_words(rng)
            text = " ".join(words)
            if text not in taken:
                break
        else:
            raise DataError(f"prompt sampler gave {max_tries} duplicate prompts in a row")
        taken.add(text)
        prompts.append(words)
    return prompts
