"""The word language model for large-vocabulary decoding of the synthetic corpus.

The corpus prompts are drawn from pocketsphinx's en-us trigram over its top
4,000 words (:mod:`asr.synth.prompts`). The decoder's word LM is trained on
text drawn from the same LM over a larger vocabulary (20k words by default),
so that the recogniser faces a realistic vocabulary and LM mismatch:

1. :func:`sample_lm_text`: sentences from the fast path of the prompt
   sampler, without any dev or test prompt, plus the training transcripts,
   plus every vocabulary word the text lacks as a one-word line;
2. :func:`train_word_lm`: a Kneser-Ney n-gram with kaldingram (in a child
   process), entropy-pruned to a size an HCLG build takes;
3. :func:`lm_report`: OOV rate and perplexity on Kaldi ``text`` files;
   :func:`source_lm_report` the same for the source LM itself over the
   vocabulary (the ceiling; bench/word_lm.py prints both).

:func:`make_word_lm` runs the three make-style in a lang dir.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import multiprocessing
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import yaml

from asr.synth import prompts
from asr.errors import DataError, GraphError
from asr.io import atomic_path, atomic_write_text
from asr.lang.ngram import check_training_text, run_child, read_arpa_counts
from asr.symbols import BOS, EOS, RESERVED

logger = logging.getLogger(__name__)

#: Sampling vocabulary of the word LM's text (most probable qualifying words).
DEFAULT_VOCAB_SIZE = 20_000
#: Sentences sampled for the LM text (~10.4 words each: ~4.2M tokens; ~8 min on one core).
#: 20,000 (the old default, 0.23M tokens) left dev perplexity at 136 against the source's 66;
#: 400,000 gives 91 (bench/word_lm.py; 200,000: 94-96).
DEFAULT_NUM_SENTENCES = 400_000
DEFAULT_ORDER = 3
#: kaldingram (SRILM-style) relative-entropy pruning threshold, in the units kaldingram
#: takes (a relative entropy per pruned n-gram). On the default text it keeps 650k of the
#: 2.72M n-grams, and the CI HCLG is 7.1M arcs (1.5 GB peak, 104 s): 1e-7 keeps 954k for
#: the same dev perplexity (see train_word_lm).
DEFAULT_PRUNE = 2e-7
#: Sentences per seeded chunk of work: the text depends on the seed, not on num_jobs.
CHUNK_SENTENCES = 250
#: RNG key tag of the LM text (the corpus prompts use other tags).
_TAG_LM_TEXT = 71

LM_TEXT, LM_ARPA, LM_YAML, LM_BIGRAMS = "lm_text.txt", "lm.arpa", "lm.yaml", "lm_sampler_bigrams.npz"


# ---------------------------------------------------------------- Kaldi text files

def read_text_sentences(path: Path) -> list[str]:
    """Transcripts of a Kaldi ``text`` file (``<utt> w1 w2 ...``), utterance ids dropped.

    Words are re-joined with single spaces; an utterance with no words is
    skipped.

    Raises:
        GraphError: missing or unreadable file, a blank line, or a reserved
            symbol (``<s>``, ``</s>``, ``<eps>``, ``#0``), naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise GraphError(f"{path}: transcript file does not exist")
    sentences: list[str] = []
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                fields = line.split()
                if not fields:
                    raise GraphError(f"{path}:{lineno}: blank line (expected '<utt-id> words...')")
                bad = RESERVED.intersection(fields[1:])
                if bad:
                    raise GraphError(f"{path}:{lineno}: reserved symbol {sorted(bad)[0]!r} in transcript")
                if len(fields) > 1:
                    sentences.append(" ".join(fields[1:]))
    except UnicodeDecodeError as exc:
        raise GraphError(f"{path}: not UTF-8 text ({exc})") from None
    return sentences


def read_excluded_prompts(paths: Iterable[Path]) -> set[str]:
    """The lower-cased transcripts of Kaldi ``text`` files: prompts the LM text must not contain."""
    return {s.lower() for p in paths for s in read_text_sentences(p)}


def _file_digest(path: Path) -> str:
    """sha256 of a file's bytes (hex, first 16 digits)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


# ---------------------------------------------------------------- sampling the text

@dataclass(frozen=True)
class _Chunk:
    index: int
    num_sentences: int
    seed: int


_WORKER: Optional[prompts.PromptSampler] = None


@functools.lru_cache(maxsize=1)
def _ranked_words() -> tuple[object, Path, tuple[str, ...]]:
    """(pocketsphinx LM, its path, every qualifying dictionary word by unigram score); once a process."""
    lm_path, dict_path = prompts.model_paths()
    lm = prompts.load_lm(lm_path)
    words = prompts.read_dictionary_words(dict_path)
    return lm, lm_path, tuple(prompts.select_vocabulary(lm, words, len(words)))


def _load_vocabulary(vocab_size: int) -> tuple[object, Path, list[str]]:
    """(pocketsphinx LM, its path, the top ``vocab_size`` qualifying words, as prompts.select_vocabulary)."""
    lm, lm_path, ranked = _ranked_words()
    if len(ranked) < vocab_size:
        raise DataError(f"{lm_path}: only {len(ranked)} qualifying words, {vocab_size} asked for")
    return lm, lm_path, list(ranked[:vocab_size])


def _bigrams_key(lm_path: Path, vocab: Sequence[str]) -> str:
    """Digest of the LM file (name, size), the vocabulary a bigram table belongs to, and how
    much of the ARPA dump it reads (a table cached before that was fixed is rebuilt)."""
    h = hashlib.sha256(f"{lm_path.name} {lm_path.stat().st_size} tail {prompts.DUMP_TAIL_LINES}\n".encode())
    h.update("\n".join(vocab).encode())
    return h.hexdigest()[:16]


def _bigram_table(lm, lm_path: Path, vocab: list[str], cache: Optional[Path]) -> prompts.BigramSuccessors:
    """The LM's stored bigrams among ``vocab``, read from ``cache`` when it matches, else built (and cached)."""
    key = _bigrams_key(lm_path, vocab)
    if cache is not None and Path(cache).is_file():
        try:
            table = prompts.BigramSuccessors.load(cache)
            if table.key == key:
                return table
        except DataError as exc:
            logger.warning("%s; rebuilding it", exc)
    t0 = time.perf_counter()
    in_vocab = set(vocab)
    probes = [w for w in _ranked_words()[2][-prompts.NUM_PROBES:] if w not in in_vocab]
    table = prompts.bigram_successors(lm, lm_path, vocab, None if cache is None else Path(cache).parent, probes)
    table = prompts.BigramSuccessors(table.indptr, table.indices, key)
    logger.info("bigram table of %d words: %d pairs in %.1f s", len(vocab), len(table.indices),
                time.perf_counter() - t0)
    if cache is not None:
        table.save(Path(cache))
    return table


def _init_worker(vocab_size: int, table_path: str) -> None:
    """Pool initializer: a fast-path sampler over the top ``vocab_size`` words."""
    global _WORKER
    lm, _, vocab = _load_vocabulary(vocab_size)
    _WORKER = prompts.PromptSampler(lm, vocab, prompts.BigramSuccessors.load(Path(table_path)))


def _sample_chunk(chunk: _Chunk) -> list[str]:
    """The sentences of one chunk, drawn with the RNG keyed by (seed, tag, chunk index)."""
    assert _WORKER is not None
    rng = np.random.default_rng([chunk.seed, _TAG_LM_TEXT, chunk.index])
    return [" ".join(_WORKER.sample_words(rng)) for _ in range(chunk.num_sentences)]


def _chunks(num_sentences: int, seed: int) -> list[_Chunk]:
    """Seeded chunks of CHUNK_SENTENCES sentences (the last one shorter)."""
    return [_Chunk(i, min(CHUNK_SENTENCES, num_sentences - start), seed)
            for i, start in enumerate(range(0, num_sentences, CHUNK_SENTENCES))]


def _sample_sentences(
    sampler: prompts.PromptSampler, chunks: list[_Chunk], num_jobs: int, table_dir: Path
) -> list[str]:
    """All chunks' sentences in chunk order: in-process, or in a spawned pool of ``num_jobs``."""
    global _WORKER
    if num_jobs <= 1 or len(chunks) <= 1:
        _WORKER = sampler
        try:
            return [s for c in chunks for s in _sample_chunk(c)]
        finally:
            _WORKER = None
    with tempfile.TemporaryDirectory(dir=table_dir, prefix=".lm_bigrams.") as tmp:
        table_path = Path(tmp) / "bigrams.npz"
        sampler.successors.save(table_path)
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=num_jobs, mp_context=ctx, initializer=_init_worker,
                                 initargs=(len(sampler.vocab), str(table_path))) as pool:
            return [s for part in pool.map(_sample_chunk, chunks) for s in part]


def sample_lm_text(
    out_path: Path,
    num_sentences: int,
    exclude: set[str],
    seed: int,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    num_jobs: int = 1,
    extra_sentences: Sequence[str] = (),
    bigrams_cache: Optional[Path] = None,
) -> dict:
    """Write LM training text sampled from pocketsphinx's en-us trigram, one sentence a line.

    ``num_sentences`` sentences are drawn (as the corpus prompts are:
    4..14 words) over the top ``vocab_size`` qualifying words, with the fast
    path of :class:`~asr.synth.prompts.PromptSampler` (exact bigrams from
    the LM's stored-bigram table, trigram scores for the likeliest
    successors of each stored trigram history). A sentence whose text equals
    one in ``exclude`` (lower-case, single spaces: dev and test prompts) is
    dropped. ``extra_sentences`` (the training transcripts) follow, the
    excluded ones dropped too. Then, because kaldingram has no vocabulary
    option (a word absent from the text gets no unigram and could never be
    recognised), every vocabulary word not yet in the text is appended as a
    one-word line.

    The text depends on ``seed`` only, not on ``num_jobs``: the work is split
    into seeded chunks of CHUNK_SENTENCES sentences (a spawned pool of
    ``num_jobs`` runs them) and the sampler's caches are pure. Nor on where
    pocketsphinx's ARPA dump crashed (it varies from run to run): the bigram
    table reads a fixed part of it (:func:`~asr.synth.prompts.read_bigram_successors`).

    Measured (vocab 20,000, num_jobs=2, 2 cores shared with a training
    job): 20,000 sentences (213.6k words) in 60-72 s: 6 s for the bigram
    table (an ARPA dump in a child process; reused from ``bigrams_cache``),
    54-65 s of sampling, 0.26-0.31 ms a word (wall, 2 workers; ~0.35-0.6 ms
    a word per warm worker). The default prompt path costs 5-45 ms a word
    at this vocabulary. 10,290 of the 20,000 words are not drawn in that
    text and are appended. In one process (num_jobs=1, the other core busy)
    time grows linearly with the sentences: 28 s for the first 20,000, then
    ~23 s per 20,000 (0.11 ms a word): 400,000 sentences (4.18M words) in
    467 s; 260 words are then still undrawn and appended. The first N
    sentences (N a multiple of CHUNK_SENTENCES) are the same for any larger
    ``num_sentences`` and the same seed.

    Args:
        out_path: the text file (written atomically).
        bigrams_cache: where the stored-bigram table is kept between runs
            (checked against the LM and vocabulary); None: not kept.

    Returns:
        stats: sentences (sampled and kept), excluded (dropped), extra
        sentences, appended_words, tokens, vocab_size, seconds, ms_per_word.
    """
    if num_sentences < 0 or vocab_size < prompts.MIN_WORDS:
        raise DataError(f"{out_path}: bad LM text size: {num_sentences} sentences, vocabulary {vocab_size}")
    out_path = Path(out_path)
    exclude = {" ".join(e.split()).lower() for e in exclude}
    t0 = time.perf_counter()
    lm, lm_path, vocab = _load_vocabulary(vocab_size)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    table = _bigram_table(lm, lm_path, vocab, bigrams_cache)
    sampler = prompts.PromptSampler(lm, vocab, table)
    t1 = time.perf_counter()
    drawn = _sample_sentences(sampler, _chunks(num_sentences, seed), num_jobs, out_path.parent)
    t_sample = time.perf_counter() - t1
    stats = _write_lm_text(out_path, drawn, list(extra_sentences), exclude, vocab)
    drawn_words = sum(len(s.split()) for s in drawn)
    stats.update(vocab_size=len(vocab), seconds=round(time.perf_counter() - t0, 1),
                 sample_seconds=round(t_sample, 1),
                 ms_per_word=round(1e3 * t_sample / max(drawn_words, 1), 3))
    logger.info("LM text %s: %s", out_path, stats)
    return stats


def _write_lm_text(
    out_path: Path, drawn: list[str], extra: list[str], exclude: set[str], vocab: list[str]
) -> dict:
    """Write the kept sentences, then the vocabulary words the text lacks; return counts."""
    kept = [s for s in drawn if s not in exclude]
    kept_extra = [s for s in extra if s.lower() not in exclude]
    seen = {w for s in (*kept, *kept_extra) for w in s.split()}
    missing = [w for w in vocab if w not in seen]
    lines = [*kept, *kept_extra, *missing]
    atomic_write_text(out_path, "".join(line + "\n" for line in lines))
    return {
        "sentences": len(drawn),
        "kept": len(kept),
        "excluded": len(drawn) - len(kept) + len(extra) - len(kept_extra),
        "extra_sentences": len(kept_extra),
        "appended_words": len(missing),
        "tokens": sum(len(line.split()) for line in lines),
    }


# ---------------------------------------------------------------- training

def train_word_lm(
    text_path: Path, arpa_path: Path, order: int = DEFAULT_ORDER, prune: float = DEFAULT_PRUNE
) -> dict:
    """Train a Kneser-Ney n-gram on ``text_path`` with kaldingram and entropy-prune it.

    Both run in child processes (kaldingram asserts on bad input and prints
    progress bars); the input text and both ARPA files are validated.
    Pruning is kaldingram's SRILM-style relative-entropy pruning of the
    bigrams and up (unigrams are kept, so every word of the text stays in
    the vocabulary); ``prune = 0`` keeps the model unpruned.

    Measured (20k words, one process, the other core busy): on 400,000
    sampled sentences plus synth_medium's training transcripts (4.19M
    tokens, the default) 20,002 / 640,329 / 2,060,453 n-grams unpruned,
    20,002 / 376,761 / 253,321 (650k) at 2e-7, 466,014 / 468,109 bigrams /
    trigrams (954k) at 1e-7, 280,651 / 124,452 (425k) at 4e-7; 39 s to
    train, 35-39 s to prune. On 20,000 sentences (0.23M tokens, the old
    default): 101,245 / 173,968 unpruned, 74,023 / 89,762 at 1e-7; 3 s to
    train, 4 s to prune.

    Returns:
        stats: order, prune, tokens, counts_unpruned and counts ({order: n}),
        ngrams (total after pruning), train_seconds, prune_seconds.

    Raises:
        GraphError: bad order or threshold, missing / empty text, a failed
            or invalid run, naming the file.
    """
    text_path, arpa_path = Path(text_path), Path(arpa_path)
    if not 1 <= order <= 5:
        raise GraphError(f"{arpa_path}: n-gram order must be 1..5, got {order}")
    if not (prune >= 0.0 and math.isfinite(prune)):
        raise GraphError(f"{arpa_path}: pruning threshold must be >= 0, got {prune}")
    num_tokens = check_training_text(text_path)
    arpa_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=arpa_path.parent, prefix=".lm_train.") as tmp:
        full = Path(tmp) / "unpruned.arpa"
        t0 = time.perf_counter()
        run_child(["-m", "kaldingram.cli", "train", "--ngram-order", str(order),
                    "--text", str(text_path), "--lm", str(full)],
                   f"kaldingram training on {text_path}", arpa_path)
        counts_full = _checked_counts(full, arpa_path, f"kaldingram wrote an invalid ARPA file from {text_path}")
        t1 = time.perf_counter()
        with atomic_path(arpa_path) as out:
            if prune > 0.0:
                run_child(["-m", "kaldingram.cli", "prune", "--threshold", repr(prune), "--lm", str(full),
                            "--write-lm", str(out), "--verbose", "5"],
                           f"kaldingram pruning (threshold {prune})", arpa_path)
            else:
                shutil.copyfile(full, out)
            counts = _checked_counts(out, arpa_path, "kaldingram pruning wrote an invalid ARPA file")
        t2 = time.perf_counter()
    stats = {"order": order, "prune": prune, "tokens": num_tokens, "counts_unpruned": counts_full,
             "counts": counts, "ngrams": sum(counts.values()), "train_seconds": round(t1 - t0, 1),
             "prune_seconds": round(t2 - t1, 1)}
    logger.info("word LM %s: %s", arpa_path, stats)
    return stats


def _checked_counts(path: Path, named: Path, what: str) -> dict[int, int]:
    """read_arpa_counts, its GraphError re-raised naming ``named``."""
    try:
        return read_arpa_counts(path)
    except GraphError as exc:
        raise GraphError(f"{named}: {what}: {exc}") from exc


# ---------------------------------------------------------------- evaluation

class ArpaModel:
    """A back-off n-gram read from an ARPA file, for scoring text (log10).

    ``P(w | h)`` is the stored probability of ``h w`` when there is one, else
    ``bow(h) * P(w | h[1:])`` with ``bow(h) = 1`` for an unstored history.
    """

    def __init__(self, arpa_path: Path) -> None:
        self.path = Path(arpa_path)
        self.counts = read_arpa_counts(self.path)
        self.order = max(self.counts)
        self.prob: dict[tuple[str, ...], float] = {}
        self.bow: dict[tuple[str, ...], float] = {}
        self._read()

    def _read(self) -> None:
        """Fill prob and bow from the n-gram sections."""
        n = 0
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if line.startswith("\\") and line.endswith("-grams:"):
                    n = int(line[1:-len("-grams:")])
                    continue
                if not n or not line or line.startswith("\\"):
                    continue
                fields = line.split()
                if len(fields) not in (n + 1, n + 2):
                    raise GraphError(f"{self.path}:{lineno}: malformed {n}-gram line")
                words = tuple(fields[1:n + 1])
                self.prob[words] = float(fields[0])
                if len(fields) == n + 2:
                    self.bow[words] = float(fields[n + 1])

    @property
    def vocabulary(self) -> set[str]:
        """Unigram words, without ``<s>`` and ``</s>``."""
        return {w[0] for w in self.prob if len(w) == 1} - {BOS, EOS}

    def logprob(self, word: str, history: Sequence[str]) -> float:
        """log10 P(word | history), history in reading order (its last order-1 words count)."""
        history = tuple(history[len(history) - self.order + 1:]) if self.order > 1 else ()
        backoff = 0.0
        for k in range(len(history) + 1):
            context = history[k:]
            p = self.prob.get((*context, word))
            if p is not None:
                return backoff + p
            backoff += self.bow.get(context, 0.0)
        raise GraphError(f"{self.path}: no unigram for {word!r}")

    def score_sentence(self, words: Sequence[str]) -> tuple[float, int]:
        """(log10 probability of the in-vocabulary words and ``</s>``, number of OOVs).

        As SRILM's ``ngram -ppl``: an OOV word is not scored, and the n-grams
        that would contain it do not exist (the next word backs off past it).
        """
        vocab_prob, total, oov = self.prob, 0.0, 0
        history: list[str] = [BOS]
        for w in [*words, EOS]:
            if (w,) in vocab_prob and w != BOS:
                total += self.logprob(w, history)
            else:
                oov += 1
            history.append(w)
        return total, oov


def _report_row(sentences: int, words: int, oov: int, logprob: float) -> dict:
    """One text's figures: ppl = 10^(-logprob / (words - oov + sentences)), ppl1 without the ``</s>``."""
    scored = words - oov
    return {"sentences": sentences, "words": words, "oov": oov, "oov_rate": oov / words if words else 0.0,
            "logprob": logprob, "ppl": 10 ** (-logprob / (scored + sentences)) if sentences else math.nan,
            "ppl1": 10 ** (-logprob / scored) if scored else math.nan}


def lm_report(arpa_path: Path, texts: dict[str, Path]) -> dict[str, dict]:
    """OOV rate and perplexity of an ARPA model on Kaldi ``text`` files.

    Perplexity is computed here from the ARPA file (:class:`ArpaModel`), not
    with ``kaldingram ppl``: that drops a whole sentence with an OOV as a
    "zeroprob". As SRILM does, OOV words are left out of the perplexity and
    reported apart: ppl = 10^(-logprob / (words - OOVs + sentences)) (``</s>``
    counted), ppl1 the same without the sentence ends.

    Returns:
        {name: {sentences, words, oov, oov_rate, logprob (log10), ppl, ppl1}}.

    Raises:
        GraphError: a missing or malformed ARPA or text file, naming it.
    """
    model = ArpaModel(arpa_path)
    report: dict[str, dict] = {}
    for name, path in texts.items():
        sentences = read_text_sentences(path)
        logprob, words, oov = 0.0, 0, 0
        for s in sentences:
            ws = s.split()
            lp, n_oov = model.score_sentence(ws)
            logprob, words, oov = logprob + lp, words + len(ws), oov + n_oov
        report[name] = _report_row(len(sentences), words, oov, logprob)
    return report


def _source_log_norm(lm, targets: list[str], ctx: list[str]) -> float:
    """log10 of the sum over ``targets`` of the source LM's P(t | ctx) (``ctx`` most recent first).

    One ``lm.prob`` call per target (~1 us each).

    Raises:
        DataError: a target the source LM does not know.
    """
    scores = np.fromiter((lm.prob([t, *ctx]) for t in targets), dtype=np.float64, count=len(targets))
    if np.any(scores <= prompts.UNKNOWN_SCORE):
        raise DataError(f"a target word is unknown to the source LM (history {' '.join(reversed(ctx))!r})")
    ln = scores * prompts.LOGMATH_TO_LN
    top = float(ln.max())
    return (top + math.log(float(np.exp(ln - top).sum()))) / math.log(10.0)


def source_lm_report(texts: dict[str, Path], vocab_size: int = DEFAULT_VOCAB_SIZE) -> dict[str, dict]:
    """OOV rate and perplexity of pocketsphinx's en-us trigram itself, restricted to the word LM's vocabulary.

    The ceiling of any LM trained on text sampled from it: each P(w | h2 h1)
    is the source's trigram ``lm.prob`` renormalised over the top
    ``vocab_size`` qualifying words (:func:`_load_vocabulary`, the sampling
    vocabulary) plus ``</s>``. OOV words (outside that vocabulary) are
    skipped as in :func:`lm_report`, and the history restarts after one
    (the word after an OOV is scored by the renormalised unigram). Same
    fields and formulas as :func:`lm_report`. Costs ``vocab_size + 1``
    ``lm.prob`` calls per distinct history (~20 ms at 20k words).

    Note that the source does not know the prompts' 4..14-word length
    limits that the sampled text (and so a trained LM) has.

    Raises:
        DataError: the LM or its vocabulary cannot be loaded; GraphError: a
            missing or malformed text file, naming it.
    """
    lm, _, vocab = _load_vocabulary(vocab_size)
    targets, in_vocab = [*vocab, EOS], set(vocab)
    norms: dict[tuple[str, ...], float] = {}
    report: dict[str, dict] = {}
    for name, path in texts.items():
        sentences = read_text_sentences(path)
        logprob, words, oov = 0.0, 0, 0
        for s in sentences:
            ws = s.split()
            history: tuple[str, ...] = (BOS,)
            for w in [*ws, EOS]:
                if w != EOS and w not in in_vocab:
                    oov, history = oov + 1, ()
                    continue
                ctx = list(reversed(history[-2:]))
                key = tuple(ctx)
                if key not in norms:
                    norms[key] = _source_log_norm(lm, targets, ctx)
                logprob += lm.prob([w, *ctx]) * prompts.LOGMATH_TO_LN / math.log(10.0) - norms[key]
                history = (*history, w)
            words += len(ws)
        report[name] = _report_row(len(sentences), words, oov, logprob)
    return report


def format_lm_report(report: dict[str, dict]) -> str:
    """A small text table of :func:`lm_report`'s figures, one row per text."""
    lines = [f"{'text':<12} {'sents':>6} {'words':>7} {'OOVs':>5} {'OOV%':>6} {'ppl':>8} {'ppl1':>8}"]
    for name, r in report.items():
        lines.append(f"{name:<12} {r['sentences']:>6d} {r['words']:>7d} {r['oov']:>5d} "
                     f"{100 * r['oov_rate']:>6.2f} {r['ppl']:>8.1f} {r['ppl1']:>8.1f}")
    return "\n".join(lines)


# ---------------------------------------------------------------- the lang-dir step

def _read_record(path: Path) -> dict:
    """lm.yaml's mapping, or {} when absent or unreadable (then every step reruns)."""
    try:
        record = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return record if isinstance(record, dict) else {}


def _write_record(path: Path, record: dict) -> None:
    atomic_write_text(path, yaml.safe_dump(record, sort_keys=False))


def _text_settings(
    train_text: Optional[Path], exclude_texts: Sequence[Path], num_sentences: int, vocab_size: int, seed: int
) -> dict:
    """What lm_text.txt depends on (inputs by content digest; not num_jobs)."""
    return {
        "num_sentences": num_sentences, "vocab_size": vocab_size, "seed": seed,
        "chunk_sentences": CHUNK_SENTENCES,
        "sampler": {"trigram_candidates": prompts.FAST_TRIGRAM_CANDIDATES,
                    "trigram_budget": prompts.FAST_TRIGRAM_BUDGET,
                    "dump_tail_lines": prompts.DUMP_TAIL_LINES},
        "train_text_sha256": None if train_text is None else _file_digest(train_text),
        "exclude_texts_sha256": [_file_digest(p) for p in exclude_texts],
    }


def make_word_lm(
    lang_dir: Path,
    train_text: Optional[Path],
    exclude_texts: Sequence[Path],
    num_sentences: int = DEFAULT_NUM_SENTENCES,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    order: int = DEFAULT_ORDER,
    prune: float = DEFAULT_PRUNE,
    seed: int = 0,
    num_jobs: int = 1,
) -> Path:
    """Build ``lang_dir/lm.arpa``, the pruned word LM, make-style; return its path.

    Writes ``lm_text.txt`` (:func:`sample_lm_text`; the sentences of
    ``train_text``, a Kaldi ``text`` file, are added to it; the prompts of
    ``exclude_texts`` are kept out of it), ``lm.arpa`` (:func:`train_word_lm`)
    and ``lm.yaml`` (each step's settings, counts and timings, the vocabulary
    size), plus ``lm_sampler_bigrams.npz`` (the sampler's bigram table, a
    cache). A step whose output exists and whose recorded settings (input
    files by digest) match is skipped; a rerun text retrains the model.

    Raises:
        GraphError / DataError: bad inputs or a failed step, naming the file.
    """
    lang_dir = Path(lang_dir)
    lang_dir.mkdir(parents=True, exist_ok=True)
    text_path, arpa_path, record_path = lang_dir / LM_TEXT, lang_dir / LM_ARPA, lang_dir / LM_YAML
    exclude_texts = [Path(p) for p in exclude_texts]
    extra = read_text_sentences(train_text) if train_text is not None else []
    exclude = read_excluded_prompts(exclude_texts)
    record = _read_record(record_path)
    settings = _text_settings(train_text, exclude_texts, num_sentences, vocab_size, seed)
    if text_path.is_file() and record.get("text", {}).get("settings") == settings:
        logger.info("%s is up to date; not resampled", text_path)
    else:
        stats = sample_lm_text(text_path, num_sentences, exclude, seed, vocab_size, num_jobs,
                               extra_sentences=extra, bigrams_cache=lang_dir / LM_BIGRAMS)
        inputs = {"train_text": None if train_text is None else str(train_text),
                  "exclude_texts": [str(p) for p in exclude_texts]}
        record = {"vocab_size": stats["vocab_size"],
                  "text": {"settings": settings, "inputs": inputs, "stats": stats}}
        _write_record(record_path, record)
    lm_settings = {"order": order, "prune": prune, "text_sha256": _file_digest(text_path)}
    if arpa_path.is_file() and record.get("lm", {}).get("settings") == lm_settings:
        logger.info("%s is up to date; not retrained", arpa_path)
        return arpa_path
    stats = train_word_lm(text_path, arpa_path, order, prune)
    record["lm"] = {"settings": lm_settings, "stats": stats}
    _write_record(record_path, record)
    return arpa_path
