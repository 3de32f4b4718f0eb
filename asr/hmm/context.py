"""The context dependency: one object that maps (phone in its left/right
context, HMM state) → pdf, the network output that scores the frame.

Every stage asks it: the frame targets, the decoding graph's H, the model
bundle, the alignments and the decision tree. As in Kaldi, a context window
is a tuple of ``width`` phone ids (ids of ``phones.txt``: phone index + 1;
0 stands for "no phone", the utterance edge) whose entry at
``central`` is the phone itself. The context-independent (CI) model is the
trivial case: ``width`` 1, one leaf per (phone, state), numbered phone by
phone: pdf ``ci_offsets[phone_index] + state``, where a phone's offset is
the number of states of the phones before it (``phone_index · 3 + state``
when every phone has 3 states; the numbering of every CI model of this
toolkit). A context-dependent (CD) model has ``width`` 3 and a
phonetic decision tree (:mod:`asr.hmm.tree` builds it).

The tree has one root per (phone, HMM state); phones may have different
numbers of states (:class:`asr.phones.topology.Topology`). Kaldi's default
shares one root among a phone's states and may share it among phones; here
no root is shared. A node is a leaf (a pdf id) or
a question "is the phone at ``position`` (−1 left, +1 right, relative to the
centre) in phone set Q?", with a yes and a no child. Every pdf therefore
belongs to exactly one (phone, state), which is what lets a pdf path be read
back into phones (:mod:`asr.hmm.transitions`). Phones in ``ci_phones``
(silence) are never split: their pdfs ignore the context.

Saved as ``tree.json`` in a model bundle (:meth:`save`, :meth:`load`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from asr.errors import ModelError
from asr.phones.topology import DEFAULT_TOPOLOGY, Topology
from asr.io import atomic_write_text

TREE_JSON = "tree.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Split:
    """An inner node: is the phone at ``position`` of the window in ``questions[question]``?"""

    position: int  # -1 left, +1 right (relative to the central phone)
    question: int  # index into ContextDependency.questions
    yes: int       # node index
    no: int        # node index


Node = Union[int, Split]  # an int is a leaf: its pdf id


class ContextDependency:
    """(phone window, HMM state) → pdf, through one decision tree per (phone, state).

    Attributes:
        phones: the model's phones; phone i (0-based) has id i+1.
        topology: the HMM of every phone (states per phone, self-loop prob).
        width, central: context window size and the centre's position in it
            (1, 0 for CI; 3, 1 for triphones).
        questions: phone sets (of phone ids) that splits ask about.
        nodes: the tree nodes, leaves are pdf ids.
        roots: roots[i][s], the node of phone i (0-based), state s.
        ci_phones: phones whose pdfs do not depend on context.
    """

    def __init__(self, phones: Sequence[str], topology: Topology, width: int, central: int,
                 questions: Sequence[Sequence[int]], nodes: Sequence[Node],
                 roots: Sequence[Sequence[int]], ci_phones: Sequence[str] = ()) -> None:
        self.phones = list(phones)
        self.topology = topology
        self.width, self.central = int(width), int(central)
        self.questions = [frozenset(int(p) for p in q) for q in questions]
        self.nodes: list[Node] = [n if isinstance(n, Split) else int(n) for n in nodes]
        self.roots = [list(map(int, r)) for r in roots]
        self.ci_phones = sorted(ci_phones)
        self.num_states = topology.num_states(self.phones)  # (P,) states of each phone
        self.ci_offsets = np.concatenate([[0], np.cumsum(self.num_states)[:-1]]).astype(np.int64)
        self._cache: dict[tuple[int, ...], tuple[int, ...]] = {}
        self._check()
        self.pdf_phone, self.pdf_state = self._leaf_owners()
        self._walk = self._node_arrays()

    # ---- construction -------------------------------------------------
    @classmethod
    def ci(cls, phones: Sequence[str], topology: Topology = DEFAULT_TOPOLOGY) -> "ContextDependency":
        """The context-independent case: one pdf per (phone, state), numbered phone by phone
        (``topology``: the lang's; Kaldi's default when not given)."""
        counts = topology.num_states(phones)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        roots = [list(range(int(offsets[i]), int(offsets[i + 1]))) for i in range(len(phones))]
        return cls(phones, topology, 1, 0, [], list(range(int(offsets[-1]))), roots,
                   ci_phones=list(phones))

    def _check(self) -> None:
        """Structural checks: ModelError on an inconsistent tree."""
        if not self.phones or len(set(self.phones)) != len(self.phones):
            raise ModelError("context dependency: empty or repeated phone list")
        if not (1 <= self.width and 0 <= self.central < self.width):
            raise ModelError(f"context dependency: bad width {self.width} / central {self.central}")
        if len(self.roots) != len(self.phones) or any(len(r) != s for r, s in zip(self.roots, self.num_states)):
            raise ModelError(f"context dependency: roots must be one per state of each of the "
                             f"{len(self.phones)} phones (as the topology says)")
        if any(not 0 <= n < len(self.nodes) for r in self.roots for n in r):
            raise ModelError("context dependency: a root refers to a missing node")
        leaves = sorted(n for n in self.nodes if isinstance(n, int))
        if leaves != list(range(len(leaves))):
            raise ModelError("context dependency: leaves must number the pdfs 0..N-1, each once")
        for n in self.nodes:
            if isinstance(n, Split):
                if not (n.position != 0 and -self.central <= n.position < self.width - self.central):
                    raise ModelError(f"context dependency: split on position {n.position} "
                                     f"outside a window of width {self.width}")
                if not (0 <= n.question < len(self.questions)
                        and 0 <= n.yes < len(self.nodes) and 0 <= n.no < len(self.nodes)):
                    raise ModelError("context dependency: split refers to a missing node or question")
        unknown = set(self.ci_phones) - set(self.phones)
        if unknown:
            raise ModelError(f"context dependency: CI phones {sorted(unknown)} not in the phone list")

    def _leaf_owners(self) -> tuple[np.ndarray, np.ndarray]:
        """(phone index, state) that owns each pdf: two (num_pdfs,) int64 arrays."""
        num = self.num_pdfs
        phone, state = np.full(num, -1, np.int64), np.full(num, -1, np.int64)
        seen = np.zeros(len(self.nodes), dtype=bool)
        for i, states in enumerate(self.roots):
            for k, root in enumerate(states):
                stack = [root]
                while stack:
                    index = stack.pop()
                    if seen[index]:  # a tree reaches every node once: this is a cycle or a DAG
                        raise ModelError(f"context dependency: node {index} is reached twice "
                                         f"(not a tree)")
                    seen[index] = True
                    node = self.nodes[index]
                    if isinstance(node, Split):
                        stack += [node.yes, node.no]
                    elif phone[node] not in (-1, i) or state[node] not in (-1, k):
                        raise ModelError(f"context dependency: pdf {node} is shared by two "
                                         f"(phone, state) roots")
                    else:
                        phone[node], state[node] = i, k
        if (phone < 0).any():
            raise ModelError(f"context dependency: pdf {int(np.argmax(phone < 0))} is reached "
                             f"from no root")
        return phone, state

    def _node_arrays(self) -> dict[str, np.ndarray]:
        """The tree as arrays (leaf flag, leaf value, event column asked, question, yes, no)
        and the (Q, P+1) question membership, for :meth:`event_pdfs`."""
        nodes = self.nodes
        member = np.zeros((len(self.questions), len(self.phones) + 1), dtype=bool)
        for q, ids in enumerate(self.questions):
            ids_arr = np.fromiter(ids, dtype=np.int64)
            if len(ids_arr) and (ids_arr.min() < 0 or ids_arr.max() > len(self.phones)):
                raise ModelError(f"context dependency: question {q} holds phone ids outside "
                                 f"0..{len(self.phones)}")
            member[q, ids_arr] = True
        return {"leaf": np.array([isinstance(n, int) for n in nodes]),
                "value": np.array([n if isinstance(n, int) else 0 for n in nodes], dtype=np.int64),
                "column": np.array([0 if isinstance(n, int) else 1 + n.position for n in nodes]),
                "question": np.array([0 if isinstance(n, int) else n.question for n in nodes]),
                "yes": np.array([i if isinstance(n, int) else n.yes for i, n in enumerate(nodes)]),
                "no": np.array([i if isinstance(n, int) else n.no for i, n in enumerate(nodes)]),
                "member": member,
                "root": np.array([r + [0] * (int(self.num_states.max()) - len(r)) for r in self.roots],
                                 dtype=np.int64)}

    # ---- queries -----------------------------------------------------
    def event_pdfs(self, events: np.ndarray) -> np.ndarray:
        """The pdf of every event, all walked down the tree at once: the one tree evaluator.

        Args:
            events: (E, 4) int (left phone id, centre phone id, right phone id,
                HMM state); ids 1-based, 0 the utterance edge; the neighbours are
                read only when the window is that wide (width 3, centre 1; width
                1 asks nothing). Centres must be phones, states within their HMM.

        Returns:
            (E,) int64 pdf ids.
        """
        if not (self.central <= 1 and self.width - self.central <= 2):
            raise ModelError(f"context dependency of width {self.width}, centre {self.central}: "
                             f"only windows of one phone each side are evaluated")
        w, events = self._walk, np.asarray(events, dtype=np.int64).reshape(-1, 4)
        node = w["root"][events[:, 1] - 1, events[:, 3]]
        for _ in range(len(self.nodes)):
            inner = ~w["leaf"][node]
            if not inner.any():
                break
            at = node[inner]
            answer = w["member"][w["question"][at], events[inner, w["column"][at]]]
            node[inner] = np.where(answer, w["yes"][at], w["no"][at])
        return w["value"][node]

    @property
    def num_pdfs(self) -> int:
        return sum(isinstance(n, int) for n in self.nodes)

    @property
    def is_ci(self) -> bool:
        return self.width == 1

    def pdf(self, window: Sequence[int], state: int) -> int:
        """The pdf of HMM state ``state`` of the central phone of ``window``.

        Args:
            window: ``width`` phone ids (0 = utterance edge); the centre must
                be a phone.
        """
        pdfs = self.pdfs(window)
        if not 0 <= int(state) < len(pdfs):
            raise ModelError(f"HMM state {state} outside 0..{len(pdfs) - 1} of phone "
                             f"{self.phones[int(window[self.central]) - 1]!r}")
        return pdfs[int(state)]

    def pdfs(self, window: Sequence[int]) -> tuple[int, ...]:
        """The pdf of every HMM state of the central phone of ``window`` (one tree walk for
        all of them, cached)."""
        key = tuple(int(p) for p in window)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if len(key) != self.width:
            raise ModelError(f"context window {key} has {len(key)} phones, expected {self.width}")
        centre = key[self.central]
        if not 1 <= centre <= len(self.phones):
            raise ModelError(f"context window {key}: central phone id {centre} is not a phone")
        events = np.array([self.event(key, k) for k in range(int(self.num_states[centre - 1]))])
        pdfs = tuple(int(p) for p in self.event_pdfs(events))
        self._cache[key] = pdfs
        return pdfs

    def event(self, window: Sequence[int], state: int) -> list[int]:
        """The (left, centre, right, state) event of a window (0 where it has no neighbour)."""
        c = self.central
        return [window[c - 1] if c >= 1 else 0, window[c], window[c + 1] if c + 1 < self.width else 0, state]

    def windows(self, phone_ids: Sequence[int]) -> list[tuple[int, ...]]:
        """The context window of every phone of an utterance (edges padded with 0)."""
        pad = [0] * (self.width - 1)
        padded = pad[: self.central] + list(phone_ids) + pad[self.central:]
        return [tuple(padded[i : i + self.width]) for i in range(len(phone_ids))]

    # ---- storage -----------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION, "phones": self.phones,
            "topology": self.topology.to_dict(), "context_width": self.width,
            "central_position": self.central, "ci_phones": self.ci_phones,
            "questions": [sorted(q) for q in self.questions],
            "roots": [list(r) for r in self.roots],
            "nodes": [n if isinstance(n, int) else [n.position, n.question, n.yes, n.no]
                      for n in self.nodes],
        }

    def summary(self) -> dict:
        """What the bundle manifest and graph settings record about it."""
        return {"context_width": self.width, "central_position": self.central,
                "num_pdfs": self.num_pdfs, "sha256": self.digest()}

    def digest(self) -> str:
        """SHA-256 of the canonical JSON form (identifies the tree)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), separators=(",", ":")) + "\n")

    @classmethod
    def from_dict(cls, d: dict, where: str = "") -> "ContextDependency":
        try:
            if d.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format version {d.get('format_version')!r}, expected {FORMAT_VERSION}")
            nodes: list[Node] = [n if isinstance(n, int) else Split(*map(int, n)) for n in d["nodes"]]
            return cls(d["phones"], Topology.from_dict(d["topology"]), d["context_width"],
                       d["central_position"], d["questions"], nodes, d["roots"], d.get("ci_phones", ()))
        except ModelError as exc:
            raise (ModelError(f"{where}: {exc}") if where else exc) from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"{where or 'context dependency'}: not valid ({exc!r})") from None

    @classmethod
    def load(cls, path: Path) -> "ContextDependency":
        """Read ``tree.json``; ModelError naming the file when missing or malformed."""
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except OSError as exc:
            raise ModelError(f"{path}: cannot read the context dependency ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise ModelError(f"{path}: not JSON ({exc})") from None
        if not isinstance(d, dict):
            raise ModelError(f"{path}: not a context dependency")
        return cls.from_dict(d, str(path))

    def check_phones(self, phones: Sequence[str], where: str) -> None:
        """ModelError when ``phones`` (a model's or a graph's) differ from the tree's."""
        if list(phones) != self.phones:
            raise ModelError(f"{where}: phone list differs from the context dependency's "
                             f"({len(phones)} vs {len(self.phones)} phones)")
