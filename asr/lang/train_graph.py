"""Training graphs from word transcripts, and the equal alignment of a flat start.

Kaldi's ``compile-train-graphs`` builds, per utterance, H∘C∘L∘W, where W is
the linear acceptor of the transcript's words. Here L∘W is built directly as
a small phone acceptor (:meth:`TrainingGraphs.phone_fst`), which is the same
language with the same costs as Kaldi's L (``make_lexicon_fst.py``) composed
with W:

* optional silence (the lang's ``optional_silence`` phone) before the first
  word, between words and after the last, each with the word lang dir's
  probability ``p`` (cost ``-ln p`` taken, ``-ln(1-p)`` not taken, as L has it);
* every pronunciation variant of every word, at cost 0 (the lexicon has no
  pronunciation probabilities);
* a word missing from the lexicon gets CMUdict's or flite's letter-to-sound
  pronunciation (:meth:`TrainingGraphs.add_new_words`); one that gets none is
  read as ``<unk>`` (the garbage phone) when the lexicon has ``<unk>``, and
  counted; otherwise it is an error naming the utterance.

The acceptor has no epsilon arcs: the cost of skipping a silence is put on
the arc that ends a word. Its labels are phone ids (1-based, phones.txt), so
C and H compose onto it as onto any phone graph, and the graph's output
labels are the phones of the path.

The flat start (:meth:`TrainingGraphs.equal_alignment`, Kaldi's
``align-equal-compiled``) takes one path of the graph (silence, each word's
first pronunciation, silence; without the silences when the frames are too
few) and spreads the frames evenly over its HMM states.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import kaldifst
import numpy as np
import yaml

from asr.errors import DataError, GraphError
from asr.hmm.context import ContextDependency
from asr.hmm.transitions import PhoneRun, alignment_from_runs
from asr.lang.graph import DEFAULT_SELF_LOOP_SCALE, compose, make_h
from asr.lang.lexicon import Lexicon, Pron, new_word_pronunciations
from asr.lang.word_graph import LEXICON_TXT
from asr.phones.lang import Lang
from asr.symbols import UNK

log = logging.getLogger(__name__)

LANG_YAML = "lang.yaml"
#: Kaldi's default probability of optional silence (when lang.yaml does not say).
DEFAULT_SIL_PROB = 0.5


@dataclass
class OovCount:
    """Transcript words not in the lexicon, read as ``<unk>``: token count and the distinct words."""

    tokens: int = 0
    words: dict[str, int] = field(default_factory=dict)

    def add(self, word: str) -> None:
        self.tokens += 1
        self.words[word] = self.words.get(word, 0) + 1

    def summary(self) -> str:
        top = sorted(self.words.items(), key=lambda kv: -kv[1])[:10]
        return (f"{self.tokens} tokens of {len(self.words)} words not in the lexicon read as {UNK}"
                + (f" ({', '.join(f'{w} x{n}' for w, n in top)})" if top else ""))


class TooFewFramesError(DataError):
    """The utterance has fewer frames than the shortest path of its transcript."""


@dataclass
class TrainingGraphs:
    """What the training graphs of a word lang dir are made of.

    Attributes:
        lang: the phone lang (phones, optional silence, topology).
        lexicon: the pronunciations (``lexicon.txt`` of the word lang dir).
        sil_prob: probability of optional silence before, between and after words.
        origin: where it was read from (for messages).
    """

    lang: Lang
    lexicon: Lexicon
    sil_prob: float = DEFAULT_SIL_PROB
    origin: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.sil_prob < 1.0:
            raise GraphError(f"{self.origin or 'training graphs'}: silence probability {self.sil_prob} "
                             f"is outside [0, 1)")
        self._ids = {p: i for i, p in enumerate(self.lang.phones, 1)}
        missing = sorted(self.lexicon.phones() - set(self._ids))
        if missing:
            raise GraphError(f"{self.origin or 'lexicon'}: phones {', '.join(missing)} are not in the lang")

    @classmethod
    def load(cls, lang_dir: Path) -> "TrainingGraphs":
        """Read a word lang dir written by ``asr prepare-lang`` (its phone lang, lexicon.txt and
        the silence probability in lang.yaml).

        Raises:
            DataError / LexiconError / GraphError: a missing or malformed file, named.
        """
        lang_dir = Path(lang_dir)
        lang = Lang.load(lang_dir)
        lexicon = Lexicon.load(lang_dir / LEXICON_TXT, lang.phones)
        sil_prob = DEFAULT_SIL_PROB
        record = lang_dir / LANG_YAML
        if record.is_file():
            try:
                meta = yaml.safe_load(record.read_text(encoding="utf-8")) or {}
                sil_prob = float(meta.get("sil_prob", DEFAULT_SIL_PROB))
            except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError, TypeError, ValueError) as exc:
                raise GraphError(f"{record}: not a lang record with a silence probability "
                                 f"(sil_prob: a number in [0, 1)): {exc}") from None
        return cls(lang, lexicon, sil_prob, str(lang_dir))

    # ---- words -------------------------------------------------------------------------

    def add_new_words(self, texts: Iterable[str]) -> dict[str, list[Pron]]:
        """Give the words of ``texts`` the lexicon lacks pronunciations (CMUdict's, then flite's
        letter-to-sound rules, :func:`asr.lang.lexicon.new_word_pronunciations`); return them.
        Words that get none stay unknown (:meth:`words` reads them as ``<unk>``)."""
        missing = [w for t in texts for w in t.split() if w not in self.lexicon.prons]
        found = new_word_pronunciations(missing, self.lang)
        self.lexicon.prons.update({w: list(p) for w, p in found.items()})
        if found:
            log.info("%d words not in the lexicon %s got pronunciations from CMUdict or flite",
                     len(found), self.origin)
        return found

    def words(self, text: str | Sequence[str], utt: str, oovs: OovCount | None = None) -> list[str]:
        """The transcript's words as the lexicon has them (unknown words → ``<unk>``, counted).

        Raises:
            DataError: a word the lexicon lacks when it has no ``<unk>``.
        """
        tokens = text.split() if isinstance(text, str) else list(text)
        out = []
        for w in tokens:
            if w in self.lexicon.prons:
                out.append(w)
            elif UNK in self.lexicon.prons:
                out.append(UNK)
                if oovs is not None:
                    oovs.add(w)
            else:
                raise DataError(f"utterance {utt}: word {w!r} is not in the lexicon {self.origin} "
                                f"(and it has no {UNK}); add it, or rerun prepare-lang with this "
                                f"data's text")
        return out

    # ---- graphs ------------------------------------------------------------------------

    def phone_fst(self, words: Sequence[str]) -> kaldifst.StdVectorFst:
        """L∘W: the phone acceptor of the transcript ``words`` (labels: phone ids of phones.txt).

        Every path is: optional silence, a pronunciation of each word in
        turn with optional silence after each, as Kaldi's L composed with the
        linear acceptor of the words. An empty transcript (an utterance
        with no words) reads one silence phone.
        """
        p = self.sil_prob
        sil = self._ids[self.lang.optional_silence]
        take, skip = (-math.log(p), -math.log(1.0 - p)) if p > 0 else (math.inf, 0.0)
        fst = kaldifst.StdVectorFst()
        start = fst.add_state()
        fst.start = start
        if not words:
            end = fst.add_state()
            fst.add_arc(start, kaldifst.StdArc(sil, sil, 0.0, end))
            fst.set_final(end, 0.0)
            return fst
        # entries: (state, extra cost on the word's first arc) from which word k may begin
        after_sil = fst.add_state() if p > 0 else None
        entries = [(start, skip)]
        if after_sil is not None:
            fst.add_arc(start, kaldifst.StdArc(sil, sil, take, after_sil))
            entries.append((after_sil, 0.0))
        for word in words:
            prons = self.lexicon.prons.get(word)
            if not prons:
                raise GraphError(f"word {word!r} has no pronunciation in {self.origin or 'the lexicon'}")
            nxt = fst.add_state()
            sil_state = fst.add_state() if p > 0 else None
            for pron in prons:
                for state, first_cost in entries:
                    self._add_pron(fst, state, pron, first_cost, nxt, sil_state, skip, take)
            entries = [(nxt, 0.0)]
            if sil_state is not None:
                fst.add_arc(sil_state, kaldifst.StdArc(sil, sil, 0.0, nxt))
        fst.set_final(entries[0][0], 0.0)
        return fst

    def _add_pron(self, fst: kaldifst.StdVectorFst, state: int, pron: Pron, first_cost: float,
                  nxt: int, sil_state: int | None, skip: float, take: float) -> None:
        """A chain of ``pron`` from ``state``; its last arc goes on to ``nxt`` (no silence after,
        cost ``skip``) and to ``sil_state`` (silence after, cost ``take``)."""
        labels = [self._ids[ph] for ph in pron]
        cur, cost = state, first_cost
        for label in labels[:-1]:
            s = fst.add_state()
            fst.add_arc(cur, kaldifst.StdArc(label, label, cost, s))
            cur, cost = s, 0.0
        fst.add_arc(cur, kaldifst.StdArc(labels[-1], labels[-1], cost + skip, nxt))
        if sil_state is not None:
            fst.add_arc(cur, kaldifst.StdArc(labels[-1], labels[-1], cost + take, sil_state))

    def graph(self, ctx: ContextDependency, words: Sequence[str],
              self_loop_scale: float = DEFAULT_SELF_LOOP_SCALE) -> kaldifst.StdVectorFst:
        """H∘C∘L∘W of one transcript: input labels transition ids of ``ctx``, output labels phone ids.

        Raises:
            GraphError: ``ctx``'s phones are not the lang's.
        """
        if list(ctx.phones) != list(self.lang.phones):
            raise GraphError(f"the model's phones differ from those of {self.origin or 'the lang'}")
        lw = self.phone_fst(words)
        kaldifst.arcsort(lw, sort_type="ilabel")
        cg, windows = kaldifst.compose_context([], ctx.width, ctx.central, lw)
        h = make_h(ctx, windows, disambig_to_epsilon=True, self_loop_scale=self_loop_scale)
        return compose(h, cg, "the training graph")

    # ---- flat start --------------------------------------------------------------------

    def equal_path(self, words: Sequence[str], num_frames: int) -> list[str]:
        """The phones of the path the flat start spreads frames over: silence, each word's first
        pronunciation, silence (without the silences when ``num_frames`` is too few for them).

        Raises:
            TooFewFramesError: not even the path without silences fits.
        """
        spoken = [ph for w in words for ph in self.lexicon.prons[w][0]]
        sil = self.lang.optional_silence
        candidates = [[sil, *spoken, sil], spoken] if self.sil_prob > 0 and spoken else [spoken or [sil]]
        topo = self.lang.topology
        for phones in candidates:
            if int(topo.min_frames(phones).sum()) <= num_frames:
                return phones
        need = int(topo.min_frames(candidates[-1]).sum())
        raise TooFewFramesError(f"{num_frames} frames are fewer than the {need} frames its "
                                f"{len(candidates[-1])} phones need")

    def equal_alignment(self, words: Sequence[str], num_frames: int) -> np.ndarray:
        """The flat start's alignment of ``num_frames`` frames → (T,) int32 CI transition ids.

        The frames are spread evenly over the HMM states of :meth:`equal_path`
        (each state gets ``T / N`` frames, N the path's states); when T < N the
        phones get their minimum frames and the rest is spread evenly. Each
        phone's frames are then split over its states along one path of its HMM.
        """
        phones = self.equal_path(words, num_frames)
        topo = self.lang.topology
        states = np.array([topo.hmm(p).num_states for p in phones], dtype=np.int64)
        floor = topo.min_frames(phones)
        if num_frames >= states.sum():
            bounds = np.concatenate([[0], np.cumsum(states)]) * num_frames // states.sum()
        else:
            spare = num_frames - int(floor.sum())
            share = np.concatenate([[0], np.cumsum(states)]) * spare // states.sum()
            bounds = np.concatenate([[0], np.cumsum(floor)]) + share
        index = {p: i for i, p in enumerate(self.lang.phones)}
        runs = [PhoneRun(index[p], int(a), int(b)) for p, a, b in zip(phones, bounds[:-1], bounds[1:])]
        return alignment_from_runs(runs, self.lang.phones, topo)
