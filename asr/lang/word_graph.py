"""The word decoding graph HCLG, after Kaldi's ``mkgraph.sh`` (differences below).

    L  lexicon with optional silence and disambiguation symbols (``#1`` …,
       ``#0`` looping for G's backoff arcs)          :mod:`asr.lang.lexicon`
    G  word n-gram from an ARPA file (kaldilm)       :func:`asr.lang.ngram.arpa_to_g`
    LG = minimize_encoded(determinize_star(L ∘ G))
    CLG, windows = compose_context(phone disambiguation ids, width, central, LG)
    H  from the tree and the windows, without HMM self-loops (:func:`make_h`)
    HCLG = determinize_star(H ∘ CLG); disambiguation inputs → epsilon (not minimized);
           HMM self-loops added (:func:`add_hmm_self_loops`) with Kaldi's
           self-loop scaling; written as a const FST.

Where this differs from ``mkgraph.sh`` (see docs/kaldi_differences.md): both
determinizations are ``determinize_star`` in the tropical semiring (Kaldi's
use the log semiring); LG is not weight-pushed (Kaldi: ``fstpushspecial``) and
HCLG is not minimized (Kaldi: ``fstminimizeencoded``); disambiguation inputs
become epsilons and no epsilon is removed (no ``fstrmepslocal``); L has no
silence disambiguation symbol (Kaldi adds ``#sil`` only with silence
probabilities, which are not modelled here); self-loops are not reordered
(Kaldi's ``add-self-loops --reorder=true``).

Input labels are transition ids (:mod:`asr.hmm.transitions`), output labels
word ids of ``words.txt``. Adding the self-loops after determinization, as
Kaldi does, keeps the determinized graph smaller; the self-loop of a state
goes on the state its entering arcs reach ("non-reordered" self-loops), and
a state entered by arcs of two different HMM states is split first.
"""

from __future__ import annotations

import logging
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import kaldifst
import numpy as np
import yaml

from asr.errors import GraphError
from asr.hmm.context import ContextDependency
from asr.hmm.transitions import Transitions, loop_tid
from asr.io import atomic_path, atomic_write_text
from asr.lang.graph import (DEFAULT_SELF_LOOP_SCALE, INPUT_LABELS, LM_ARPA, _disambig_to_epsilon,
                            compose, determinize, make_h, write_fst)
from asr.lang.ngram import arpa_vocabulary
from asr.symbols import EPS, RESERVED, is_disambig, read_phone_table, read_symbol_table

logger = logging.getLogger(__name__)

#: Files of a word lang dir (Kaldi's data/lang_test) and of a word graph dir.
PHONES_TXT, WORDS_TXT, LEXICON_TXT, L_FST, G_FST = (
    "phones.txt", "words.txt", "lexicon.txt", "L_disambig.fst", "G.fst")
HCLG_FST, HCLG_YAML = "HCLG.fst", "HCLG.yaml"
#: L∘G of a word lang dir, kept for the next graph built from it (Kaldi's ``lang/tmp/LG.fst``):
#: every acoustic model's HCLG starts from the same LG.
LG_CACHE, LG_FST, LG_YAML = "tmp", "LG.fst", "LG.yaml"
#: The lang files whose contents a word graph depends on.
LANG_GRAPH_INPUTS = (L_FST, G_FST, WORDS_TXT, LEXICON_TXT, PHONES_TXT)
#: What a word graph's output labels are (recorded in HCLG.yaml).
OUTPUT_LABELS = "words"

#: Class of a state entered by an epsilon arc (or the start state): no self-loop.
NO_HMM_STATE = -1


@dataclass
class BuildStats:
    """Sizes and costs of one HCLG build."""

    lg_states: int
    lg_arcs: int
    hclg_states: int
    hclg_arcs: int
    split_states: int
    seconds: float
    peak_rss_mb: float

    def to_dict(self) -> dict:
        return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def num_arcs(fst: kaldifst.StdFst) -> int:
    """Total number of arcs of ``fst``."""
    return sum(fst.num_arcs(s) for s in range(fst.num_states))


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def compose_lg(lexicon_fst: kaldifst.StdVectorFst, g: kaldifst.StdVectorFst) -> kaldifst.StdVectorFst:
    """L ∘ G, determinized (disambiguation symbols kept) and minimized.

    Raises:
        GraphError: empty composition (L's words and G's do not match) or a
            non-determinizable L∘G (a homophone without a disambiguation symbol).
    """
    kaldifst.arcsort(lexicon_fst, sort_type="olabel")
    kaldifst.arcsort(g, sort_type="ilabel")
    lg = kaldifst.compose(lexicon_fst, g)
    if lg.num_states == 0:
        raise GraphError("L∘G is empty: the lexicon's words and G's words do not match")
    lg = lg if isinstance(lg, kaldifst.StdVectorFst) else kaldifst.StdVectorFst(lg)
    determinize(lg, "L∘G")
    kaldifst.minimize_encoded(lg)
    return lg


def _entering_classes(fst: kaldifst.StdVectorFst, num_tids: int) -> tuple[np.ndarray, dict[int, set[int]]]:
    """The HMM state (pdf) each state is entered in, from its incoming arcs.

    Returns (cls, mixed): ``cls[s]`` the pdf of the enter transition id on
    the arcs into ``s`` (NO_HMM_STATE for epsilon arcs and the start state;
    -2 for a state no arc enters), and ``{s: classes}`` for states entered in
    more than one class.

    Raises:
        GraphError: on a self-loop transition id (the graph has its loops) or
            a label beyond ``num_tids``.
    """
    cls = np.full(fst.num_states, -2, dtype=np.int64)
    mixed: dict[int, set[int]] = {}

    def note(s: int, c: int) -> None:
        if cls[s] == -2:
            cls[s] = c
        elif cls[s] != c:
            mixed.setdefault(s, {int(cls[s])}).add(c)

    note(fst.start, NO_HMM_STATE)
    for s in range(fst.num_states):
        for arc in kaldifst.ArcIterator(fst, s):
            ilabel = arc.ilabel
            if ilabel == 0:
                note(arc.nextstate, NO_HMM_STATE)
            elif ilabel % 2 == 0 or ilabel > num_tids:
                raise GraphError(f"state {s}: input label {ilabel} is a self-loop or not a transition "
                                 f"id (1..{num_tids}); self-loops are added only once")
            else:
                note(arc.nextstate, (ilabel - 1) // 2)
    return cls, mixed


def _split_mixed_states(fst: kaldifst.StdVectorFst, cls: np.ndarray,
                        mixed: dict[int, set[int]]) -> np.ndarray:
    """Give each extra class of a mixed state its own copy of the state (in place).

    The copy has the state's final weight and outgoing arcs; arcs entering in
    that class are redirected to it. Returns the class of every state (old
    and new).
    """
    split: dict[tuple[int, int], int] = {}
    classes = list(cls)
    for s, cs in sorted(mixed.items()):
        keep = NO_HMM_STATE if NO_HMM_STATE in cs else min(cs)
        classes[s] = keep
        for c in sorted(cs - {keep}):
            split[(s, c)] = fst.add_state()
            classes.append(c)

    def target(arc: kaldifst.StdArc) -> int:
        c = NO_HMM_STATE if arc.ilabel == 0 else (arc.ilabel - 1) // 2
        return split.get((arc.nextstate, c), arc.nextstate)

    num_old = len(cls)
    for s in range(num_old):
        arcs = list(kaldifst.ArcIterator(fst, s))
        if not any(target(a) != a.nextstate for a in arcs):
            continue
        new = [kaldifst.StdArc(a.ilabel, a.olabel, a.weight.value, target(a)) for a in arcs]
        fst.delete_arcs(s, len(arcs))
        for a in new:
            fst.add_arc(s, a)
    for (s, _), copy in split.items():
        fst.set_final(copy, fst.final(s))
        for a in kaldifst.ArcIterator(fst, s):
            fst.add_arc(copy, kaldifst.StdArc(a.ilabel, a.olabel, a.weight.value, a.nextstate))
    return np.asarray(classes, dtype=np.int64)


def add_hmm_self_loops(fst: kaldifst.StdVectorFst, num_pdfs: int, loop_cost: float | np.ndarray) -> int:
    """Add the HMM self-loops to a graph built without them (in place).

    A state entered by the transition id entering pdf ``p`` gets the
    self-loop of ``p`` (cost ``loop_cost[p]``, or ``loop_cost`` for every
    pdf when it is a number); a state entered in several HMM
    states is split first. The forward costs are already on the entering
    arcs (:func:`asr.lang.graph.make_h` with ``self_loops=False``). Returns
    the number of states added by splitting.
    """
    costs = np.broadcast_to(np.asarray(loop_cost, dtype=np.float64), (num_pdfs,))
    cls, mixed = _entering_classes(fst, 2 * num_pdfs)
    num_before = fst.num_states
    if mixed:
        cls = _split_mixed_states(fst, cls, mixed)
    for s in np.flatnonzero(cls >= 0):
        fst.add_arc(int(s), kaldifst.StdArc(loop_tid(int(cls[s])), 0, float(costs[cls[s]]), int(s)))
    kaldifst.arcsort(fst, sort_type="ilabel")
    return fst.num_states - num_before


def compose_hclg(lg: kaldifst.StdVectorFst, ctx: ContextDependency, phone_disambig: Sequence[int],
                 self_loop_scale: float = DEFAULT_SELF_LOOP_SCALE) -> tuple[kaldifst.StdVectorFst, int]:
    """H∘C∘LG, determinized, disambiguation inputs removed, self-loops added.

    Args:
        lg: the determinized, minimized L∘G (phone inputs with ``#k``, word outputs).
        ctx: the acoustic model's context dependency.
        phone_disambig: the ids of ``#0`` … ``#K`` in the phone table.

    Returns:
        (HCLG, number of states split when adding self-loops).
    """
    clg, windows = kaldifst.compose_context(list(phone_disambig), ctx.width, ctx.central, lg)
    if clg.num_states == 0:
        raise GraphError("C∘LG is empty")
    h = make_h(ctx, windows, self_loop_scale=self_loop_scale, self_loops=False)
    del windows
    hclg = determinize(compose(h, clg, "H∘C∘LG"), "H∘C∘LG")
    del clg
    _disambig_to_epsilon(hclg, 2 * ctx.num_pdfs + 1)
    loop_costs = Transitions(ctx).loop_costs(self_loop_scale)  # (num_pdfs,)
    split = add_hmm_self_loops(hclg, ctx.num_pdfs, loop_costs)
    if hclg.num_states == 0 or hclg.start < 0:
        raise GraphError("HCLG is empty")
    return hclg, split


def lg_inputs(lang_dir: Path) -> dict:
    """SHA-256 of the two files L∘G is made of (what LG.yaml records)."""
    from asr.io import file_sha256

    return {name: file_sha256(Path(lang_dir) / name) for name in (L_FST, G_FST)}


def cached_lg(lang_dir: Path) -> kaldifst.StdVectorFst:
    """The determinized, minimized L∘G of a word lang dir: read from ``lang_dir/tmp/LG.fst`` when
    LG.yaml there records the SHA-256 of the same L_disambig.fst and G.fst, else composed
    (:func:`compose_lg`) and written there for the next graph (on the 20,000-word demo LM, LG
    takes ~40 s to compose and ~2 s to read). A cache that cannot be written is only logged.

    Raises:
        GraphError: L or G unreadable or empty, or their composition bad (see compose_lg).
    """
    lang_dir = Path(lang_dir)
    cache, inputs = lang_dir / LG_CACHE, lg_inputs(lang_dir)
    start = time.time()
    if _read_settings(cache / LG_YAML) == {"inputs": inputs} and (cache / LG_FST).is_file():
        lg = kaldifst.StdVectorFst.read(str(cache / LG_FST))
        if lg is not None and lg.num_states > 0:
            logger.info("LG read from %s (%.1f s)", cache / LG_FST, time.time() - start)
            return lg
    lexicon_fst = kaldifst.StdVectorFst.read(str(lang_dir / L_FST))
    g = kaldifst.StdVectorFst.read(str(lang_dir / G_FST))
    if lexicon_fst is None or g is None or lexicon_fst.num_states == 0 or g.num_states == 0:
        raise GraphError(f"{lang_dir}: {L_FST} or {G_FST} is unreadable or empty")
    lg = compose_lg(lexicon_fst, g)
    del lexicon_fst, g
    logger.info("LG: %d states, %d arcs (%.1f s)", lg.num_states, num_arcs(lg), time.time() - start)
    try:
        cache.mkdir(exist_ok=True)
        (cache / LG_YAML).unlink(missing_ok=True)  # no record beside a graph being replaced
        write_fst(lg, cache / LG_FST)
        atomic_write_text(cache / LG_YAML, yaml.safe_dump({"inputs": inputs}, sort_keys=True))
    except (OSError, GraphError) as exc:
        logger.warning("%s: LG not kept for the next graph (%s)", cache, exc)
    return lg


def _hclg_from_lg(lg: kaldifst.StdVectorFst, ctx: ContextDependency, phone_disambig: Sequence[int],
                  self_loop_scale: float, start: float) -> tuple[kaldifst.StdVectorFst, BuildStats]:
    """LG → HCLG with the build's figures (seconds counted from ``start``)."""
    lg_states, lg_arcs = lg.num_states, num_arcs(lg)
    hclg, split = compose_hclg(lg, ctx, phone_disambig, self_loop_scale)
    stats = BuildStats(lg_states, lg_arcs, hclg.num_states, num_arcs(hclg), split,
                       time.time() - start, peak_rss_mb())
    logger.info("HCLG: %d states, %d arcs, %d states split for self-loops (%.1f s, peak RSS %.0f MB)",
                stats.hclg_states, stats.hclg_arcs, split, stats.seconds, stats.peak_rss_mb)
    return hclg, stats


def graph_inputs(lang_dir: Path) -> dict:
    """SHA-256 of the lang files a word graph is built from (L, G, words, lexicon, phones)."""
    from asr.io import file_sha256

    return {name: file_sha256(Path(lang_dir) / name) for name in LANG_GRAPH_INPUTS}


def word_graph_settings(lang_dir: Path, ctx: ContextDependency, self_loop_scale: float) -> dict:
    """What a word graph is built from and with (HCLG.yaml, less the build figures)."""
    return {"input_labels": INPUT_LABELS, "output_labels": OUTPUT_LABELS,
            "topology": ctx.topology.to_dict(), "context": ctx.summary(),
            "self_loop_scale": float(self_loop_scale), "inputs": graph_inputs(lang_dir)}


def _read_settings(path: Path) -> dict | None:
    try:
        settings = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return settings if isinstance(settings, dict) else None


def phone_disambig_ids(phones_txt: Path) -> list[int]:
    """The ids of ``#0`` … ``#K`` in a lang's phone table."""
    ids = [i for sym, i in read_symbol_table(phones_txt).items() if is_disambig(sym)]
    if not ids:
        raise GraphError(f"{phones_txt}: no disambiguation symbols (#0 …)")
    return sorted(ids)


def make_word_graph(lang_dir: Path, ctx: ContextDependency, graph_dir: Path,
                    self_loop_scale: float = DEFAULT_SELF_LOOP_SCALE) -> Path:
    """Build ``graph_dir/{HCLG.fst, HCLG.yaml}`` from a word lang dir and copy its
    words.txt, lexicon.txt and phones.txt beside it; return the graph dir.

    The graph is rebuilt only when HCLG.yaml records other inputs (the
    SHA-256 of the bytes of L, G, words.txt, lexicon.txt and phones.txt;
    never their times), another context dependency or another scale.
    Raises GraphError on bad input.
    """
    lang_dir, graph_dir = Path(lang_dir), Path(graph_dir)
    for name in LANG_GRAPH_INPUTS:
        if not (lang_dir / name).is_file():
            raise GraphError(f"{lang_dir / name}: missing; prepare the lang dir with 'asr prepare-lang'")
    phones = read_phone_table(lang_dir / PHONES_TXT)
    ctx.check_phones(phones, str(lang_dir / PHONES_TXT))
    settings = word_graph_settings(lang_dir, ctx, self_loop_scale)
    old = _read_settings(graph_dir / HCLG_YAML)
    if old is not None and {k: old.get(k) for k in settings} == settings and (graph_dir / HCLG_FST).is_file():
        logger.info("%s is up to date", graph_dir / HCLG_FST)
        return graph_dir
    start = time.time()
    hclg, stats = _hclg_from_lg(cached_lg(lang_dir), ctx, phone_disambig_ids(lang_dir / PHONES_TXT),
                                self_loop_scale, start)
    graph_dir.mkdir(parents=True, exist_ok=True)
    (graph_dir / HCLG_YAML).unlink(missing_ok=True)  # no stale settings beside a new graph
    write_fst(hclg, graph_dir / HCLG_FST, const=True)
    for name in (WORDS_TXT, LEXICON_TXT, PHONES_TXT):
        with atomic_path(graph_dir / name) as tmp:
            shutil.copyfile(lang_dir / name, tmp)
    without_lm = _words_without_lm(lang_dir)
    vocabulary = sum(1 for s in read_symbol_table(lang_dir / WORDS_TXT) if s != EPS and not is_disambig(s))
    atomic_write_text(graph_dir / HCLG_YAML, yaml.safe_dump(
        {**settings, "vocabulary": vocabulary - len(without_lm), "words_without_lm": without_lm,
         "build": stats.to_dict()}, sort_keys=False))
    return graph_dir


def _words_without_lm(lang_dir: Path) -> list[str]:
    """The words of words.txt that the LM (lang_dir/lm.arpa) lacks: in L (a training word's
    pronunciation) but never decoded, so out of the vocabulary an OOV rate counts."""
    arpa = lang_dir / LM_ARPA
    if not arpa.is_file():
        return []
    in_lm = arpa_vocabulary(arpa)
    return sorted(s for s in read_symbol_table(lang_dir / WORDS_TXT)
                  if s != EPS and not is_disambig(s) and s not in RESERVED and s not in in_lm)


def with_word_penalty(hclg: kaldifst.StdFst, penalty: float, num_words: int) -> kaldifst.StdFst:
    """HCLG with ``penalty`` (-ln units) added to every arc that emits a word.

    The same as Kaldi's ``lattice-add-penalty`` on every path, but in the
    graph, so that a best-path decoder with max-active pruning
    (FasterDecoder) decodes with the word insertion penalty. Made by
    composing with a one-state transducer ``w:w/penalty`` over word ids
    1..``num_words``: the result has HCLG's states and arcs (about 1 s per
    million arcs, in C++). ``penalty == 0`` returns ``hclg`` itself.
    """
    if penalty == 0.0:
        return hclg
    loop = kaldifst.StdVectorFst()
    loop.add_state()
    loop.start = 0
    loop.set_final(0, 0.0)
    for w in range(1, num_words + 1):  # ascending: the loop is sorted on its input labels
        loop.add_arc(0, kaldifst.StdArc(w, w, float(penalty), 0))
    out = kaldifst.compose(hclg, loop)
    if out.num_states != hclg.num_states:
        raise GraphError(f"adding the word penalty changed the graph's states "
                         f"({hclg.num_states} -> {out.num_states}): an output label above {num_words}?")
    return out
