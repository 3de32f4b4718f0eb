"""The phone decoding graph H∘C∘G for hybrid decoding, after Kaldi's ``mkgraph.sh``.

G is a phone n-gram (kaldilm) with ``#0`` on the input side of its backoff
arcs. kaldifst's ``compose_context`` gives C∘G for the model's context
dependency (:mod:`asr.hmm.context`; width 1 for CI models, 3 for triphones)
and the list of context windows its input labels stand for. H, built from
that list and the context dependency as Kaldi's make-h-transducer does, maps
transition ids (:mod:`asr.hmm.transitions`) to those window labels: one
left-to-right HMM per distinct (phone, pdf sequence), entered from a hub.
Disambiguation windows (``#0`` of G, and ``#-1``, C's ``[0]`` at the start)
get input labels above every transition id; H∘C∘G is determinized with them
and only then are they turned into epsilons, so the decoder never sees them.

Where this differs from Kaldi's ``mkgraph.sh`` (see docs/kaldi_differences.md):
determinization is ``determinize_star`` in the tropical semiring (Kaldi uses
the log semiring); there is no weight pushing and no minimization of the
result; the disambiguation labels become epsilons and no epsilon is removed
(Kaldi runs ``fstrmepslocal``); the HMM transition costs come from the
topology's fixed self-loop probability scaled by ``self_loop_scale`` (there
is no trained transition model and no transition scale: each HMM state has
one forward arc, whose renormalised probability is 1).

Label conventions: input label = transition id (1-based; ``DecodableCtc``
scores label i with column i-1, so the decoder gathers each label's pdf
column, :meth:`Transitions.label_scores`); output label = the phone's id in
``phones.txt`` (``phone_index + 1``). Phones are read back from the output
labels, their frames from the transition ids.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Sequence, Union

import kaldifst
import numpy as np
import yaml

from asr.errors import GraphError
from asr.hmm.context import ContextDependency
from asr.hmm.transitions import enter_tid, loop_tid
from asr.io import atomic_path, atomic_write_text, file_sha256
from asr.phones.topology import PhoneHmm
from asr.lang.ngram import arpa_to_g, backoffs_above_one, read_arpa_counts, train_ngram
from asr.symbols import read_phone_table, write_symbol_table

logger = logging.getLogger(__name__)

#: Kaldi's default scale on HMM self-loop costs (against an acoustic scale near 0.1).
DEFAULT_SELF_LOOP_SCALE = 0.1
#: Stop determinization beyond this many states (a sign of a broken input).
MAX_DET_STATES = 5_000_000
PHONES_TXT, LM_ARPA, G_FST = "phones.txt", "lm.arpa", "G.fst"
#: What lm.arpa and G.fst were made from (SHA-256 of their inputs), in the phone lang dir.
LM_YAML = "lm.yaml"
#: Keys of older HCG.yaml / HCLG.yaml files that no longer mean anything: read and ignored.
OBSOLETE_SETTINGS = ("transition_scale",)
#: The decoding graph and the settings it was built with.
GRAPH_FST, GRAPH_YAML = "HCG.fst", "HCG.yaml"
#: What the graph's input labels are (recorded in HCG.yaml).
INPUT_LABELS = "transition-ids"
HUB = 0


def g_disambig_label(num_phones: int) -> int:
    """The label of ``#0`` in phones.txt and on G's input side."""
    return num_phones + 1


def _is_phone_window(window: Sequence[int], ctx: ContextDependency) -> bool:
    """True for a real context window (not epsilon, ``#-1`` or a disambiguation symbol)."""
    return len(window) == ctx.width and window[ctx.central] > 0


def make_h(ctx: ContextDependency, windows: Sequence[Sequence[int]], disambig_to_epsilon: bool = False,
           self_loop_scale: float = DEFAULT_SELF_LOOP_SCALE,
           self_loops: bool = True) -> kaldifst.StdVectorFst:
    """Build H: transition ids → window labels (indices into ``windows``).

    Args:
        ctx: the context dependency (window → pdf of each HMM state).
        windows: what each input label of C∘G stands for (``compose_context``'s
            list): ``[]`` for epsilon (label 0), a phone window, or a
            disambiguation window (``[0]`` is ``#-1``, ``[-k]`` is symbol k).
        disambig_to_epsilon: give disambiguation windows an epsilon input
            (for graphs that are not determinized, e.g. alignment graphs);
            otherwise input label ``num_tids + 1 + j`` for the j-th one.
        self_loops: give each state its self-loop. Without them (Kaldi's
            way for big graphs: :func:`asr.lang.word_graph.add_hmm_self_loops`
            adds them after determinization) every arc entering a state
            costs the forward cost instead of the arc leaving it, which gives
            every path the same total.

    State 0 is the hub (start and final). Every distinct (phone, pdf
    sequence) gets its phone's HMM (a topology that is not left to right: one
    arc per transition, :func:`_add_hmm`; left to right:) a chain of its ``S`` states (the topology's; the
    transition costs are its phone's, :meth:`asr.phones.topology.PhoneHmm.costs`): the hub enters state 0 (input:
    the transition id entering pdf 0; output: the window's label; cost 0),
    each state has a self-loop and a forward arc to the next, and the last
    state returns to the hub (epsilon). No skips: a phone lasts at least S
    frames, as in the training targets. Disambiguation windows are hub
    self-loops.

    Returns:
        An olabel-sorted StdVectorFst.
    """
    num_tids = 2 * ctx.num_pdfs
    h = kaldifst.StdVectorFst()
    h.add_state()
    h.start = HUB
    h.set_final(HUB, 0.0)
    chains: dict[tuple[int, ...], int] = {}
    num_disambig = 0
    for label, window in enumerate(windows):
        if label == 0 or not window:
            continue
        if not _is_phone_window(window, ctx):
            ilabel = 0 if disambig_to_epsilon else num_tids + 1 + num_disambig
            num_disambig += 1
            h.add_arc(HUB, kaldifst.StdArc(ilabel, label, 0.0, HUB))
            continue
        if max(window) > len(ctx.phones) or min(window) < 0:
            raise GraphError(f"context window {list(window)} holds a label that is not a phone "
                             f"(1..{len(ctx.phones)})")
        pdfs = ctx.pdfs(window)
        key = (window[ctx.central], *pdfs)
        hmm = ctx.topology.hmm(ctx.phones[key[0] - 1])
        if hmm.is_left_to_right:
            loop_cost, forward_cost = hmm.costs(self_loop_scale)
            if key not in chains:
                chains[key] = _add_chain(h, pdfs, loop_cost if self_loops else None, forward_cost)
            enter_cost = 0.0 if self_loops else forward_cost
        else:
            if key not in chains:
                chains[key] = _add_hmm(h, pdfs, hmm, self_loop_scale, self_loops)
            enter_cost = 0.0
        h.add_arc(HUB, kaldifst.StdArc(enter_tid(pdfs[0]), label, enter_cost, chains[key]))
    if not chains:
        raise GraphError("H has no phone: the context windows hold no phone")
    kaldifst.arcsort(h, sort_type="olabel")
    logger.debug("H: %d windows, %d distinct HMMs, %d states", len(windows), len(chains), h.num_states)
    return h


def _add_hmm(h: kaldifst.StdVectorFst, pdfs: Sequence[int], hmm: PhoneHmm, self_loop_scale: float,
             self_loops: bool) -> int:
    """Add one phone HMM of any topology (states for ``pdfs``; every transition of its
    matrix an arc with its cost, :meth:`PhoneHmm.move_costs`; leaving it an epsilon arc to
    the hub); return its first state. Without ``self_loops`` the self-loops are left out
    and every other cost stays where it is."""
    first, n = h.num_states, len(pdfs)
    for _ in pdfs:
        h.add_state()
    loops, moves = hmm.loop_costs(self_loop_scale), hmm.move_costs(self_loop_scale)
    for i in range(n):
        if self_loops and np.isfinite(loops[i]):
            h.add_arc(first + i, kaldifst.StdArc(loop_tid(pdfs[i]), 0, float(loops[i]), first + i))
        for j in np.flatnonzero(np.isfinite(moves[i, :n])):
            h.add_arc(first + i, kaldifst.StdArc(enter_tid(pdfs[j]), 0, float(moves[i, j]), first + int(j)))
        if np.isfinite(moves[i, n]):
            h.add_arc(first + i, kaldifst.StdArc(0, 0, float(moves[i, n]), HUB))
    return first


def _add_chain(h: kaldifst.StdVectorFst, pdfs: Sequence[int], loop_cost: float | None,
               forward_cost: float) -> int:
    """Add one phone HMM (states for ``pdfs``, exit to the hub); return its first state.

    With ``loop_cost`` None the states get no self-loops, and the forward
    cost moves from the arcs leaving a state to the arcs entering it (the
    caller puts it on the arc from the hub).
    """
    first = h.num_states
    for _ in pdfs:
        h.add_state()
    for k, pdf in enumerate(pdfs):
        if loop_cost is not None:
            h.add_arc(first + k, kaldifst.StdArc(loop_tid(pdf), 0, loop_cost, first + k))
        if k + 1 < len(pdfs):
            h.add_arc(first + k, kaldifst.StdArc(enter_tid(pdfs[k + 1]), 0, forward_cost, first + k + 1))
    exit_cost = forward_cost if loop_cost is not None else 0.0
    h.add_arc(first + len(pdfs) - 1, kaldifst.StdArc(0, 0, exit_cost, HUB))
    return first


def _disambig_to_epsilon(fst: kaldifst.StdVectorFst, first_disambig: int) -> int:
    """Replace every input label ``>= first_disambig`` by epsilon (in place).

    Disambiguation labels are the largest input labels: after an ilabel sort
    only the last arc of each state needs looking at first. Arcs are rebuilt
    per affected state (new StdArcs, ``delete_arcs``, ``add_arc``): kaldifst
    has no usable mutable arc iterator. Returns the number of arcs changed.
    """
    kaldifst.arcsort(fst, sort_type="ilabel")
    changed = 0
    for s in range(fst.num_states):
        n = fst.num_arcs(s)
        if n == 0:
            continue
        it = kaldifst.ArcIterator(fst, s)
        it.seek(n - 1)
        if it.value.ilabel < first_disambig:
            continue
        arcs = list(kaldifst.ArcIterator(fst, s))
        new_arcs = [kaldifst.StdArc(0 if a.ilabel >= first_disambig else a.ilabel, a.olabel,
                                    a.weight.value, a.nextstate) for a in arcs]
        changed += sum(a.ilabel >= first_disambig for a in arcs)
        fst.delete_arcs(s, n)
        for a in new_arcs:
            fst.add_arc(s, a)
    kaldifst.arcsort(fst, sort_type="ilabel")
    return changed


def compose(h: kaldifst.StdVectorFst, cg: kaldifst.StdVectorFst, what: str) -> kaldifst.StdVectorFst:
    """``h`` ∘ ``cg`` (arcsorted here); GraphError naming ``what`` when empty."""
    kaldifst.arcsort(h, sort_type="olabel")
    kaldifst.arcsort(cg, sort_type="ilabel")
    out = kaldifst.compose(h, cg)
    if out.num_states == 0:
        raise GraphError(f"{what} is empty: H's output and C∘G's input labels do not match")
    return out if isinstance(out, kaldifst.StdVectorFst) else kaldifst.StdVectorFst(out)


def determinize(fst: kaldifst.StdVectorFst, what: str) -> kaldifst.StdVectorFst:
    """``determinize_star`` in place; GraphError when ``fst`` is not functional or too big."""
    try:
        hit_limit = kaldifst.determinize_star(fst, max_states=MAX_DET_STATES)
    except RuntimeError as exc:  # OpenFst's error on a non-functional transducer
        raise GraphError(f"{what} cannot be determinized: it is not functional (one input "
                         f"sequence reads as two output sequences, e.g. H has skip arcs) ({exc})") from None
    if hit_limit:
        raise GraphError(f"determinizing {what} stopped at {MAX_DET_STATES} states")
    return fst


def compose_hcg(g: kaldifst.StdVectorFst, ctx: ContextDependency, g_disambig: Sequence[int],
                self_loop_scale: float = DEFAULT_SELF_LOOP_SCALE) -> kaldifst.StdVectorFst:
    """H∘C∘G, determinized with its disambiguation labels, which then become epsilons.

    Args:
        g: G over phone ids, with the ``g_disambig`` labels (``#0`` …) on its input side.
        ctx: the model's context dependency.

    Returns:
        A StdVectorFst, input-label sorted: inputs transition ids (and
        epsilon), outputs phone ids (and epsilon).
    """
    cg, windows = kaldifst.compose_context(list(g_disambig), ctx.width, ctx.central, g)
    if cg.num_states == 0:
        raise GraphError("C∘G is empty")
    h = make_h(ctx, windows, self_loop_scale=self_loop_scale)
    hcg = determinize(compose(h, cg, "H∘C∘G"), "H∘C∘G")
    n = _disambig_to_epsilon(hcg, 2 * ctx.num_pdfs + 1)
    if hcg.num_states == 0 or hcg.start < 0:
        raise GraphError("H∘C∘G is empty after determinization")
    logger.debug("HCG: %d states, %d disambiguation arcs turned into epsilons", hcg.num_states, n)
    return hcg


def alignment_graph(ctx: ContextDependency, phone_ids: Sequence[int],
                    self_loop_scale: float = DEFAULT_SELF_LOOP_SCALE) -> kaldifst.StdVectorFst:
    """H∘C∘(linear acceptor of ``phone_ids``): the paths of one known phone sequence.

    Its input labels are transition ids, its outputs the phone ids; used for
    Viterbi (forced) alignment.
    """
    if not phone_ids:
        raise GraphError("alignment graph: empty phone sequence")
    line = kaldifst.make_linear_acceptor([int(p) for p in phone_ids])
    cg, windows = kaldifst.compose_context([], ctx.width, ctx.central, line)
    h = make_h(ctx, windows, disambig_to_epsilon=True, self_loop_scale=self_loop_scale)
    return compose(h, cg, "the alignment graph")


def load_graph(path: Union[str, Path]) -> kaldifst.StdFst:
    """Read a vector or const FST written by :func:`make_decoding_graph`.

    Raises:
        GraphError: missing, unreadable or empty file (kaldifst returns None
            rather than raising, and reads stdin on an empty name).
    """
    if not str(path):
        raise GraphError("no graph file given (empty path)")
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise GraphError(f"{path}: graph file is missing or empty")
    fst = kaldifst.StdFst.read(str(path))
    if fst is None:
        raise GraphError(f"{path}: not a readable OpenFst file")
    if fst.num_states == 0 or fst.start < 0:
        raise GraphError(f"{path}: graph is empty (no states or no start state)")
    return fst


def write_fst(fst: kaldifst.StdVectorFst, path: Path, const: bool = False) -> None:
    """Write ``fst`` atomically (as a const FST when ``const``); GraphError on failure."""
    if fst.num_states == 0 or fst.start < 0:  # a const copy of a start-less FST segfaults
        raise GraphError(f"{path}: refusing to write an empty FST")
    out = kaldifst.StdConstFst(fst) if const else fst
    with atomic_path(path) as tmp:
        if not out.write(str(tmp)):
            raise GraphError(f"{path}: could not write FST")


def _ensure_phone_table(path: Path, phones: list[str]) -> None:
    """Write phones.txt, or check that an existing one matches ``phones``."""
    if path.is_file():
        if read_phone_table(path) != phones:
            raise GraphError(f"{path}: exists but was written for a different phone list; "
                             f"remove {path.parent} to rebuild the graph")
        return
    write_symbol_table(phones, path)


def _strip_utt_ids(text_path: Path, phones: list[str], out_path: Path) -> int:
    """Copy Kaldi ``<utt> p1 p2 …`` lines as ``p1 p2 …`` to ``out_path``.

    Returns the number of sentences. Raises GraphError naming the file, line,
    utterance and phone on a phone outside ``phones``.
    """
    if not text_path.is_file():
        raise GraphError(f"{text_path}: phone transcript for the LM does not exist")
    known = set(phones)
    sentences: list[str] = []
    num_empty = 0
    with open(text_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if len(fields) < 2:
                num_empty += bool(fields)
                continue
            unknown = [p for p in fields[1:] if p not in known]
            if unknown:
                raise GraphError(f"{text_path}:{lineno}: utterance {fields[0]}: "
                                 f"phone {unknown[0]!r} is not in the phone list")
            sentences.append(" ".join(fields[1:]))
    if num_empty:
        logger.warning("%s: %d utterance(s) without phones ignored", text_path, num_empty)
    if not sentences:
        raise GraphError(f"{text_path}: no utterance with phones to train the LM on")
    out_path.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    return len(sentences)


def _train_phone_lm(text_path: Path, phones: list[str], arpa_path: Path, order: int) -> None:
    """Train the phone n-gram on ``text_path`` (utterance ids stripped)."""
    fd, tmp = tempfile.mkstemp(prefix=".lm_text.", suffix=".txt", dir=arpa_path.parent)
    os.close(fd)
    try:
        n = _strip_utt_ids(text_path, phones, Path(tmp))
        logger.info("training phone %d-gram on %d utterances of %s", order, n, text_path)
        train_ngram(Path(tmp), arpa_path, order)
    finally:
        os.unlink(tmp)


def _arpa_is_valid(path: Path, order: int) -> bool:
    """True when ``path`` is a valid ARPA file of exactly ``order``."""
    try:
        return max(read_arpa_counts(path)) == order
    except GraphError:
        return False


def _fst_is_valid(path: Path) -> bool:
    """True when ``path`` holds a readable, non-empty FST."""
    try:
        load_graph(path)
        return True
    except GraphError:
        return False


def graph_settings(order: int, ctx: ContextDependency, g_path: Path,
                   self_loop_scale: float = DEFAULT_SELF_LOOP_SCALE) -> dict:
    """The settings a decoding graph is built with (written beside it as HCG.yaml),
    G.fst by the SHA-256 of its bytes."""
    return {"lm_order": int(order), "input_labels": INPUT_LABELS,
            "topology": ctx.topology.to_dict(), "context": ctx.summary(),
            "self_loop_scale": float(self_loop_scale), "g_sha256": file_sha256(g_path)}


def _read_yaml_dict(path: Path) -> dict | None:
    """The mapping in a YAML file, or None when absent, unreadable or not a mapping."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def read_graph_settings(graph_path: Path) -> dict | None:
    """The settings in HCG.yaml beside ``graph_path``, or None when absent or unreadable.

    Keys of older versions that no longer mean anything (:data:`OBSOLETE_SETTINGS`)
    are dropped.
    """
    settings = _read_yaml_dict(Path(graph_path).with_name(GRAPH_YAML))
    if settings is None:
        return None
    return {k: v for k, v in settings.items() if k not in OBSOLETE_SETTINGS}


def build_graph(g_path: Path, ctx: ContextDependency, graph_path: Path,
                self_loop_scale: float = DEFAULT_SELF_LOOP_SCALE) -> None:
    """Compose H∘C with G from ``g_path`` (see :func:`compose_hcg`); write a const graph."""
    g = kaldifst.StdVectorFst.read(str(g_path))
    if g is None or g.num_states == 0:
        raise GraphError(f"{g_path}: G is missing, unreadable or empty")
    try:
        hcg = compose_hcg(g, ctx, [g_disambig_label(len(ctx.phones))], self_loop_scale)
    except GraphError as exc:
        raise GraphError(f"{graph_path}: composing H∘C with {g_path}: {exc}") from exc
    write_fst(hcg, graph_path, const=True)
    logger.info("HCG: %d states (context width %d, %d pdfs) -> %s", hcg.num_states, ctx.width,
                ctx.num_pdfs, graph_path)


def _step_inputs(record_path: Path, step: str) -> dict | None:
    """What ``step`` (a file of the lang dir) was last made from, as lm.yaml records it."""
    record = _read_yaml_dict(record_path) or {}
    inputs = record.get(step)
    return inputs if isinstance(inputs, dict) else None


def _set_step_inputs(record_path: Path, step: str, inputs: dict | None) -> None:
    """Record (or, with None, forget) what ``step`` was made from, atomically."""
    record = _read_yaml_dict(record_path) or {}
    if inputs is None:
        if step not in record:
            return
        record.pop(step)
    else:
        record[step] = inputs
    atomic_write_text(record_path, yaml.safe_dump(record, sort_keys=True))


def _warn_backoff_loops(arpa: Path, ctx: ContextDependency) -> None:
    """Warn when a phone that can last one frame meets an LM with backoff weights above 1
    (:func:`asr.lang.ngram.backoffs_above_one`): the decoder may loop through the backoff."""
    if int(ctx.topology.min_frames(ctx.phones).min()) > 1:
        return
    histories = backoffs_above_one(arpa)
    if histories:
        logger.warning("%s: %d histories have backoff weights above 1 (e.g. %r), and some phones can last "
                    "one frame: the decoder may re-enter a phone on every frame through G's backoff "
                    "arcs (inserted phones); an LM trained on more text has none",
                    arpa, len(histories), histories[0])


def make_decoding_graph(lang_dir: Path, ctx: ContextDependency, train_phone_text: Path,
                        order: int = 2, graph_dir: Path | None = None,
                        self_loop_scale: float = DEFAULT_SELF_LOOP_SCALE) -> Path:
    """Build ``lang_dir/{phones.txt, lm.arpa, G.fst, lm.yaml}`` and ``graph_dir/{HCG.fst,
    HCG.yaml, phones.txt}``; return the graph's path.

    Args:
        lang_dir: the phone LM's directory.
        ctx: the model's context dependency (its phones: phone i has id i+1).
        train_phone_text: Kaldi text, ``<utt> p1 p2 …`` per line.
        order: phone n-gram order.
        graph_dir: where the graph goes (default ``lang_dir``; a CD model's
            graph goes beside its tree).
        self_loop_scale: H's scale on the HMM transition costs (see :func:`make_h`).

    Every cache is keyed by content: lm.yaml records the SHA-256 of the
    files lm.arpa (the phone text, phones.txt; the order) and G.fst (lm.arpa,
    phones.txt) were made from, HCG.yaml that of G.fst and the graph's
    settings (LM order, context dependency, scale). A file is rebuilt when it
    is missing or invalid or its recorded inputs differ, whatever the files'
    times. Raises GraphError on bad input.
    """
    lang_dir, train_phone_text = Path(lang_dir), Path(train_phone_text)
    graph_dir = Path(graph_dir) if graph_dir is not None else lang_dir
    phones = ctx.phones
    for d in (lang_dir, graph_dir):
        d.mkdir(parents=True, exist_ok=True)
    phones_txt, arpa, g, record = (lang_dir / n for n in (PHONES_TXT, LM_ARPA, G_FST, LM_YAML))
    graph = graph_dir / GRAPH_FST
    _ensure_phone_table(phones_txt, phones)
    if not train_phone_text.is_file():
        raise GraphError(f"{train_phone_text}: phone transcript for the LM does not exist")
    lm_inputs = {"text_sha256": file_sha256(train_phone_text), "order": int(order),
                 "phones_sha256": file_sha256(phones_txt)}
    if not (_step_inputs(record, LM_ARPA) == lm_inputs and _arpa_is_valid(arpa, order)):
        _set_step_inputs(record, LM_ARPA, None)
        _train_phone_lm(train_phone_text, phones, arpa, order)
        _set_step_inputs(record, LM_ARPA, lm_inputs)
    g_inputs = {"lm_sha256": file_sha256(arpa), "phones_sha256": lm_inputs["phones_sha256"]}
    if not (_step_inputs(record, G_FST) == g_inputs and _fst_is_valid(g)):
        _set_step_inputs(record, G_FST, None)
        arpa_to_g(arpa, phones_txt, g)
        _set_step_inputs(record, G_FST, g_inputs)
    if graph_dir != lang_dir:
        _ensure_phone_table(graph_dir / PHONES_TXT, phones)
    _warn_backoff_loops(arpa, ctx)
    settings = graph_settings(order, ctx, g, self_loop_scale)
    if not (read_graph_settings(graph) == settings and _fst_is_valid(graph)):
        (graph_dir / GRAPH_YAML).unlink(missing_ok=True)  # no stale settings beside a new graph
        build_graph(g, ctx, graph, self_loop_scale)
        atomic_write_text(graph_dir / GRAPH_YAML, yaml.safe_dump(settings, sort_keys=True))
    return graph
