"""Prompt sentences sampled from pocketsphinx's English trigram LM.

The LM (``en-us/en-us.lm.bin``, 72k words) cannot be written as ARPA (the
writer segfaults), so it is only queried: ``lm.prob([w, h1, h2])`` is
log P(w | h2 h1) in LogMath units (base 1.0001). The sampling vocabulary is
the ``VOCAB_SIZE`` most probable unigrams that are purely alphabetic, lower
case, in the pocketsphinx dictionary and look like pronounceable words (at
least one vowel letter; single letters only "a" and "i"). Each next word is
drawn from the trigram distribution renormalised over that vocabulary plus
``</s>``.

Over a large vocabulary (the word LM's training text, 20k words) that costs
too much: scoring a history's bigram over every word is 20k ``lm.prob``
calls. A :class:`BigramSuccessors` table (which bigrams the LM stores,
read from the truncated ARPA dump that pocketsphinx writes before it
crashes) makes the bigram exact at the cost of one call per stored
successor, and tells which trigram histories exist; give it to
:class:`PromptSampler` to switch to that fast path. Without it (the
default, used for the corpus prompts) sampling is unchanged.

The dump is cut short by a crash at a point that varies from run to run;
the table is built from a fixed part of it (all but its last
DUMP_TAIL_LINES bigram lines), so that it, and every text sampled with it,
is the same in every run.
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import tempfile
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
#: Fast path: fewest trigram candidates of a stored trigram history.
FAST_TRIGRAM_CANDIDATES = 150
#: Fast path: extra trigram candidates per unit of the history's probability P(h2) P(h1 | h2).
FAST_TRIGRAM_BUDGET = 1.0e6
#: Fast path: bigram entries kept (successor scores only: ~1 kB on average).
FAST_BIGRAM_CACHE_SIZE = 50_000
#: Fast path: trigram entries kept (candidate scores: ~2 kB each on average, <= ~10 kB).
#: The word LM's text (200,000 sentences a worker) meets ~100,000 distinct histories in its
#: first 40,000 sentences: 20,000 entries drew 10,000 sentences in 13.5 s there, an unbounded
#: cache in 8.9 s (the same sentences: the cache only saves lm.prob calls).
FAST_TRIGRAM_CACHE_SIZE = 250_000
#: Fast path: unigram draws tried before the exact masked draw of a backed-off word.
REST_DRAWS = 20
#: Stand-in for the unigram probability of ``<s>`` as a history (about one word in ten starts a sentence).
SENT_START_RATE = 0.1
#: Largest vocabulary whose stored bigrams are found by scoring every pair (else: the ARPA dump).
PROBE_MAX_VOCAB = 500
#: Rare words whose bigram scores give a history's back-off weight when probing.
NUM_PROBES = 9
#: Wall-clock limit for the child process that dumps the LM's bigrams, seconds.
DUMP_TIMEOUT_S = 600
#: Last lines of the dump's bigram section never read, wherever the dump stopped: their
#: targets count as successors of every history. What the crash loses varies from run to
#: run (14-107 lines measured); these lines hold 15 targets of the 20k-word vocabulary.
#: The same table in every run (see read_bigram_successors).
DUMP_TAIL_LINES = 1000
#: Dumps tried before settling for one that stopped inside DUMP_TAIL_LINES' margin.
DUMP_TRIES = 3
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


@dataclass(frozen=True)
class BigramSuccessors:
    """Which bigrams an LM stores, restricted to a vocabulary of V words (CSR).

    History ``h`` is ``vocab[h]`` (h < V) or ``<s>`` (h == V); target ``t`` is
    ``vocab[t]`` (t < V) or ``</s>`` (t == V). ``indices[indptr[h]:indptr[h+1]]``
    are the sorted targets with a stored bigram ``h t``, plus every target
    of the dump's tail (not read, see :func:`read_bigram_successors`; so
    that a target missing from a row is surely scored by backing off).

    Attributes:
        indptr: (V+2,) int64 row offsets.
        indices: (nnz,) int32 target indices.
        key: what the table was built from (e.g. a digest of the LM and the
            vocabulary), saved with it so that a cached table can be checked.
    """

    indptr: np.ndarray
    indices: np.ndarray
    key: str = ""

    @property
    def vocab_size(self) -> int:
        return len(self.indptr) - 2

    def of(self, h: int) -> np.ndarray:
        """Sorted targets (int32) that may have a stored bigram after history ``h``."""
        return self.indices[self.indptr[h] : self.indptr[h + 1]]

    def has(self, h: int, t: int) -> bool:
        """True when the bigram ``h t`` may be stored (history index h, target index t)."""
        row = self.of(h)
        k = int(np.searchsorted(row, t))
        return k < len(row) and int(row[k]) == t

    def save(self, path: Path) -> None:
        """Write to ``path`` (.npz), atomically."""
        from asr.io import atomic_path

        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, indptr=self.indptr, indices=self.indices, key=np.array(self.key))

    @classmethod
    def load(cls, path: Path) -> "BigramSuccessors":
        """Read a table written by :meth:`save`."""
        try:
            with np.load(path) as z:
                return cls(z["indptr"], z["indices"], str(z["key"]))
        except (OSError, KeyError, ValueError) as e:
            raise DataError(f"{path}: cannot read the bigram successor table ({e})") from None


_DUMP_CHILD = """
import sys
from pocketsphinx import Config, LogMath, NGramModel
lm = NGramModel(Config(loglevel="ERROR"), LogMath(), sys.argv[1])
lm.write(sys.argv[2], NGramModel.str_to_type("arpa"))
"""


def _dump_arpa(lm_path: Path, out: Path) -> None:
    """Let pocketsphinx write ``lm_path`` as ARPA to ``out`` in a child process.

    pocketsphinx 5.1.1 writes garbage probabilities and segfaults after nearly
    all bigrams (upstream bug): the crash is expected, only a dump without a
    ``\\2-grams:`` section is an error.
    """
    try:
        proc = subprocess.run([sys.executable, "-c", _DUMP_CHILD, str(lm_path), str(out)],
                              capture_output=True, text=True, timeout=DUMP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise DataError(f"{lm_path}: dumping the LM as ARPA timed out after {DUMP_TIMEOUT_S} s") from None
    log.debug("ARPA dump of %s exited with %d (a crash is expected)", lm_path, proc.returncode)
    if not out.is_file():
        raise DataError(f"{lm_path}: pocketsphinx wrote no ARPA dump (exit {proc.returncode}): "
                        f"{proc.stderr[-500:]}")


def _read_dump_order(f) -> tuple[dict[bytes, int], Optional[int]]:
    """(position of each word in the dump's ``\\1-grams:`` section (the LM's word order),
    number of bigrams in its header, None when not given).

    Leaves ``f`` just after the ``\\2-grams:`` line.
    """
    num_bigrams: Optional[int] = None
    for line in f:
        if line.startswith(b"\\1-grams:"):
            break
        if line.startswith(b"ngram 2="):
            try:
                num_bigrams = int(line[len(b"ngram 2="):])
            except ValueError:
                pass
    order: dict[bytes, int] = {}
    for line in f:
        if line.startswith(b"\\2-grams:"):
            return order, num_bigrams
        fields = line.split(b"\t")
        if len(fields) >= 2:
            order[fields[1]] = len(order)
    raise DataError("ARPA dump has no \\2-grams: section")


@dataclass
class _DumpPairs:
    """The bigrams read from an ARPA dump (see _read_dump_pairs)."""

    hs: list[int]  # history ids
    ts: list[int]  # target ids
    last_pos: int  # word-order position of the last target seen
    complete: bool  # the section's end was seen
    lines: int  # complete bigram lines read
    cut_pos: Optional[int]  # word-order position of the target of line ``cut_line``; None: not reached


def _read_dump_pairs(
    f, order: dict[bytes, int], hist: dict[bytes, int], tgt: dict[bytes, int], cut_line: int = -1
) -> _DumpPairs:
    """The bigrams of the dump's ``\\2-grams:`` section, ``f`` just after its first line.

    Lines are ``prob <TAB> h <TAB> w [<TAB> backoff]``, sorted by w in the
    LM's word order (checked). Only pairs with ``h`` in ``hist`` and ``w``
    in ``tgt`` are kept. A truncated last line is dropped. ``cut_line``: the
    index of the (complete) line whose target's position is ``cut_pos``.
    """
    hs: list[int] = []
    ts: list[int] = []
    last_w, last_pos, t, n, cut_pos = b"", -1, None, 0, None
    for line in f:
        if line.startswith(b"\\"):
            return _DumpPairs(hs, ts, last_pos, True, n, cut_pos)
        if not line.endswith(b"\n"):
            continue
        fields = line.rstrip(b"\r\n").split(b"\t")
        if len(fields) not in (3, 4):
            continue
        w = fields[2]
        if w != last_w:
            pos = order.get(w, -1)
            if pos < last_pos:
                raise DataError(f"ARPA dump: bigram word {w!r} is unknown or out of order")
            last_w, last_pos, t = w, pos, tgt.get(w)
        if n == cut_line:
            cut_pos = last_pos
        n += 1
        h = hist.get(fields[1])
        if t is not None and h is not None:
            hs.append(h)
            ts.append(t)
    return _DumpPairs(hs, ts, last_pos, False, n, cut_pos)


def read_bigram_successors(lm_path: Path, vocab: list[str], work_dir: Optional[Path] = None) -> BigramSuccessors:
    """The bigrams ``lm_path`` stores among ``vocab`` (+ ``<s>`` / ``</s>``).

    Dumps the LM as ARPA in a child process (~60-140 MB in a temporary
    directory under ``work_dir``, removed after; ~5 s) and reads the pairs
    from its bigram section (~4 s).

    The dump is cut short by a crash (pocketsphinx 5.1.1), and where it
    stops varies from run to run (the crash loses the writer's unflushed
    buffer, and the garbage probabilities it writes vary in length). So
    that the table does not depend on that, the bigram section is read up
    to a fixed line, DUMP_TAIL_LINES before its end (as counted in the
    dump's header), whether or not the dump goes further: the targets from
    that line on (in the LM's word order; the section is sorted by
    target) are counted as successors of every history (scored exactly, so
    the sampler stays exact). A dump that stops before that line is made
    again (DUMP_TRIES in all); after that, its last complete group is the
    limit, with a warning (the table, and the text sampled with it, may then
    differ between runs).

    Raises:
        DataError: no usable dump.
    """
    V = len(vocab)
    hist = {w.encode(): i for i, w in enumerate(vocab)}
    hist[SENT_START.encode()] = V
    tgt = {w.encode(): i for i, w in enumerate(vocab)}
    tgt[SENT_END.encode()] = V
    for attempt in range(1, DUMP_TRIES + 1):
        with tempfile.TemporaryDirectory(dir=work_dir, prefix="lmdump.") as tmp:
            dump = Path(tmp) / "lm.arpa"
            _dump_arpa(lm_path, dump)
            with open(dump, "rb") as f:
                try:
                    order, num_bigrams = _read_dump_order(f)
                    cut_line = -1 if num_bigrams is None else max(num_bigrams - DUMP_TAIL_LINES, 0)
                    pairs = _read_dump_pairs(f, order, hist, tgt, cut_line)
                except DataError as e:
                    raise DataError(f"{lm_path}: {e}") from None
        if pairs.cut_pos is not None:
            break
        if num_bigrams is None or pairs.complete:  # another dump would not do better
            log.warning("%s: the ARPA dump's header gives %s bigrams, its section has %d lines",
                        lm_path, "no count of" if num_bigrams is None else num_bigrams, pairs.lines)
            break
        log.warning("%s: the ARPA dump stopped %d of %d bigram lines short of its end, more than "
                    "DUMP_TAIL_LINES = %d (dump %d of %d)", lm_path, num_bigrams - pairs.lines,
                    num_bigrams, DUMP_TAIL_LINES, attempt, DUMP_TRIES)
    if pairs.cut_pos is not None:
        cut_pos = pairs.cut_pos
    else:
        if num_bigrams is not None:
            log.warning("%s: no ARPA dump reached the last %d bigram lines: the bigram table, and the "
                        "text sampled with it, may differ between runs", lm_path, DUMP_TAIL_LINES)
        cut_pos = len(order) if pairs.complete else pairs.last_pos
    uncovered = sorted(i for w, i in tgt.items() if order.get(w, -1) >= cut_pos)
    return _successor_table(np.asarray(pairs.hs, np.int64), np.asarray(pairs.ts, np.int64), uncovered, V,
                            lm_path)


def probe_bigram_successors(lm, vocab: list[str], probes: Sequence[str]) -> BigramSuccessors:
    """The stored bigrams among ``vocab``, found by scoring every pair: ~4 (V+1)^2 ``lm.prob`` calls.

    For small vocabularies only (V = 150: ~1 s). A pair (h, t) counts as
    stored when its score differs by more than one LogMath unit (rounding)
    from unigram + back-off, or when it is a trigram history (h t has a
    back-off weight); the back-off weights come from the median over
    ``probes``, words too rare to have a stored bigram (at least 3). Many
    stored bigrams are only there as trigram histories, with exactly their
    backed-off score: the second test finds those. A stored bigram with its
    backed-off score and no trigram is missed: harmless, scores agree.
    """
    if len(probes) < 3:
        raise DataError(f"need at least 3 probe words to find back-off weights, got {len(probes)}")
    prob, V = lm.prob, len(vocab)
    targets = [*vocab, SENT_END]
    uni = np.array([prob([w]) for w in targets], dtype=np.int64)
    probe_uni = np.array([prob([w]) for w in probes], dtype=np.int64)
    hs, ts = [], []
    for h, word in enumerate([*vocab, SENT_START]):
        probe_bi = np.array([prob([w, word]) for w in probes], dtype=np.int64)
        diff = np.array([prob([t, word]) for t in targets], dtype=np.int64) - uni
        stored = np.abs(diff - np.median(probe_bi - probe_uni)) > 1
        stored[:V] |= [_is_trigram_history(lm, word, t, probes[:3]) for t in vocab]
        hs.append(np.full(int(stored.sum()), h))
        ts.append(np.flatnonzero(stored))
    return _successor_table(np.concatenate(hs), np.concatenate(ts), [], V, Path("<probed>"))


def _is_trigram_history(lm, h2: str, h1: str, probes: Sequence[str]) -> bool:
    """True when (h2 h1) has a trigram back-off weight (more than rounding) over the ``probes``."""
    tri = np.array([lm.prob([w, h1, h2]) - lm.prob([w, h1]) for w in probes], dtype=np.int64)
    return abs(float(np.median(tri))) > 1


def bigram_successors(
    lm, lm_path: Path, vocab: list[str], work_dir: Optional[Path] = None, probes: Optional[Sequence[str]] = None
) -> BigramSuccessors:
    """The LM's stored bigrams among ``vocab``: probed pair by pair for up to
    PROBE_MAX_VOCAB words (``probes``: rare words outside ``vocab``; default:
    the NUM_PROBES rarest qualifying dictionary words), else read from the
    ARPA dump (~10 s)."""
    if len(vocab) > PROBE_MAX_VOCAB:
        return read_bigram_successors(lm_path, vocab, work_dir)
    if probes is None:
        _, dict_path = model_paths()
        rare = select_vocabulary(lm, read_dictionary_words(dict_path), size=10**9)[-NUM_PROBES:]
        probes = [w for w in rare if w not in set(vocab)]
    return probe_bigram_successors(lm, vocab, probes)


def _successor_table(hs: np.ndarray, ts: np.ndarray, uncovered: list[int], V: int, what: Path) -> BigramSuccessors:
    """CSR table from (history, target) pairs, the ``uncovered`` targets added to every row."""
    if uncovered:
        log.info("%s: %d of %d targets in the dump's unread tail; scored exactly", what, len(uncovered), V + 1)
        extra = np.asarray(uncovered, np.int64)
        hs = np.concatenate([hs, np.repeat(np.arange(V + 1), len(extra))])
        ts = np.concatenate([ts, np.tile(extra, V + 1)])
    keys = np.unique(hs * (V + 1) + ts)
    indptr = np.searchsorted(keys // (V + 1), np.arange(V + 2)).astype(np.int64)
    log.info("%s: %d stored bigrams among %d words", what, len(keys), V)
    return BigramSuccessors(indptr, (keys % (V + 1)).astype(np.int32))


@dataclass
class _FastBigram:
    """P(. | h1) on the fast path: stored successors (LogMath scores, descending) + back-off.

    ``cum`` is the running sum of exp(score - best) over ``idx`` (natural
    units, relative to ``ref`` = the best score in nats); ``rest`` is the
    summed unigram probability of the targets without a stored bigram.
    """

    idx: np.ndarray  # (S,) int32 target indices, by score descending
    scores: np.ndarray  # (S,) float64 LogMath log P(t | h1)
    backoff: float  # LogMath back-off weight of h1
    probe: int  # a target without a stored bigram (its trigram gives the trigram back-off)
    probe_score: float  # LogMath log P(probe | h1)
    cum: np.ndarray  # (S,) float64
    ref: float  # nats
    rest: float  # probability


@dataclass
class _FastTrigram:
    """P(. | h2 h1) of the first C successors of h1 (``cum``: running sum of exp(score) / exp(``ref``), nats)."""

    scores: np.ndarray  # (C,) float64 LogMath log P(t | h2 h1), in the order of _FastBigram.idx
    backoff: float  # LogMath back-off weight of h2 h1
    cum: np.ndarray  # (C,) float64
    ref: float  # nats


def _log(x: float) -> float:
    """Natural log, -inf for x <= 0."""
    return math.log(x) if x > 0.0 else -math.inf


@dataclass
class PromptSampler:
    """Draws word sequences from a trigram LM restricted to ``vocab``.

    Attributes:
        lm: a pocketsphinx NGramModel.
        vocab: the sampling vocabulary; index ``len(vocab)`` stands for ``</s>``.
        successors: the LM's stored bigrams among ``vocab``; when given, the
            fast path is used (see :meth:`next_word_probs`). None: the
            default path of the corpus prompts.
        trigram_candidates, trigram_budget: fast path only: a stored trigram
            history (h2 h1) gets trigram scores for its
            ``trigram_candidates + trigram_budget * P(h2) P(h1 | h2)`` likeliest
            stored bigram successors.
    """

    lm: object
    vocab: list[str]
    successors: Optional[BigramSuccessors] = None
    trigram_candidates: int = FAST_TRIGRAM_CANDIDATES
    trigram_budget: float = FAST_TRIGRAM_BUDGET

    def __post_init__(self) -> None:
        self._start_cdf: Optional[np.ndarray] = None
        self._targets = [*self.vocab, SENT_END]
        self._bigram_cache: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        if self.successors is not None:
            self._init_fast()

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
        if self.successors is not None:
            return self._fast_next_word_probs(history)
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

    # ------------------------------------------------------------ fast path

    def _init_fast(self) -> None:
        """Unigram scores, word indices and caches of the fast path."""
        assert self.successors is not None
        if self.successors.vocab_size != len(self.vocab):
            raise DataError(f"bigram successor table is for {self.successors.vocab_size} words, "
                            f"the vocabulary has {len(self.vocab)}")
        prob = self.lm.prob
        self._unigram = np.fromiter((prob([w]) for w in self._targets), dtype=np.float64,
                                    count=len(self._targets))
        self._uni_cum = np.cumsum(np.exp(self._unigram * LOGMATH_TO_LN))
        self._index = {w: i for i, w in enumerate(self.vocab)}
        self._index[SENT_START] = len(self.vocab)
        self._fast_bigrams: OrderedDict[int, _FastBigram] = OrderedDict()
        self._fast_trigrams: OrderedDict[tuple[int, int], _FastTrigram] = OrderedDict()

    def _history_index(self, word: str) -> int:
        try:
            return self._index[word]
        except KeyError:
            raise DataError(f"history word {word!r} is not in the sampling vocabulary") from None

    def _history_word(self, h: int) -> str:
        return SENT_START if h == len(self.vocab) else self.vocab[h]

    def _fast_bigram(self, h1: int) -> _FastBigram:
        """P(. | h1): one ``lm.prob`` call per stored successor, one for the back-off; cached."""
        hit = self._fast_bigrams.get(h1)
        if hit is not None:
            self._fast_bigrams.move_to_end(h1)
            return hit
        word, prob, targets = self._history_word(h1), self.lm.prob, self._targets
        succ = self.successors.of(h1)
        scores = np.fromiter((prob([targets[k], word]) for k in succ), dtype=np.float64, count=len(succ))
        free = np.ones(len(targets), dtype=bool)
        free[succ] = False
        rest = float(np.exp(self._unigram[free] * LOGMATH_TO_LN).sum())
        free = np.flatnonzero(free[:-1])  # the rarest word without a stored bigram is the probe
        probe = int(free[-1]) if len(free) else len(targets) - 1
        probe_score = float(prob([targets[probe], word]))
        order = np.argsort(-scores, kind="stable")
        scores = scores[order]
        ref = float(scores[0]) * LOGMATH_TO_LN if len(scores) else 0.0
        hit = _FastBigram(succ[order], scores, probe_score - self._unigram[probe], probe, probe_score,
                          np.cumsum(np.exp(scores * LOGMATH_TO_LN - ref)), ref, rest)
        self._fast_bigrams[h1] = hit
        if len(self._fast_bigrams) > FAST_BIGRAM_CACHE_SIZE:
            self._fast_bigrams.popitem(last=False)
        return hit

    def _num_candidates(self, h2: int, h1: int, bigram: _FastBigram) -> int:
        """Trigram candidates of history (h2 h1): more for likelier histories (which recur, and are cached)."""
        before = self._fast_bigram(h2)
        k = np.flatnonzero(before.idx == h1)
        p_h1 = float(before.scores[k[0]]) if len(k) else before.backoff + self._unigram[h1]
        p_h2 = SENT_START_RATE if h2 == len(self.vocab) else math.exp(self._unigram[h2] * LOGMATH_TO_LN)
        extra = self.trigram_budget * p_h2 * math.exp(p_h1 * LOGMATH_TO_LN)
        return min(len(bigram.idx), self.trigram_candidates + int(extra))

    def _fast_trigram(self, h2: int, h1: int, bigram: _FastBigram) -> _FastTrigram:
        """Trigram scores of the first C successors of ``bigram`` and the back-off weight of (h2 h1); cached.

        A target without a stored bigram after h1 has no stored trigram either,
        so the probe's trigram minus its bigram is the exact back-off weight.
        """
        key = (h2, h1)
        hit = self._fast_trigrams.get(key)
        if hit is not None:
            self._fast_trigrams.move_to_end(key)
            return hit
        n, prob, targets = self._num_candidates(h2, h1, bigram), self.lm.prob, self._targets
        w1, w2 = self.vocab[h1], self._history_word(h2)
        tri = np.fromiter((prob([targets[k], w1, w2]) for k in bigram.idx[:n]), dtype=np.float64, count=n)
        ref = float(tri.max()) * LOGMATH_TO_LN if n else 0.0
        backoff = float(prob([targets[bigram.probe], w1, w2])) - bigram.probe_score
        hit = _FastTrigram(tri, backoff, np.cumsum(np.exp(tri * LOGMATH_TO_LN - ref)), ref)
        self._fast_trigrams[key] = hit
        if len(self._fast_trigrams) > FAST_TRIGRAM_CACHE_SIZE:
            self._fast_trigrams.popitem(last=False)
        return hit

    def _fast_trigram_of(self, h2: Optional[int], h1: int, bigram: _FastBigram) -> Optional[_FastTrigram]:
        """The trigram entry of (h2 h1); None when the LM stores no such history (it backs off to the bigram)."""
        if h2 is None or h1 == len(self.vocab) or not self.successors.has(h2, h1):
            return None
        return self._fast_trigram(h2, h1, bigram)

    def _fast_next_word_probs(self, history: Sequence[str]) -> np.ndarray:
        """P(next | history) on the fast path, as a vector (the sampler draws the same distribution
        without building it): the bigram exact; a stored trigram history gets trigram scores for its
        candidates and bigram + exact back-off for the rest; any other backs off to the bigram."""
        h1 = self._history_index(history[-1])
        bigram = self._fast_bigram(h1)
        scores = self._unigram + bigram.backoff
        scores[bigram.idx] = bigram.scores
        h2 = self._history_index(history[-2]) if len(history) >= 2 else None
        tri = self._fast_trigram_of(h2, h1, bigram)
        if tri is not None:
            scores += tri.backoff
            scores[bigram.idx[: len(tri.scores)]] = tri.scores
        p = np.exp((scores - scores.max()) * LOGMATH_TO_LN)
        return p / p.sum()

    def _fast_draw(self, h2: Optional[int], h1: int, rng: np.random.Generator) -> int:
        """One target index from P(. | h2 h1), as a mixture of three parts.

        (a) the trigram-scored candidates, (b) the other stored successors of
        h1 (bigram x trigram back-off), (c) the remaining targets (unigram x
        both back-offs). Each part is drawn from cached running sums, so a
        step costs O(log V), not O(V).
        """
        big = self._fast_bigram(h1)
        tri = self._fast_trigram_of(h2, h1, big)
        n = 0 if tri is None else len(tri.cum)
        bo2 = 0.0 if tri is None else tri.backoff * LOGMATH_TO_LN
        base = float(big.cum[n - 1]) if n else 0.0
        total_b = float(big.cum[-1]) - base if len(big.cum) > n else 0.0
        logs = np.array([tri.ref + _log(float(tri.cum[-1])) if n else -math.inf,
                         bo2 + big.ref + _log(total_b),
                         bo2 + big.backoff * LOGMATH_TO_LN + _log(big.rest)])
        cum_parts = np.cumsum(np.exp(logs - logs.max()))
        part = int(np.searchsorted(cum_parts, rng.random() * cum_parts[-1], side="right"))
        if part == 0:
            j = int(np.searchsorted(tri.cum, rng.random() * tri.cum[-1], side="right"))
            return int(big.idx[min(j, n - 1)])
        if part == 1:
            j = int(np.searchsorted(big.cum, base + rng.random() * total_b, side="right"))
            return int(big.idx[min(max(j, n), len(big.idx) - 1)])
        return self._draw_rest(h1, rng)

    def _draw_rest(self, h1: int, rng: np.random.Generator) -> int:
        """A target without a stored bigram after h1, drawn by the unigram.

        Rejection sampling from the unigram (at most REST_DRAWS tries), then
        the exact masked distribution: the same distribution either way.
        """
        cum = self._uni_cum
        for _ in range(REST_DRAWS):
            t = min(int(np.searchsorted(cum, rng.random() * cum[-1], side="right")), len(cum) - 1)
            if not self.successors.has(h1, t):
                return t
        p = np.exp(self._unigram * LOGMATH_TO_LN)
        p[self.successors.of(h1)] = 0.0
        masked = np.cumsum(p)
        return min(int(np.searchsorted(masked, rng.random() * masked[-1], side="right")), len(cum) - 1)

    def _fast_sample_words(self, rng: np.random.Generator) -> list[str]:
        """sample_words on the fast path (an early ``</s>`` is redrawn: the same conditional distribution)."""
        end = len(self.vocab)
        words: list[str] = []
        h2, h1 = None, end
        while len(words) < MAX_WORDS:
            for _ in range(MAX_DUPLICATE_DRAWS):
                t = self._fast_draw(h2, h1, rng)
                if t != end or len(words) >= MIN_WORDS:
                    break
            else:
                raise DataError(f"sampler keeps ending the sentence after {' '.join(words)!r}")
            if t == end:
                break
            words.append(self.vocab[t])
            h2, h1 = h1, t
        return words

    def _cdf(self, history: Sequence[str]) -> np.ndarray:
        """Cumulative next-word distribution; the one after ``<s>`` alone is cached."""
        if len(history) == 1:
            if self._start_cdf is None:
                self._start_cdf = np.cumsum(self.next_word_probs(history))
            return self._start_cdf
        return np.cumsum(self.next_word_probs(history))

    def sample_words(self, rng: np.random.Generator) -> list[str]:
        """One prompt of MIN_WORDS..MAX_WORDS words (``</s>`` refused before MIN_WORDS)."""
        if self.successors is not None:
            return self._fast_sample_words(rng)
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
