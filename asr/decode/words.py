"""The word graph in a model bundle, its tuned decoding settings, and word times.

A bundle that recognises words holds ``graph_words/`` (:data:`WORD_GRAPH_FILES`):
``HCLG.fst`` (transition ids → word ids), ``words.txt``, ``lexicon.txt``
(the pronunciations the graph was built with, for word times),
``phones.txt`` (the lang's phone table with its disambiguation symbols) and
``HCLG.yaml`` (build settings and sizes). The manifest records them as the
``word_graph`` component (with the graph's SHA-256) and the acoustic scale
and word insertion penalty chosen on dev as ``word_decode``.

Word times come from the best path's phone runs matched to the words'
pronunciations, not from where the word labels sit on the graph's arcs (a
determinized graph moves them).

The LM's garbage words (``<unk>``, ``<SPOKEN_NOISE>``:
:func:`asr.symbols.is_garbage_word`) are words of the graph, but the
words of a transcript leave them out unless ``keep_unk`` is asked for
(:meth:`WordGraph.symbols`, :func:`word_spans`, :func:`transcript_words`).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import yaml

from asr.decode.bundle import component, expect_equal, file_sha256, update_manifest
from asr.decode.jobs import drop_penalised_graphs
from asr.errors import GraphError, ModelError
from asr.hmm.transitions import PhoneRun
from asr.io import atomic_path, atomic_write_text
from asr.lang.graph import OBSOLETE_SETTINGS, load_graph
from asr.lang.lexicon import Lexicon
from asr.symbols import is_garbage_word, read_symbol_table
from asr.lang.word_graph import HCLG_FST, HCLG_YAML, LEXICON_TXT, OUTPUT_LABELS, PHONES_TXT, WORDS_TXT

log = logging.getLogger(__name__)

WORD_GRAPH_DIR = "graph_words"
WORD_GRAPH_FILES = (HCLG_FST, HCLG_YAML, WORDS_TXT, LEXICON_TXT, PHONES_TXT)
WORD_DECODE_YAML = "word_decode.yaml"


@dataclass(frozen=True)
class WordSpan:
    """A recognised word and its frames [start, end)."""

    word: str
    start: int
    end: int


@dataclass
class WordGraph:
    """A loaded word graph with its symbols and pronunciations."""

    path: Path
    fst: object
    words: list[str]  # words[i] is word id i (0 = <eps>)
    lexicon: Lexicon
    settings: dict

    @classmethod
    def load(cls, graph_dir: Path, phones: Sequence[str]) -> "WordGraph":
        """Read ``graph_dir/{HCLG.fst, words.txt, lexicon.txt, HCLG.yaml}``.

        Raises:
            GraphError: a missing or malformed file, or a graph that is not a word graph.
        """
        graph_dir = Path(graph_dir)
        settings = read_word_graph_settings(graph_dir)
        table = read_symbol_table(graph_dir / WORDS_TXT)
        words = [""] * (max(table.values()) + 1)
        for sym, i in table.items():
            words[i] = sym
        lexicon = Lexicon.load(graph_dir / LEXICON_TXT, phones)
        return cls(graph_dir / HCLG_FST, load_graph(graph_dir / HCLG_FST), words, lexicon, settings)

    def symbols(self, word_ids: Sequence[int], keep_unk: bool = False) -> list[str]:
        """The words of a path's output labels; garbage words (``<unk>`` …) dropped
        unless ``keep_unk``."""
        return transcript_words([self.words[i] for i in word_ids], keep_unk)


def transcript_words(words: Sequence[str], keep_unk: bool = False) -> list[str]:
    """``words`` without the LM's garbage words (``<unk>``, ``<SPOKEN_NOISE>``) unless ``keep_unk``."""
    return list(words) if keep_unk else [w for w in words if not is_garbage_word(w)]


def read_word_graph_settings(graph_dir: Path) -> dict:
    """HCLG.yaml of a word graph dir, less keys of older versions that mean nothing now
    (``transition_scale``); GraphError when absent or not a word graph's."""
    path = Path(graph_dir) / HCLG_YAML
    try:
        settings = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise GraphError(f"{path}: missing or unreadable word graph settings ({exc}); "
                         f"build the graph with 'asr make-word-graph'") from None
    if not isinstance(settings, dict) or settings.get("output_labels") != OUTPUT_LABELS:
        raise GraphError(f"{path}: not the settings of a word graph (HCLG)")
    return {k: v for k, v in settings.items() if k not in OBSOLETE_SETTINGS}


def check_word_graph_dir(graph_dir: Path, context_summary: dict) -> dict:
    """The settings of a word graph dir built for ``context_summary``; GraphError otherwise."""
    graph_dir = Path(graph_dir)
    for name in WORD_GRAPH_FILES:
        if not (graph_dir / name).is_file():
            raise GraphError(f"{graph_dir / name}: missing (a word graph dir holds "
                             f"{', '.join(WORD_GRAPH_FILES)})")
    settings = read_word_graph_settings(graph_dir)
    if settings.get("context") != context_summary:
        raise GraphError(f"{graph_dir}: the word graph was built for another context dependency "
                         f"({settings.get('context')}); the model has {context_summary}")
    return settings


def install_word_graph(model, graph_dir: Path) -> None:
    """Copy a word graph dir into ``model``'s bundle (atomically, file by file).

    A different graph from the installed one drops the tuned ``word_decode`` settings.
    """
    settings = check_word_graph_dir(graph_dir, model.context.summary())
    sha = file_sha256(Path(graph_dir) / HCLG_FST)
    dest = model.model_dir / WORD_GRAPH_DIR
    dest.mkdir(exist_ok=True)
    for name in WORD_GRAPH_FILES:
        with atomic_path(dest / name) as tmp:
            shutil.copyfile(Path(graph_dir) / name, tmp)
    stale = model.components.get("word_graph", {}).get("sha256") != sha
    model.components = update_manifest(
        model.model_dir,
        word_graph={"files": [f"{WORD_GRAPH_DIR}/{n}" for n in WORD_GRAPH_FILES], "sha256": sha,
                    "source": str(Path(graph_dir).resolve()),
                    "context": settings["context"], "vocabulary": settings.get("vocabulary")},
        **({"word_decode": None} if stale else {}))
    if stale:
        drop_penalised_graphs(dest)
        log.info("%s: word graph installed from %s", model.model_dir, graph_dir)


def load_word_graph(model) -> WordGraph:
    """The bundle's word graph, its file checked against the manifest."""
    comp = component(model.components, "word_graph", model.model_dir,
                     "install one with 'asr decode-words MODEL DEV OUT --graph-dir DIR --tune', "
                     "or ask for phones (asr transcribe --output phones)")
    path = model.model_dir / WORD_GRAPH_DIR / HCLG_FST
    expect_equal(model.model_dir, "the word graph file's SHA-256", comp.get("sha256"), file_sha256(path))
    expect_equal(model.model_dir, "the word graph's context dependency", comp.get("context"),
                 model.context.summary())
    return WordGraph.load(model.model_dir / WORD_GRAPH_DIR, model.phones)


def save_word_decode(model, acwt: float, penalty: float, dev_dir: Path, dev_wer: float,
                     sweep: dict[tuple[float, float], float]) -> None:
    """Store the acoustic scale and word insertion penalty chosen on dev."""
    atomic_write_text(model.model_dir / WORD_DECODE_YAML, yaml.safe_dump(
        {"acwt": float(acwt), "word_penalty": float(penalty), "tuned_on": str(dev_dir),
         "dev_wer": float(dev_wer),
         "sweep": [{"acwt": float(a), "word_penalty": float(p), "wer": float(w)}
                   for (a, p), w in sorted(sweep.items())]}, sort_keys=False))
    model.components = update_manifest(model.model_dir, word_decode={
        "files": [WORD_DECODE_YAML], "acwt": float(acwt), "word_penalty": float(penalty),
        "tuned_on": str(dev_dir), "graph_sha256": model.components["word_graph"]["sha256"]})


def word_decode_params(model) -> tuple[float, float]:
    """(acoustic scale, word insertion penalty) tuned on dev for the installed word graph."""
    comp = component(model.components, "word_decode", model.model_dir,
                     "no word decoding settings were tuned: run 'asr decode-words MODEL DEV OUT "
                     "--graph-dir DIR --tune' on a dev set first")
    expect_equal(model.model_dir, "the word graph the settings were tuned on", comp.get("graph_sha256"),
                 model.components.get("word_graph", {}).get("sha256"))
    return float(comp["acwt"]), float(comp["word_penalty"])


def word_spans(runs: Sequence[PhoneRun], phones: Sequence[str], silence: str, words: Sequence[str],
               lexicon: Lexicon, keep_unk: bool = False) -> list[WordSpan]:
    """The frames of each word of a best path.

    Args:
        runs: the path's phone runs (phone index into ``phones``, frames).
        phones: the model's phone list.
        silence: the lang's optional-silence phone (L's silence between words).
        words: the path's words, in order (garbage words such as ``<unk>``
            may be there or may have been dropped).
        lexicon: their pronunciations.
        keep_unk: keep the spans of garbage words (``<unk>`` …); by default
            they are dropped (the result is then shorter than ``words``).

    The runs are split into the words' pronunciations, with any number of
    silence runs (L's optional silence) before, between and after the words,
    by a depth-first search over each word's variants; a word pronounced
    with silence (``<unk>`` said with a garbage phone that is the silence) takes a
    silence run. Raises ModelError when no split exists (the graph and
    lexicon do not belong together).
    """
    symbols = [phones[r.phone] for r in runs]
    split = _split_from(symbols, 0, 0, list(words), lexicon, silence, {})
    if split is None:
        spoken = [s for s in symbols if s != silence]
        raise ModelError(f"the decoded phones {' '.join(spoken)} are not a pronunciation of "
                         f"'{' '.join(words)}' (word graph and lexicon do not match)")
    spans = [WordSpan(word, runs[first].start, runs[first + n - 1].end)
             for word, (first, n) in zip(words, split)]
    return spans if keep_unk else [s for s in spans if not is_garbage_word(s.word)]


def word_tokens(graph: WordGraph, phones: Sequence[str], silence: str, word_ids: Sequence[int],
                runs: Sequence[PhoneRun], confidences: Sequence[float] | None = None,
                keep_unk: bool = False) -> list[tuple[int, int, str, float | None]]:
    """(start frame, end frame, word, confidence) of each word of a best path.

    Args:
        graph: the word graph the path is from.
        phones: the model's phone list.
        silence: the lang's optional-silence phone.
        word_ids: the path's output labels (ids of words.txt).
        runs: the path's phone runs.
        confidences: one per word id (None: no confidences).
        keep_unk: keep the LM's garbage words (``<unk>`` …); by default they are dropped.
    """
    words = graph.symbols(word_ids, keep_unk=True)
    spans = word_spans(runs, phones, silence, words, graph.lexicon, keep_unk=True)
    conf = list(confidences) if confidences is not None else [None] * len(spans)
    if len(conf) != len(spans):
        raise ModelError(f"{len(conf)} confidences for the {len(spans)} words of a path")
    return [(s.start, s.end, s.word, c) for s, c in zip(spans, conf)
            if keep_unk or not is_garbage_word(s.word)]


def _split_from(symbols: list[str], pos: int, w: int, words: list[str], lexicon: Lexicon, silence: str,
                memo: dict[tuple[int, int], list[tuple[int, int]] | None]) -> list[tuple[int, int]] | None:
    """(first run, number of runs) of each of ``words[w:]`` covering ``symbols[pos:]``
    exactly but for silence runs between words, or None."""
    if w == len(words):
        return [] if all(s == silence for s in symbols[pos:]) else None
    key = (pos, w)
    if key in memo:
        return memo[key]
    result = None
    for pron in lexicon.prons.get(words[w], []):
        n = len(pron)
        if tuple(symbols[pos:pos + n]) == tuple(pron):
            rest = _split_from(symbols, pos + n, w + 1, words, lexicon, silence, memo)
            if rest is not None:
                result = [(pos, n), *rest]
                break
    if result is None and pos < len(symbols) and symbols[pos] == silence:
        result = _split_from(symbols, pos + 1, w, words, lexicon, silence, memo)  # optional silence
    memo[key] = result
    return result
