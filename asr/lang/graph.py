"""The phone decoding graph H∘G for hybrid (pdf-scored) decoding.

H maps sequences of pdf labels (``pdf_id + 1``, one per frame) to phone ids:
one 3-state left-to-right HMM per phone hanging off a hub state, the phone id
emitted on the arc that enters the phone. G is a phone n-gram (kaldilm) with
``#0`` on the input side of its backoff arcs. H passes ``#0`` through on its
hub, so that H∘G keeps ``#0`` on the backoff paths while it is
determinized (``determinize_star``, which also removes H's epsilon exit
arcs); only then are the ``#0`` labels turned into epsilons, by rebuilding
the affected states' arcs. The decoder therefore never sees ``#0``.

Label conventions: input label = ``pdf_id(phone_index, state) + 1`` (what
kaldi-decoder's ``DecodableCtc`` expects: it scores label i with column i-1);
output label = the phone's id in ``phones.txt`` (``phone_index + 1``).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Union

import kaldifst

from asr.errors import GraphError
import yaml

from asr.hmm.topology import CI_TOPOLOGY, Topology
from asr.io import atomic_path, atomic_write_text
from asr.lang.ngram import arpa_to_g, read_arpa_counts, train_ngram
from asr.lang.symbols import read_phone_table, write_symbol_table

logger = logging.getLogger(__name__)

#: Kaldi's default scale on HMM self-loop costs (against an acoustic scale near 0.1).
DEFAULT_SELF_LOOP_SCALE = 0.1
#: Kaldi's default scale on the (renormalised) non-self-loop transition costs.
DEFAULT_TRANSITION_SCALE = 1.0
#: Stop determinization beyond this many states (a sign of a broken input).
MAX_DET_STATES = 5_000_000
PHONES_TXT, LM_ARPA, G_FST, HG_FST = "phones.txt", "lm.arpa", "G.fst", "HG.fst"
#: The settings HG.fst was built with (order, topology, transition scales).
HG_YAML = "HG.yaml"
HUB = 0


def _transition_costs(self_loop_prob: float, self_loop_scale: float,
                      transition_scale: float) -> tuple[float, float]:
    """Return (self-loop cost, forward cost) in -log units, Kaldi-style.

    As in Kaldi's ``AddSelfLoops``: the self-loop costs
    ``-log(p) * self_loop_scale``; leaving the state costs
    ``-log(1 - p) * self_loop_scale`` plus ``transition_scale`` times the
    cost of the renormalised non-self-loop transitions. Every state here has a
    single forward transition, whose renormalised probability is 1, so that
    last term is 0 whatever ``transition_scale`` is.
    """
    if not 0.0 < self_loop_prob < 1.0:
        raise GraphError(f"self-loop probability must be in (0, 1), got {self_loop_prob}")
    if self_loop_scale < 0 or transition_scale < 0:
        raise GraphError(f"scales must be >= 0, got self_loop_scale={self_loop_scale}, "
                         f"transition_scale={transition_scale}")
    renormalised_forward_prob = 1.0  # one forward arc per state
    loop_cost = -math.log(self_loop_prob) * self_loop_scale
    forward_cost = (-math.log(1.0 - self_loop_prob) * self_loop_scale
                    - math.log(renormalised_forward_prob) * transition_scale)
    return loop_cost, forward_cost


def g_disambig_label(num_phones: int) -> int:
    """The label of ``#0`` in phones.txt and on G's input side."""
    return num_phones + 1


def h_disambig_ilabel(num_phones: int, topo: Topology = CI_TOPOLOGY) -> int:
    """The input label that stands for ``#0`` in H and H∘G, above every pdf label."""
    return topo.num_pdfs(num_phones) + 1


def make_h(num_phones: int, with_disambig: bool = True, topo: Topology = CI_TOPOLOGY,
           self_loop_scale: float = DEFAULT_SELF_LOOP_SCALE,
           transition_scale: float = DEFAULT_TRANSITION_SCALE) -> kaldifst.StdVectorFst:
    """Build H: pdf labels (pdf+1) → phone ids (1..num_phones), a loop of phone HMMs.

    State 0 is the hub (start and final). Phone ``i`` (0-based) has states
    ``1 + S·i + k`` for HMM state k of ``topo`` (S states per phone). Arcs:
    hub → state 0 (input pdf(i,0)+1, output i+1, cost 0); a self-loop on each
    state; state k → k+1 (input pdf(i,k+1)+1); the last state → hub
    (epsilon). No skips: a phone lasts at least S frames, as in the training
    targets (``topo.min_frames``). With ``with_disambig``, the hub has a
    self-loop that passes G's backoff label through composition: output
    ``#0`` = num_phones+1 (its id in phones.txt), input num_pdfs+1 (the
    phones.txt id would collide with a pdf label on the input side).

    Returns:
        An olabel-sorted StdVectorFst with 1 + S·num_phones states.
    """
    if num_phones < 1:
        raise GraphError(f"H needs at least one phone, got {num_phones}")
    loop_cost, forward_cost = _transition_costs(topo.self_loop_prob, self_loop_scale,
                                                transition_scale)
    states = topo.states_per_phone
    h = kaldifst.StdVectorFst()
    for _ in range(1 + states * num_phones):
        h.add_state()
    h.start = HUB
    h.set_final(HUB, 0.0)
    for i in range(num_phones):
        first = 1 + states * i
        h.add_arc(HUB, kaldifst.StdArc(topo.pdf_id(i, 0) + 1, i + 1, 0.0, first))
        for k in range(states):
            h.add_arc(first + k, kaldifst.StdArc(topo.pdf_id(i, k) + 1, 0, loop_cost, first + k))
            if k < states - 1:
                h.add_arc(first + k, kaldifst.StdArc(topo.pdf_id(i, k + 1) + 1, 0, forward_cost,
                                                     first + k + 1))
        h.add_arc(first + states - 1, kaldifst.StdArc(0, 0, forward_cost, HUB))
    if with_disambig:
        h.add_arc(HUB, kaldifst.StdArc(h_disambig_ilabel(num_phones, topo),
                                       g_disambig_label(num_phones), 0.0, HUB))
    kaldifst.arcsort(h, sort_type="olabel")
    return h


def _disambig_to_epsilon(fst: kaldifst.StdVectorFst, disambig: int) -> int:
    """Replace input label ``disambig`` by epsilon on every arc (in place).

    ``disambig`` must be the largest input label: after an ilabel sort only
    the last arc of each state needs looking at. Arcs are rebuilt per
    affected state (new StdArcs, ``delete_arcs``, ``add_arc``): kaldifst has
    no usable mutable arc iterator. Returns the number of arcs changed.
    """
    kaldifst.arcsort(fst, sort_type="ilabel")
    changed = 0
    for s in range(fst.num_states):
        n = fst.num_arcs(s)
        if n == 0:
            continue
        it = kaldifst.ArcIterator(fst, s)
        it.seek(n - 1)
        if it.value.ilabel != disambig:
            continue
        arcs = list(kaldifst.ArcIterator(fst, s))
        new_arcs = [kaldifst.StdArc(0 if a.ilabel == disambig else a.ilabel, a.olabel,
                                    a.weight.value, a.nextstate) for a in arcs]
        changed += sum(a.ilabel == disambig for a in arcs)
        fst.delete_arcs(s, n)
        for a in new_arcs:
            fst.add_arc(s, a)
    kaldifst.arcsort(fst, sort_type="ilabel")
    return changed


def compose_hg(h: kaldifst.StdVectorFst, g: kaldifst.StdVectorFst,
               disambig: int) -> kaldifst.StdVectorFst:
    """H∘G, determinized with ``#0`` kept, then ``#0`` → epsilon.

    ``disambig`` is ``#0``'s label on H's input side (:func:`h_disambig_ilabel`).

    Returns:
        A StdVectorFst, input-label sorted: inputs pdf+1 (and epsilon),
        outputs phone ids (and epsilon).
    """
    kaldifst.arcsort(h, sort_type="olabel")
    kaldifst.arcsort(g, sort_type="ilabel")
    hg = kaldifst.compose(h, g)
    if hg.num_states == 0:
        raise GraphError("H∘G is empty: H's output and G's input labels do not match")
    hg = kaldifst.StdVectorFst(hg) if not isinstance(hg, kaldifst.StdVectorFst) else hg
    try:
        hit_limit = kaldifst.determinize_star(hg, max_states=MAX_DET_STATES)
    except RuntimeError as exc:  # OpenFst's error on a non-functional transducer
        raise GraphError(f"H∘G cannot be determinized: it is not functional (one pdf sequence "
                         f"reads as two phone sequences, e.g. H has skip arcs or two phones "
                         f"share their pdfs) ({exc})") from None
    if hit_limit:
        raise GraphError(f"determinizing H∘G stopped at {MAX_DET_STATES} states")
    n = _disambig_to_epsilon(hg, disambig)
    if hg.num_states == 0 or hg.start < 0:
        raise GraphError("H∘G is empty after determinization")
    logger.debug("HG: %d states, %d #0 arcs turned into epsilons", hg.num_states, n)
    return hg


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


def _is_up_to_date(target: Path, sources: list[Path]) -> bool:
    """True when ``target`` exists and is not older than any of ``sources``."""
    if not target.is_file():
        return False
    mtime = target.stat().st_mtime_ns
    return all(src.stat().st_mtime_ns <= mtime for src in sources)


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


def hg_settings(order: int, topo: Topology = CI_TOPOLOGY,
                self_loop_scale: float = DEFAULT_SELF_LOOP_SCALE,
                transition_scale: float = DEFAULT_TRANSITION_SCALE) -> dict:
    """The settings an H∘G graph is built with (written beside it as HG.yaml)."""
    return {"lm_order": int(order), "topology": topo.to_dict(),
            "self_loop_scale": float(self_loop_scale), "transition_scale": float(transition_scale)}


def read_hg_settings(graph_path: Path) -> dict | None:
    """The settings in HG.yaml beside ``graph_path``, or None when absent or unreadable."""
    path = Path(graph_path).with_name(HG_YAML)
    try:
        settings = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return settings if isinstance(settings, dict) else None


def build_hg(g_path: Path, num_phones: int, hg_path: Path, topo: Topology = CI_TOPOLOGY,
             self_loop_scale: float = DEFAULT_SELF_LOOP_SCALE,
             transition_scale: float = DEFAULT_TRANSITION_SCALE) -> None:
    """Compose H (see :func:`make_h`) with G from ``g_path``; write a const HG."""
    g = kaldifst.StdVectorFst.read(str(g_path))
    if g is None or g.num_states == 0:
        raise GraphError(f"{g_path}: G is missing, unreadable or empty")
    h = make_h(num_phones, with_disambig=True, topo=topo, self_loop_scale=self_loop_scale,
               transition_scale=transition_scale)
    try:
        hg = compose_hg(h, g, disambig=h_disambig_ilabel(num_phones, topo))
    except GraphError as exc:
        raise GraphError(f"{hg_path}: composing H with {g_path}: {exc}") from exc
    write_fst(hg, hg_path, const=True)
    logger.info("HG: %d states -> %s", hg.num_states, hg_path)


def make_decoding_graph(lang_dir: Path, phones: list[str], train_phone_text: Path,
                        order: int = 2, topo: Topology = CI_TOPOLOGY,
                        self_loop_scale: float = DEFAULT_SELF_LOOP_SCALE,
                        transition_scale: float = DEFAULT_TRANSITION_SCALE) -> Path:
    """Build ``lang_dir/{phones.txt, lm.arpa, G.fst, HG.fst, HG.yaml}``; return HG's path.

    Args:
        lang_dir: output directory.
        phones: the model's phones; phone i (0-based) has id i+1 in phones.txt.
        train_phone_text: Kaldi text, ``<utt> p1 p2 …`` per line.
        order: phone n-gram order.
        topo, self_loop_scale, transition_scale: H's topology and transition
            scaling (see :func:`make_h`).

    Each file is skipped when it exists, is valid and is not older than its
    inputs (make-style); HG.fst is also rebuilt when HG.yaml records other
    settings. Raises GraphError on bad input.
    """
    lang_dir, train_phone_text = Path(lang_dir), Path(train_phone_text)
    phones = list(phones)
    lang_dir.mkdir(parents=True, exist_ok=True)
    phones_txt, arpa, g, hg = (lang_dir / n for n in (PHONES_TXT, LM_ARPA, G_FST, HG_FST))
    _ensure_phone_table(phones_txt, phones)
    if not train_phone_text.is_file():
        raise GraphError(f"{train_phone_text}: phone transcript for the LM does not exist")
    if not (_is_up_to_date(arpa, [train_phone_text]) and _arpa_is_valid(arpa, order)):
        _train_phone_lm(train_phone_text, phones, arpa, order)
    if not (_is_up_to_date(g, [arpa, phones_txt]) and _fst_is_valid(g)):
        arpa_to_g(arpa, phones_txt, g)
    settings = hg_settings(order, topo, self_loop_scale, transition_scale)
    if not (_is_up_to_date(hg, [g]) and _fst_is_valid(hg) and read_hg_settings(hg) == settings):
        build_hg(g, len(phones), hg, topo, self_loop_scale, transition_scale)
        atomic_write_text(lang_dir / HG_YAML, yaml.safe_dump(settings, sort_keys=True))
    return hg
