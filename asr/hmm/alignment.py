"""Alignment directories: the frame-level alignments of one data set.

Layout::

    ali_dir/
      ali.ark, ali.scp   per utterance a (T,) int32 vector of CI transition ids
      phones.txt         the phone symbol table the ids refer to
      ali.yaml           topology, frame_shift_s, num_utterances, num_frames,
                         and the free entries of ``AlignmentSet.info``
                         (``source``: model dir, acwt, data dir …; ``figures``)

Alignments are stored model-independently as transition ids of the CI
context dependency (:mod:`asr.hmm.transitions`), so any model of the same
phones and topology takes its frame targets from them
(:meth:`AlignmentSet.pdfs`). ``ali.yaml`` is written last and removed first
when a directory is rewritten: a directory without it is incomplete.

Times: the boundary between frames ``t-1`` and ``t`` is at ``t · frame_shift_s +
frame_offset_s`` seconds (:meth:`AlignmentSet.boundary_s`), the first frame starts at
0 and the last ends at ``T · frame_shift_s + 2 · frame_offset_s``. The offset is
half of (window − shift), 7.5 ms for 25 ms windows every 10 ms: a frame is labelled by
its window's centre (the training targets are made that way,
:func:`asr.hmm.targets.segments_to_alignment`), so the boundary between two frames
lies between their centres. Directories written before the offset was recorded read
it as 0 (frame ``t`` spans ``[t, t+1) · frame_shift_s``).

Export: CTM lines (:func:`format_ctm`), phone text (:func:`format_phone_text`), Praat TextGrids
(:func:`format_textgrid`, :func:`write_textgrids`) and a readable view for
``asr show-alignment`` (:func:`format_alignment`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import NamedTuple, Optional

import kaldiio
import numpy as np
import yaml

from asr.corpus.datadir import read_scp
from asr.errors import AsrError, DataError, ModelError
from asr.hmm.context import ContextDependency
from asr.phones.topology import Topology
from asr.hmm.transitions import (PhoneRun, Transitions, alignment_pdfs, check_alignment,
                                 ci_transitions)
from asr.io import atomic_path, atomic_write_text
from asr.symbols import RESERVED, is_disambig, read_phone_table, write_symbol_table

log = logging.getLogger(__name__)

ALI_ARK, ALI_SCP, PHONES_TXT, ALI_YAML = "ali.ark", "ali.scp", "phones.txt", "ali.yaml"
FORMAT_VERSION = 1
#: ali.yaml keys that the directory itself defines (the rest is ``info``).
_RESERVED = ("format_version", "topology", "frame_shift_s", "num_utterances", "num_frames")
#: Reserved too, but optional (directories written before it existed lack it).
FRAME_OFFSET = "frame_offset_s"


class StateRun(NamedTuple):
    """One HMM state visit of an alignment: 0-based phone index, state, frames [start, end)."""

    phone: int
    state: int
    start: int
    end: int


@dataclass(eq=False)
class AlignmentSet:
    """The alignments of one data set.

    Attributes:
        phones: the phone list; phone ``i`` (0-based) is id ``i+1`` of phones.txt.
        topology: the HMM of every phone.
        frame_shift_s: seconds between frames.
        frame_offset_s: seconds from ``t · frame_shift_s`` to the boundary before frame t
            (:meth:`boundary_s`); 0 for directories that do not record it.
        alignments: utt → (T,) int32 CI transition ids (1-based labels).
        info: free metadata stored in ali.yaml (``source``, ``figures`` …);
            YAML-serialisable plain values.
    """

    phones: list[str]
    topology: Topology
    frame_shift_s: float
    alignments: dict[str, np.ndarray]
    info: dict = field(default_factory=dict)
    frame_offset_s: float = 0.0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AlignmentSet):
            return NotImplemented
        return (list(self.phones) == list(other.phones) and self.topology == other.topology
                and self.frame_shift_s == other.frame_shift_s and self.info == other.info
                and self.frame_offset_s == other.frame_offset_s
                and self.alignments.keys() == other.alignments.keys()
                and all(np.array_equal(v, other.alignments[k]) for k, v in self.alignments.items()))

    @cached_property
    def transitions(self) -> Transitions:
        """Transition-id tables of the CI model of these phones and topology."""
        return ci_transitions(self.phones, self.topology)

    @property
    def utts(self) -> list[str]:
        """The utterances, sorted."""
        return sorted(self.alignments)

    @property
    def num_frames(self) -> int:
        """Frames of all utterances together."""
        return sum(len(a) for a in self.alignments.values())

    def tids(self, utt: str) -> np.ndarray:
        """(T,) CI transition ids of ``utt``; DataError for an utterance without alignment."""
        try:
            return self.alignments[utt]
        except KeyError:
            raise DataError(f"no alignment for utterance {utt!r}") from None

    def boundary_s(self, frame: int, num_frames: int) -> float:
        """Time in seconds of the boundary before ``frame`` (0 ≤ frame ≤ num_frames) of an
        utterance of ``num_frames`` frames: 0 at the start, ``frame · shift + offset``
        between frames, ``num_frames · shift + 2 · offset`` at the end."""
        if frame <= 0:
            return 0.0
        extra = 2 * self.frame_offset_s if frame >= num_frames else self.frame_offset_s
        return frame * self.frame_shift_s + extra

    def duration(self, utt: str) -> float:
        """Length of ``utt`` in seconds (the end of its last frame, :meth:`boundary_s`)."""
        n = len(self.tids(utt))
        return self.boundary_s(n, n)

    def runs(self, utt: str) -> list[PhoneRun]:
        """The phones of ``utt`` with their frames [start, end), in order."""
        return self.transitions.phone_runs(self.tids(utt))

    def state_runs(self, utt: str) -> list[StateRun]:
        """The HMM state visits of ``utt`` with their frames [start, end), in order.

        A visit starts at every frame whose transition enters a state (not a
        self-loop), so a phone repeated with one state per phone still gives
        two visits.
        """
        idx = np.asarray(self.tids(utt), dtype=np.int64) - 1
        tr = self.transitions
        starts = np.flatnonzero(~tr.tid_is_loop[idx])
        if len(starts) == 0 or starts[0] != 0:
            starts = np.concatenate([[0], starts])
        ends = np.append(starts[1:], len(idx))
        return [StateRun(int(tr.tid_phone[idx[a]]), int(tr.tid_state[idx[a]]), int(a), int(b))
                for a, b in zip(starts, ends)]

    def segments(self, utt: str) -> list[tuple[float, float, str]]:
        """(start_s, end_s, phone) of every phone of ``utt``, contiguous from 0."""
        n = len(self.tids(utt))
        return [(self.boundary_s(r.start, n), self.boundary_s(r.end, n), self.phones[r.phone])
                for r in self.runs(utt)]

    def pdfs(self, ctx: ContextDependency) -> dict[str, np.ndarray]:
        """Frame targets of model ``ctx``: {utt: (T,) int64 pdf ids}.

        Raises:
            ModelError: ``ctx`` has other phones or another topology.
        """
        if list(ctx.phones) != list(self.phones):
            raise ModelError(f"alignment was made for another phone set ({len(self.phones)} "
                             f"phones) than the model's ({len(ctx.phones)} phones)")
        if ctx.topology != self.topology:
            raise ModelError(f"alignment was made for another topology ({self.topology}) "
                             f"than the model's ({ctx.topology})")
        return {utt: alignment_pdfs(self.alignments[utt], ctx) for utt in self.utts}


# --------------------------------------------------------------------------
# storage

def write_alignments(ali_dir: Path, aset: AlignmentSet) -> None:
    """Write ``aset`` to ``ali_dir`` (ali.ark/scp, phones.txt, ali.yaml), each atomically.

    Everything is checked before a file is touched. ali.yaml is removed
    first and written last, so an interrupted rewrite leaves a directory
    that :func:`read_alignments` refuses rather than a mixed one.

    Raises:
        DataError: no utterances, a bad utterance id, a non-integer array or
            an alignment that is not a path of the CI HMMs (the message names
            the utterance), a bad frame shift, or ``info`` that is not plain
            YAML or uses a reserved key.
    """
    ali_dir = Path(ali_dir)
    mats = _checked_alignments(ali_dir, aset)
    meta_text = _meta_text(ali_dir, aset, mats)
    ali_dir.mkdir(parents=True, exist_ok=True)
    (ali_dir / ALI_YAML).unlink(missing_ok=True)
    try:
        write_symbol_table(aset.phones, ali_dir / PHONES_TXT)
    except AsrError as exc:
        raise DataError(f"{ali_dir}: cannot write the phone table: {exc}") from None
    _write_vectors(ali_dir / ALI_ARK, ali_dir / ALI_SCP, mats)
    atomic_write_text(ali_dir / ALI_YAML, meta_text)
    log.info("%s: wrote %d alignments, %d frames", ali_dir, len(mats), sum(map(len, mats.values())))


def _checked_alignments(ali_dir: Path, aset: AlignmentSet) -> dict[str, np.ndarray]:
    """{utt: (T,) int32} of ``aset``, every one checked as a CI HMM path."""
    if not aset.alignments:
        raise DataError(f"{ali_dir}: no alignments to write")
    _check_phones(ali_dir, aset.phones)
    out: dict[str, np.ndarray] = {}
    for utt in sorted(aset.alignments):
        where = f"{ali_dir}: utterance {utt}"
        if not isinstance(utt, str) or not utt or any(c.isspace() for c in utt):
            raise DataError(f"{ali_dir}: utterance id {utt!r} is empty or contains whitespace")
        tids = np.asarray(aset.alignments[utt])
        if not np.issubdtype(tids.dtype, np.integer):
            raise DataError(f"{where}: alignment has dtype {tids.dtype}, expected integers")
        check_alignment(tids, aset.phones, aset.topology, len(tids), where)
        out[utt] = tids.astype(np.int32)
    return out


def _check_phones(ali_dir: Path, phones: Sequence[str]) -> None:
    """DataError unless ``phones`` can be written as phones.txt (checked before any write)."""
    if not phones or len(set(phones)) != len(phones):
        raise DataError(f"{ali_dir}: empty or repeated phone list")
    for p in phones:
        if not isinstance(p, str) or not p or any(c.isspace() for c in p) or p in RESERVED \
                or is_disambig(p):
            raise DataError(f"{ali_dir}: phone {p!r} cannot be a symbol of {PHONES_TXT}")


def _meta_text(ali_dir: Path, aset: AlignmentSet, mats: Mapping[str, np.ndarray]) -> str:
    """The YAML text of ali.yaml."""
    shift = aset.frame_shift_s
    if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not shift > 0:
        raise DataError(f"{ali_dir}: frame shift must be a positive number of seconds, got {shift!r}")
    clash = sorted(set(aset.info) & set(_RESERVED))
    if clash:
        raise DataError(f"{ali_dir}: info keys {clash} are reserved in {ALI_YAML}")
    offset = aset.frame_offset_s
    if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not 0 <= offset < shift:
        raise DataError(f"{ali_dir}: frame offset must be in [0, frame shift), got {offset!r}")
    if FRAME_OFFSET in aset.info:
        raise DataError(f"{ali_dir}: info key {FRAME_OFFSET} is reserved in {ALI_YAML}")
    meta = {"format_version": FORMAT_VERSION, "topology": aset.topology.to_dict(),
            "frame_shift_s": float(shift), FRAME_OFFSET: float(offset), "num_utterances": len(mats),
            "num_frames": int(sum(len(m) for m in mats.values())), **aset.info}
    try:
        return yaml.safe_dump(meta, sort_keys=False)
    except yaml.YAMLError as exc:
        raise DataError(f"{ali_dir}: alignment info is not plain YAML data ({exc})") from None


def _write_vectors(ark_path: Path, scp_path: Path, vecs: Mapping[str, np.ndarray]) -> None:
    """Write ``vecs`` to an ark with a matching scp, both atomically (ark renamed first).

    The same scheme as :func:`asr.features.storage.write_matrices`, kept here
    so that reading alignments does not import the feature front end.
    """
    ark_path, scp_path = Path(ark_path).resolve(), Path(scp_path)
    with atomic_path(scp_path) as tmp_scp:
        with atomic_path(ark_path) as tmp_ark:
            kaldiio.save_ark(str(tmp_ark), {k: vecs[k] for k in sorted(vecs)}, scp=str(tmp_scp))
        tmp_scp.write_text(tmp_scp.read_text().replace(str(tmp_ark), str(ark_path)))


def combine_alignments(out_dir: Path, ali_dirs: Sequence[Path]) -> AlignmentSet:
    """Write the union of the alignment dirs ``ali_dirs`` to ``out_dir`` (for a combined data
    dir, :func:`asr.corpus.datadir.combine_datadirs`); ``source`` in ali.yaml lists each
    input's.

    Raises:
        DataError: fewer than two inputs, an utterance in two of them, or inputs of
            different phones, topology, frame shift or frame offset (named).
    """
    ali_dirs = [Path(d) for d in ali_dirs]
    if len(ali_dirs) < 2:
        raise DataError(f"{out_dir}: combining needs at least two alignment dirs, got {len(ali_dirs)}")
    sets = [read_alignments(d) for d in ali_dirs]
    first = sets[0]
    merged: dict[str, np.ndarray] = {}
    for d, aset in zip(ali_dirs, sets):
        same = (list(aset.phones) == list(first.phones) and aset.topology == first.topology
                and aset.frame_shift_s == first.frame_shift_s and aset.frame_offset_s == first.frame_offset_s)
        if not same:
            raise DataError(f"{d}: other phones, topology or frame timing than {ali_dirs[0]}; cannot combine")
        clash = sorted(set(merged) & set(aset.alignments))
        if clash:
            raise DataError(f"{d}: utterance {clash[0]} is also in an earlier alignment dir ({len(clash)} shared)")
        merged |= aset.alignments
    info = {"source": {"kind": "combined", "parts": [{"dir": str(d.resolve()), **aset.info.get("source", {})}
                                                      for d, aset in zip(ali_dirs, sets)]}}
    out = AlignmentSet(first.phones, first.topology, first.frame_shift_s, merged, info, first.frame_offset_s)
    write_alignments(Path(out_dir), out)
    return out


def read_alignments(ali_dir: Path, expect_phones: Optional[Sequence[str]] = None,
                    expect_topology: Optional[Topology] = None) -> AlignmentSet:
    """Read and check the alignment directory ``ali_dir``.

    Args:
        expect_phones: the phone list of the model that will use the
            alignments; ``None`` accepts any.
        expect_topology: likewise for the topology.

    Raises:
        DataError: a file is missing, unreadable or corrupt, the scp and
            ali.yaml disagree, or an alignment is not a path of the CI HMMs
            (the message names the file and the utterance).
        ModelError: the phone table or topology differs from the expected ones.
    """
    ali_dir = Path(ali_dir)
    if not ali_dir.is_dir():
        raise DataError(f"{ali_dir}: alignment directory does not exist")
    meta = _read_meta(ali_dir / ALI_YAML)
    topology = _meta_topology(ali_dir / ALI_YAML, meta)
    try:
        phones = read_phone_table(ali_dir / PHONES_TXT)
    except AsrError as exc:
        raise DataError(f"{ali_dir}: bad phone table: {exc}") from None
    if expect_phones is not None and list(expect_phones) != phones:
        raise ModelError(f"{ali_dir}: alignment was made for another phone set "
                         f"({len(phones)} phones in {PHONES_TXT}, expected {len(expect_phones)}"
                         f"{_first_difference(phones, list(expect_phones))})")
    if expect_topology is not None and expect_topology != topology:
        raise ModelError(f"{ali_dir}: alignment was made for another topology "
                         f"({topology}, expected {expect_topology})")
    alignments = _read_vectors(ali_dir / ALI_SCP, phones, topology)
    frames = sum(len(a) for a in alignments.values())
    if (len(alignments), frames) != (meta["num_utterances"], meta["num_frames"]):
        raise DataError(f"{ali_dir}: {ALI_SCP} has {len(alignments)} utterances, {frames} frames; "
                        f"{ALI_YAML} says {meta['num_utterances']}, {meta['num_frames']} "
                        f"(files of different runs?)")
    info = {k: v for k, v in meta.items() if k not in _RESERVED and k != FRAME_OFFSET}
    offset = meta.get(FRAME_OFFSET, 0.0)
    if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not 0 <= offset < meta["frame_shift_s"]:
        raise DataError(f"{ali_dir / ALI_YAML}: {FRAME_OFFSET} must be in [0, frame_shift_s), got {offset!r}")
    return AlignmentSet(phones, topology, float(meta["frame_shift_s"]), alignments, info, float(offset))


def _read_meta(path: Path) -> dict:
    """ali.yaml as a dict with its required keys checked."""
    if not path.is_file():
        raise DataError(f"{path}: missing; the alignment directory is incomplete "
                        f"(run the alignment stage)")
    try:
        meta = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: cannot read the alignment metadata ({exc})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: not a YAML mapping")
    missing = [k for k in _RESERVED if k not in meta]
    if missing:
        raise DataError(f"{path}: missing keys {missing}")
    if meta["format_version"] != FORMAT_VERSION:
        raise DataError(f"{path}: format version {meta['format_version']!r}, expected {FORMAT_VERSION}")
    shift = meta["frame_shift_s"]
    if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not shift > 0:
        raise DataError(f"{path}: frame_shift_s must be a positive number, got {shift!r}")
    for key in ("num_utterances", "num_frames"):
        if isinstance(meta[key], bool) or not isinstance(meta[key], int) or meta[key] < 0:
            raise DataError(f"{path}: {key} must be a non-negative integer, got {meta[key]!r}")
    return meta


def _meta_topology(path: Path, meta: dict) -> Topology:
    try:
        return Topology.from_dict(meta["topology"])
    except (ModelError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: bad topology {meta['topology']!r} ({exc})") from None


def _first_difference(found: list[str], expected: list[str]) -> str:
    for i, (a, b) in enumerate(zip(found, expected)):
        if a != b:
            return f"; phone {i + 1} is {a!r}, expected {b!r}"
    return ""


def _read_vectors(scp: Path, phones: list[str], topology: Topology) -> dict[str, np.ndarray]:
    """{utt: (T,) int32} of an alignment scp, each read and checked as a CI HMM path."""
    rx = read_scp(scp)  # file:line errors, rejects duplicate keys
    out: dict[str, np.ndarray] = {}
    for utt in sorted(rx):
        where = f"{scp}: utterance {utt}"
        try:
            vec = kaldiio.load_mat(rx[utt])
        except Exception as exc:  # kaldiio raises many types on a missing or corrupt ark
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise DataError(f"{where}: cannot read {rx[utt]}; the ark is missing, truncated "
                            f"or corrupt ({detail})") from None
        if not isinstance(vec, np.ndarray) or vec.ndim != 1 or not np.issubdtype(vec.dtype, np.integer):
            shape = getattr(vec, "shape", None)
            raise DataError(f"{where}: {rx[utt]} is not an integer vector (shape {shape})")
        check_alignment(vec, phones, topology, len(vec), where)
        out[utt] = vec.astype(np.int32, copy=False)
    return out


def check_against_features(aset: AlignmentSet, feats: Mapping[str, np.ndarray | int],
                           where: str, factor: int = 1) -> list[str]:
    """Check that every aligned utterance of ``feats`` has one label per ``factor`` feature rows.

    Args:
        feats: utt → (T, D) features (e.g. a :class:`~asr.features.storage.FeatureSet`), or T.
        where: names the pair in messages (e.g. "exp/ali_train vs data/train").
        factor: feature frames per alignment frame (an alignment at a lower frame rate
            has ceil(T / factor) frames).

    Returns:
        The utterances (sorted) that have features but no alignment; a
        warning gives their count. Aligned utterances without features are
        not an error (the data set may be a subset).

    Raises:
        DataError: an utterance's alignment length differs from its feature rows.
    """
    missing: list[str] = []
    for utt in sorted(feats):
        ali = aset.alignments.get(utt)
        if ali is None:
            missing.append(utt)
            continue
        rows = feats[utt] if isinstance(feats[utt], (int, np.integer)) else len(feats[utt])
        if len(ali) != -(-rows // factor):
            raise DataError(f"{where}: utterance {utt}: alignment has {len(ali)} frames, "
                            f"features have {rows}" + (f" (one frame every {factor})" if factor > 1 else ""))
    if missing:
        log.warning("%s: %d of %d utterances have no alignment (e.g. %s)",
                    where, len(missing), len(feats), missing[0])
    return missing


# --------------------------------------------------------------------------
# export

def _utts(aset: AlignmentSet, utts: Optional[Sequence[str]]) -> list[str]:
    """``utts`` (checked to have alignments) or all, sorted."""
    if utts is None:
        return aset.utts
    for utt in utts:
        aset.tids(utt)
    return list(utts)


def format_ctm(aset: AlignmentSet, utts: Optional[Sequence[str]] = None) -> str:
    """CTM lines ``utt 1 start dur phone`` (seconds, 3 decimals), one per phone.

    Times are rounded at the phone boundaries (:meth:`AlignmentSet.boundary_s`, to
    the millisecond), so each line starts where the previous one ends.
    """
    lines = []
    for utt in _utts(aset, utts):
        for a_s, b_s, phone in aset.segments(utt):
            a, b = round(a_s * 1000), round(b_s * 1000)
            lines.append(f"{utt} 1 {a / 1000:.3f} {(b - a) / 1000:.3f} {phone}")
    return "".join(line + "\n" for line in lines)


def format_phone_text(aset: AlignmentSet, utts: Optional[Sequence[str]] = None) -> str:
    """Kaldi text ``utt p1 p2 …`` of the aligned phone sequences, one line per utterance (the
    phone LM's training text where a corpus has no phone transcripts)."""
    return "".join(f"{utt} {' '.join(aset.phones[r.phone] for r in aset.runs(utt))}\n"
                   for utt in _utts(aset, utts))


def _praat_num(x: float) -> str:
    """A time as Praat writes it: shortest form, no trailing zeros (``0``, ``0.37``)."""
    return format(round(float(x), 9), ".15g")


def _praat_text(label: str) -> str:
    """A Praat string literal: double quotes inside are doubled."""
    return '"' + label.replace('"', '""') + '"'


def _interval_tier(name: str, xmax: float, intervals: Sequence[tuple[float, float, str]],
                   number: int) -> list[str]:
    """Lines of item [number], an IntervalTier of contiguous ``(xmin, xmax, text)``."""
    lines = [f"    item [{number}]:", '        class = "IntervalTier" ',
             f"        name = {_praat_text(name)} ", "        xmin = 0 ",
             f"        xmax = {_praat_num(xmax)} ", f"        intervals: size = {len(intervals)} "]
    for i, (a, b, text) in enumerate(intervals, 1):
        lines += [f"        intervals [{i}]:", f"            xmin = {_praat_num(a)} ",
                  f"            xmax = {_praat_num(b)} ", f"            text = {_praat_text(text)} "]
    return lines


def format_textgrid(aset: AlignmentSet, utt: str) -> str:
    """A Praat TextGrid (long text format) of ``utt`` with tiers "phones" and "states".

    The "states" tier labels each state visit ``<phone>_<state>`` (``aa_0``).
    Both tiers span [0, :meth:`AlignmentSet.duration`] with contiguous intervals.
    """
    n = len(aset.tids(utt))
    xmax = aset.duration(utt)
    phones = aset.segments(utt)
    states = [(aset.boundary_s(r.start, n), aset.boundary_s(r.end, n), f"{aset.phones[r.phone]}_{r.state}")
              for r in aset.state_runs(utt)]
    return textgrid_text(xmax, [("phones", phones), ("states", states)])


def textgrid_text(xmax: float, tiers: Sequence[tuple[str, Sequence[tuple[float, float, str]]]]) -> str:
    """A Praat TextGrid (long text format) of interval tiers ``(name, [(xmin_s, xmax_s, text), ...])``,
    each contiguous over [0, ``xmax``] seconds."""
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "",
             "xmin = 0 ", f"xmax = {_praat_num(xmax)} ", "tiers? <exists> ", f"size = {len(tiers)} ",
             "item []: "]
    for number, (name, intervals) in enumerate(tiers, 1):
        lines += _interval_tier(name, xmax, intervals, number)
    return "".join(line + "\n" for line in lines)


def write_textgrids(aset: AlignmentSet, out_dir: Path,
                    utts: Optional[Sequence[str]] = None) -> list[Path]:
    """Write ``<out_dir>/<utt>.TextGrid`` for ``utts`` (default all), each atomically.

    Returns:
        The paths written, in order.

    Raises:
        DataError: an utterance without alignment, or an id unusable as a file name.
    """
    out_dir = Path(out_dir)
    chosen = _utts(aset, utts)
    for utt in chosen:
        if "/" in utt or "\\" in utt or utt in (".", ".."):
            raise DataError(f"utterance id {utt!r} cannot be used as a file name in {out_dir}")
    paths = []
    for utt in chosen:
        path = out_dir / f"{utt}.TextGrid"
        atomic_write_text(path, format_textgrid(aset, utt))
        paths.append(path)
    return paths


def format_alignment(aset: AlignmentSet, utt: str, frames: bool = False) -> str:
    """A readable view of one alignment (``asr show-alignment``).

    A header (utterance, frames, seconds, phones), then one line per phone::

        start_s end_s frames phone  states: 0×4 1×3 2×5

    (frames spent in each HMM state). With ``frames`` also one line per frame:
    ``t  time  phone  state  pdf(CI)  loop|enter``.
    """
    tids = np.asarray(aset.tids(utt), dtype=np.int64)
    tr, shift = aset.transitions, aset.frame_shift_s
    runs = aset.runs(utt)
    width = max(len("phone"), *(len(p) for p in aset.phones))
    n = len(tids)
    lines = [f"{utt}: {n} frames, {aset.duration(utt):.2f} s, {len(runs)} phones",
             f"{'start_s':>8} {'end_s':>8} {'frames':>6} {'phone':<{width}}  states"]
    for run in runs:
        counts = np.bincount(tr.tid_state[tids[run.start:run.end] - 1],
                             minlength=int(tr.ctx.num_states[run.phone]))
        per_state = " ".join(f"{k}×{int(n)}" for k, n in enumerate(counts))
        lines.append(f"{aset.boundary_s(run.start, n):8.3f} {aset.boundary_s(run.end, n):8.3f} {run.end - run.start:6d} "
                     f"{aset.phones[run.phone]:<{width}}  states: {per_state}")
    if frames:
        lines += ["", f"{'t':>6} {'time':>8} {'phone':<{width}} {'state':>5} {'pdf':>5}  transition"]
        for t, tid in enumerate(tids):
            i = tid - 1
            kind = "loop" if tr.tid_is_loop[i] else "enter"
            lines.append(f"{t:6d} {t * shift:8.2f} {aset.phones[tr.tid_phone[i]]:<{width}} "
                         f"{int(tr.tid_state[i]):5d} {int(tr.tid_pdf[i]):5d}  {kind}")
    return "".join(line + "\n" for line in lines)
