"""H, H∘C∘G for a CI model and the phone decoding graph (real kaldingram, kaldilm, kaldifst).

No figure of a particular build is asserted (they change with the libraries): the graph is
checked against costs worked out directly from the ARPA bigram and the HMM transition costs
on random paths, for determinism, for stochastic HMM states, and for every transition id
being on some path."""

from __future__ import annotations

import math
import os
import random
import shutil
from pathlib import Path

import kaldifst
import pytest

import asr.lang.graph as graph_module
from asr.errors import GraphError, ModelError
from asr.hmm.context import ContextDependency
from asr.phones.topology import DEFAULT_TOPOLOGY as CI_TOPOLOGY
from asr.hmm.transitions import enter_tid, loop_tid
from asr.lang.graph import (DEFAULT_SELF_LOOP_SCALE, load_graph, make_decoding_graph, make_h,
                            read_graph_settings)
from asr.phones.topology import PhoneHmm
from asr.symbols import BOS, EOS, read_symbol_table
from asr.phones.timit import PHONES48
from asr.lang.word_lm import ArpaModel

N = len(PHONES48)
NUM_PDFS = 3 * N
NUM_TIDS = 2 * NUM_PDFS
SELF_LOOP_PROB = CI_TOPOLOGY.self_loop_prob
FILES = ("phones.txt", "lm.arpa", "G.fst", "lm.yaml", "HCG.fst", "HCG.yaml")
CI = ContextDependency.ci(list(PHONES48))
#: compose_context's windows for a CI model: epsilon, one per phone, then #0 (id N+1).
CI_WINDOWS = [[]] + [[i] for i in range(1, N + 1)] + [[-(N + 1)]]


def write_phone_text(path: Path, num_utts: int = 300, seed: int = 0) -> None:
    """Kaldi text of random-ish 48-phone sentences framed by silence."""
    rng = random.Random(seed)
    lines = []
    for u in range(num_utts):
        body = [rng.choice(PHONES48) for _ in range(rng.randint(5, 40))]
        lines.append(f"utt{u:04d} " + " ".join(["sil", *body, "sil"]))
    path.write_text("\n".join(lines) + "\n")


def all_arcs(fst: kaldifst.StdFst) -> list[kaldifst.StdArc]:
    return [a for s in range(fst.num_states) for a in kaldifst.ArcIterator(fst, s)]


@pytest.fixture(scope="module")
def lang(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("graph")
    write_phone_text(d / "text")
    make_decoding_graph(d / "lang", CI, d / "text")
    return d


def test_h_structure() -> None:
    h = make_h(CI, CI_WINDOWS)
    assert h.num_states == 1 + NUM_PDFS
    arcs = all_arcs(h)
    tid_labels = {a.ilabel for a in arcs if 1 <= a.ilabel <= NUM_TIDS}
    assert tid_labels == set(range(1, NUM_TIDS + 1))  # enter (2 pdf + 1) and loop (2 pdf + 2) of every pdf
    disambig = [a for a in arcs if a.ilabel > NUM_TIDS]
    assert [(a.ilabel, a.olabel, a.nextstate) for a in disambig] == [(NUM_TIDS + 1, N + 1, 0)]
    entries = [a for a in arcs if a.olabel != 0 and a.olabel != N + 1]
    assert sorted(a.olabel for a in entries) == list(range(1, N + 1))
    assert all(a.ilabel == 2 * 3 * (a.olabel - 1) + 1 for a in entries)  # enters pdf(i, 0)
    # Kaldi-style scaled costs: self-loops 0.1 * -log 0.75, leaving 0.1 * -log 0.25.
    loops = [a.weight.value for s in range(h.num_states) for a in kaldifst.ArcIterator(h, s)
             if a.nextstate == s and a.ilabel <= NUM_TIDS]
    assert len(loops) == NUM_PDFS
    assert loops[0] == pytest.approx(-0.1 * math.log(SELF_LOOP_PROB), rel=1e-5)
    exits = [a.weight.value for a in arcs if a.ilabel == 0]
    assert len(exits) == N
    assert exits[0] == pytest.approx(-0.1 * math.log(1 - SELF_LOOP_PROB), rel=1e-5)
    h_plain = make_h(CI, CI_WINDOWS, disambig_to_epsilon=True, self_loop_scale=1.0)
    assert all(a.ilabel <= NUM_TIDS for a in all_arcs(h_plain))


def test_hmm_states_are_stochastic_at_scale_one() -> None:
    """With self_loop_scale 1 the arcs leaving every HMM state (self-loop, forward or exit)
    are its transition probabilities: they sum to 1."""
    h = make_h(CI, CI_WINDOWS, self_loop_scale=1.0)
    for s in range(1, h.num_states):
        total = sum(math.exp(-a.weight.value) for a in kaldifst.ArcIterator(h, s))
        assert total == pytest.approx(1.0, abs=1e-6), s
    assert PhoneHmm(3, 0.75).costs(1.0) == pytest.approx((-math.log(0.75), -math.log(0.25)))
    assert PhoneHmm(3, 0.75).costs(0.1) == pytest.approx((-0.1 * math.log(0.75), -0.1 * math.log(0.25)))


def test_h_rejects_bad_options() -> None:
    with pytest.raises(GraphError, match="no phone"):
        make_h(CI, [[], [-(N + 1)]])
    with pytest.raises(GraphError, match="not a phone"):
        make_h(CI, [[], [N + 5]])
    with pytest.raises(ModelError, match="self_loop_scale"):
        make_h(CI, CI_WINDOWS, self_loop_scale=-1.0)


def test_decoding_graph_labels(lang: Path) -> None:
    table = read_symbol_table(lang / "lang" / "phones.txt")
    assert table["<eps>"] == 0 and table["aa"] == 1 and table["#0"] == N + 1
    assert [p for p, i in sorted(table.items(), key=lambda x: x[1])][1:-1] == list(PHONES48)
    hg = load_graph(lang / "lang" / "HCG.fst")
    assert isinstance(hg, kaldifst.StdConstFst)
    arcs = all_arcs(hg)
    ilabels = {a.ilabel for a in arcs}
    olabels = {a.olabel for a in arcs}
    assert ilabels - {0} == set(range(1, NUM_TIDS + 1))  # every transition id, no #0 left
    assert olabels - {0} == set(range(1, N + 1))  # phone ids only, no #0
    assert all(a.olabel == 0 for a in arcs if a.ilabel == 0)  # backoff arcs, now epsilons
    # Every state is on some complete path (so every transition id, hence every pdf, is).
    trimmed = kaldifst.StdVectorFst(hg)
    kaldifst.connect(trimmed)
    assert trimmed.num_states == hg.num_states and len(all_arcs(trimmed)) == len(arcs)


LN10 = math.log(10.0)


def lm_cost(model: ArpaModel, phones: list[str]) -> float:
    """-ln P(phones </s> | <s>) in a tropical back-off G: each word costs the cheaper of its
    bigram and the history's back-off weight plus its unigram."""
    cost, history = 0.0, BOS
    for w in [*phones, EOS]:
        backoff = -LN10 * (model.bow.get((history,), 0.0) + model.prob[(w,)])
        direct = model.prob.get((history, w))
        cost += backoff if direct is None else min(-LN10 * direct, backoff)
        history = w
    return cost


def random_path(rng: random.Random) -> tuple[list[str], list[int], float]:
    """Random phones, a transition-id path through them (1-4 frames a state), and the
    path's HMM transition cost (self-loops and forward arcs, Kaldi-scaled)."""
    loop_cost, forward_cost = PhoneHmm(3, SELF_LOOP_PROB).costs(DEFAULT_SELF_LOOP_SCALE)
    phones = [rng.choice(PHONES48) for _ in range(rng.randint(1, 15))]
    tids: list[int] = []
    cost = 0.0
    for p in phones:
        for state in range(3):
            pdf = 3 * PHONES48.index(p) + state
            frames = rng.randint(1, 4)
            tids += [enter_tid(pdf)] + [loop_tid(pdf)] * (frames - 1)
            cost += (frames - 1) * loop_cost + forward_cost
    return phones, tids, cost


def test_graph_costs_equal_the_lm_and_hmm_costs_on_random_paths(lang: Path) -> None:
    """Every random transition-id path goes through H∘C∘G, reads out its phones, and costs
    exactly -ln P_LM(phones) plus its HMM transition costs, worked out from lm.arpa."""
    hcg = load_graph(lang / "lang" / "HCG.fst")
    model = ArpaModel(lang / "lang" / "lm.arpa")
    assert model.order == 2
    rng = random.Random(7)
    for k in range(25):
        phones, tids, hmm_cost = random_path(rng)
        path = kaldifst.make_linear_acceptor(tids)
        kaldifst.arcsort(path, sort_type="olabel")
        composed = kaldifst.compose(path, hcg)
        assert composed.num_states > 0, (k, phones)
        ok, ilabels, olabels, weight = kaldifst.get_linear_symbol_sequence(kaldifst.shortest_path(composed))
        assert ok and list(ilabels) == tids
        assert list(olabels) == [PHONES48.index(p) + 1 for p in phones], k
        assert weight.value == pytest.approx(lm_cost(model, phones) + hmm_cost, abs=2e-3), (k, phones)
    # A path that leaves a phone before its last state is no path of the graph.
    _, tids, _ = random_path(rng)
    cut = kaldifst.make_linear_acceptor(tids[:-1] + [enter_tid(0)])
    kaldifst.arcsort(cut, sort_type="olabel")
    assert kaldifst.compose(cut, hcg).num_states == 0 or \
        kaldifst.shortest_path(kaldifst.compose(cut, hcg)).num_states == 0


def test_rebuild_is_identical_and_skips(lang: Path, tmp_path: Path) -> None:
    make_decoding_graph(tmp_path / "lang2", CI, lang / "text")
    for name in FILES:
        assert (tmp_path / "lang2" / name).read_bytes() == (lang / "lang" / name).read_bytes()
    mtimes = {n: (tmp_path / "lang2" / n).stat().st_mtime_ns for n in FILES}
    make_decoding_graph(tmp_path / "lang2", CI, lang / "text")
    assert {n: (tmp_path / "lang2" / n).stat().st_mtime_ns for n in FILES} == mtimes
    (tmp_path / "lang2" / "HCG.fst").write_bytes(b"junk")  # invalid: rebuilt
    make_decoding_graph(tmp_path / "lang2", CI, lang / "text")
    assert (tmp_path / "lang2" / "HCG.fst").read_bytes() == (lang / "lang" / "HCG.fst").read_bytes()
    assert sorted(p.name for p in (tmp_path / "lang2").iterdir()) == sorted(FILES)


def test_up_to_date_graph_runs_no_builder(lang: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An up-to-date lang dir costs no LM training (kaldingram), no G (kaldilm) and no
    H∘G; a removed HG.fst reruns only its own step. (Build time: bench/graph_build.py.)"""
    shutil.copytree(lang / "lang", tmp_path / "lang3")  # copy2 keeps the mtimes: still up to date
    calls: list[str] = []

    def builder(name: str):
        def run(*args, **kwargs):
            calls.append(name)
            return real[name](*args, **kwargs)
        return run

    real = {n: getattr(graph_module, n) for n in ("_train_phone_lm", "arpa_to_g", "build_graph")}
    for name in real:
        monkeypatch.setattr(graph_module, name, builder(name))
    make_decoding_graph(tmp_path / "lang3", CI, lang / "text")
    assert calls == []
    (tmp_path / "lang3" / "HCG.fst").unlink()
    make_decoding_graph(tmp_path / "lang3", CI, lang / "text")
    assert calls == ["build_graph"]
    assert (tmp_path / "lang3" / "HCG.fst").read_bytes() == (lang / "lang" / "HCG.fst").read_bytes()


def test_bad_phone_text(tmp_path: Path) -> None:
    text = tmp_path / "text"
    text.write_text("u1 sil aa sil\nu2 sil qq sil\n")
    with pytest.raises(GraphError, match=r"text:2: utterance u2: phone 'qq'"):
        make_decoding_graph(tmp_path / "lang", CI, text)
    with pytest.raises(GraphError, match="missing.txt"):
        make_decoding_graph(tmp_path / "lang", CI, tmp_path / "missing.txt")
    text.write_text("u1\nu2\n")
    with pytest.raises(GraphError, match="no utterance with phones"):
        make_decoding_graph(tmp_path / "lang", CI, text)


def test_phone_list_mismatch(lang: Path) -> None:
    with pytest.raises(GraphError, match="different phone list"):
        make_decoding_graph(lang / "lang", ContextDependency.ci(list(PHONES48)[:-1]), lang / "text")


def test_load_graph_errors(tmp_path: Path) -> None:
    with pytest.raises(GraphError, match="empty path"):
        load_graph("")
    with pytest.raises(GraphError, match="missing.fst"):
        load_graph(tmp_path / "missing.fst")
    (tmp_path / "junk.fst").write_bytes(b"not an fst at all")
    with pytest.raises(GraphError, match="junk.fst: not a readable"):
        load_graph(tmp_path / "junk.fst")


def test_non_functional_graph_is_a_graph_error() -> None:
    """Two phones sharing their input labels make H∘G non-functional: a GraphError, not a
    RuntimeError. (Transition ids name the phone, so H∘C∘G never is.)"""
    h = kaldifst.StdVectorFst()
    for _ in range(3):
        h.add_state()
    h.start = 0
    h.set_final(0, 0.0)
    for phone, state in ((1, 1), (2, 2)):  # both read pdf label 1, output phone 1 or 2
        h.add_arc(0, kaldifst.StdArc(1, phone, 0.0, state))
        h.add_arc(state, kaldifst.StdArc(0, 0, 0.0, 0))
    g = kaldifst.compile("0 0 1 1\n0 0 2 2\n0\n", acceptor=False)
    with pytest.raises(GraphError, match="not functional"):
        graph_module.determinize(graph_module.compose(h, g, "H∘G"), "H∘G")


def test_graph_is_rebuilt_when_its_settings_change(lang: Path, tmp_path: Path) -> None:
    copy = tmp_path / "lang"
    shutil.copytree(lang / "lang", copy)
    before = (copy / "HCG.fst").read_bytes()
    make_decoding_graph(copy, CI, lang / "text", self_loop_scale=1.0)
    assert (copy / "HCG.fst").read_bytes() != before
    assert "self_loop_scale: 1.0" in (copy / "HCG.yaml").read_text()


def _age(path: Path, seconds: float) -> None:
    """Set ``path``'s times ``seconds`` before now."""
    stamp = int((path.stat().st_mtime - seconds) * 1e9)
    os.utime(path, ns=(stamp, stamp))


def test_older_replacement_text_rebuilds_everything(lang: Path, tmp_path: Path) -> None:
    """Caches are keyed by content, not time: a phone text replaced by a different file with
    an OLDER time stamp retrains the LM and rebuilds G and the graph, which then equal a
    fresh build from that text."""
    copy, text = tmp_path / "lang", tmp_path / "text"
    shutil.copytree(lang / "lang", copy)
    write_phone_text(text, seed=1)
    _age(text, 3600)
    make_decoding_graph(tmp_path / "fresh", CI, text)
    _age(text, 3600)
    make_decoding_graph(copy, CI, text)
    for name in ("lm.arpa", "G.fst", "HCG.fst"):
        assert (copy / name).read_bytes() != (lang / "lang" / name).read_bytes(), name
        assert (copy / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes(), name


def test_older_replacement_lm_rebuilds_g_and_the_graph(lang: Path, tmp_path: Path) -> None:
    """An lm.arpa replaced by hand by a different, OLDER file is kept (its text did not
    change), and G and the graph are rebuilt from it."""
    copy, text = tmp_path / "lang", tmp_path / "text"
    shutil.copytree(lang / "lang", copy)
    write_phone_text(text, seed=2)
    make_decoding_graph(tmp_path / "other", CI, text)
    shutil.copyfile(tmp_path / "other" / "lm.arpa", copy / "lm.arpa")
    _age(copy / "lm.arpa", 3600)
    make_decoding_graph(copy, CI, lang / "text")
    assert (copy / "lm.arpa").read_bytes() == (tmp_path / "other" / "lm.arpa").read_bytes()
    for name in ("G.fst", "HCG.fst"):
        assert (copy / name).read_bytes() == (tmp_path / "other" / name).read_bytes(), name


def test_settings_with_an_old_transition_scale_key_still_count(lang: Path, tmp_path: Path) -> None:
    """HCG.yaml of older versions holds a transition_scale (it could never change a cost):
    it is ignored, and the graph is still up to date."""
    copy = tmp_path / "lang"
    shutil.copytree(lang / "lang", copy)
    yaml_path = copy / "HCG.yaml"
    yaml_path.write_text(yaml_path.read_text() + "transition_scale: 1.0\n")
    before = (copy / "HCG.fst").stat().st_mtime_ns
    make_decoding_graph(copy, CI, lang / "text")
    assert (copy / "HCG.fst").stat().st_mtime_ns == before
    settings = read_graph_settings(copy / "HCG.fst")
    assert settings is not None and "transition_scale" not in settings
    assert settings["self_loop_scale"] == DEFAULT_SELF_LOOP_SCALE
