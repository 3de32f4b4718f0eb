"""L, G and HCLG on a toy lexicon and LM where the best word path is known (real kaldifst,
kaldilm and kaldi-decoder), Kaldi-style self-loop addition, lattices and word times."""

from __future__ import annotations

from pathlib import Path

import kaldifst
import numpy as np
import pytest
import yaml

from asr.decode.lattice import LatticeDecoder, best_path, sweep
from asr.decode.wfst import WfstDecoder
from asr.decode.words import WordGraph, word_spans
from asr.errors import GraphError
from asr.hmm.transitions import Transitions
from asr.lang.graph import make_h, compose, determinize, _disambig_to_epsilon
from asr.lang.lang_dir import prepare_lang
from asr.lang.lexicon import Lexicon
from asr.phones.lang import Lang
from asr.phones.topology import Topology
from asr.lang.word_graph import (compose_lg, make_word_graph, phone_disambig_ids, HCLG_YAML)
from test_context import planted
from test_context import toy_tree as _toy_tree

#: Five phones of the 48-phone set (no stops, so no closures): silence, then p1..p4.
PHONES = ["sil", "aa", "iy", "m", "n"]
ID = {p: i + 1 for i, p in enumerate(PHONES)}
#: Their lang: "sil" is the silence, the optional silence and the garbage phone.
LANG = Lang(PHONES, ["sil"], "sil", Topology(3, 0.75))
#: word -> pronunciation over PHONES.
PRONS = {"ab": ["aa", "iy"], "abc": ["aa", "iy", "m"], "ba": ["iy", "aa"], "cd": ["m", "n"],
         "cee": ["m"], "sea": ["m"], "dad": ["n", "aa", "n"]}


def toy_tree():
    return _toy_tree(PHONES)
# Hand-written bigram: "sea" is far likelier than its homophone "cee" after "ab".
ARPA = """\\data\\
ngram 1=9
ngram 2=5

\\1-grams:
-1.0 <s> -0.3
-99 </s>
-1.0 ab -0.3
-1.2 abc -0.3
-1.0 ba -0.3
-1.0 cd -0.3
-1.5 cee -0.3
-1.5 sea -0.3
-1.3 dad -0.3

\\2-grams:
-0.2 <s> ab
-0.3 ab sea
-3.0 ab cee
-0.3 sea cd
-0.2 cd </s>

\\end\\
"""


def phone_ids(words: list[str]) -> list[int]:
    """The phone ids of ``words`` said with silence at both ends and none between."""
    return [ID["sil"], *(ID[p] for w in words for p in PRONS[w]), ID["sil"]]


@pytest.fixture(scope="module")
def lang(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("lang")
    (d / "user.dict").write_text("".join(f"{w.upper()} {' '.join(p)}\n" for w, p in PRONS.items()))
    (d / "lm.arpa").write_text(ARPA)
    prepare_lang(d / "lang", d / "lm.arpa", LANG, user_lexicon=d / "user.dict", sil_prob=0.5)
    return d / "lang"


@pytest.fixture(scope="module")
def graph_dir(lang: Path, tmp_path_factory) -> Path:
    return make_word_graph(lang, toy_tree(), tmp_path_factory.mktemp("graph"))


def test_lexicon_disambiguates_prefixes_and_homophones(lang: Path):
    entries = (lang / "lexicon_disambig.txt").read_text().split("\n")
    by_word = {line.split()[0]: line.split()[1:] for line in entries if line}
    assert by_word["ab"] == ["aa", "iy", "#1"]        # a prefix of "abc"
    assert {by_word["cee"][-1], by_word["sea"][-1]} == {"#1", "#2"}  # homophones
    assert by_word["abc"] == ["aa", "iy", "m"]
    assert phone_disambig_ids(lang / "phones.txt") == [6, 7, 8]  # #0, #1, #2 after 5 phones


def test_lg_is_deterministic(lang: Path):
    lg = compose_lg(kaldifst.StdVectorFst.read(str(lang / "L_disambig.fst")),
                    kaldifst.StdVectorFst.read(str(lang / "G.fst")))
    assert lg.num_states > 0
    for s in range(lg.num_states):
        labels = [arc.ilabel for arc in kaldifst.ArcIterator(lg, s)]
        assert len(labels) == len(set(labels)) and 0 not in labels, s


@pytest.mark.parametrize("seed", [0, 1])
def test_hclg_recovers_planted_words(graph_dir: Path, seed: int):
    ctx = toy_tree()
    graph = WordGraph.load(graph_dir, PHONES)
    decoder = WfstDecoder(graph.fst, Transitions(ctx))
    rng = np.random.default_rng(seed)
    sentence = ["ab", "sea", "cd"]
    scores, pdfs = planted(ctx, phone_ids(sentence), rng, ctx.num_pdfs)
    result = decoder.decode(scores)
    assert graph.symbols(result.olabels) == sentence
    np.testing.assert_array_equal(result.pdfs, pdfs)


def test_lm_breaks_the_homophone_tie(graph_dir: Path):
    """'cee' and 'sea' sound the same; after 'ab' the LM makes 'sea' 500 times likelier."""
    ctx = toy_tree()
    graph = WordGraph.load(graph_dir, PHONES)
    decoder = WfstDecoder(graph.fst, Transitions(ctx))
    scores, _ = planted(ctx, phone_ids(["ab", "cee", "cd"]), np.random.default_rng(3), ctx.num_pdfs)
    assert graph.symbols(decoder.decode(scores).olabels) == ["ab", "sea", "cd"]


def test_self_loops_added_after_determinization_match_loops_in_h(lang: Path, graph_dir: Path):
    """HCLG built Kaldi's way (self-loops added last) gives the same best paths and costs
    as H∘C∘LG built with the self-loops inside H."""
    ctx = toy_tree()
    lg = compose_lg(kaldifst.StdVectorFst.read(str(lang / "L_disambig.fst")),
                    kaldifst.StdVectorFst.read(str(lang / "G.fst")))
    clg, windows = kaldifst.compose_context(phone_disambig_ids(lang / "phones.txt"), ctx.width,
                                            ctx.central, lg)
    reference = determinize(compose(make_h(ctx, windows), clg, "HCLG"), "HCLG")
    _disambig_to_epsilon(reference, 2 * ctx.num_pdfs + 1)
    kaldi_way = WordGraph.load(graph_dir, PHONES).fst
    a, b = WfstDecoder(reference, Transitions(ctx)), WfstDecoder(kaldi_way, Transitions(ctx))
    rng = np.random.default_rng(5)
    for _ in range(8):
        scores = (0.7 * rng.standard_normal((60, ctx.num_pdfs))).astype(np.float32)
        ra, rb = a.decode(scores), b.decode(scores)
        assert ra.olabels == rb.olabels
        np.testing.assert_array_equal(ra.tids, rb.tids)
        assert ra.graph_cost + ra.acoustic_cost == pytest.approx(rb.graph_cost + rb.acoustic_cost, abs=1e-3)


def test_lattice_best_path_equals_the_viterbi_path_and_penalty_removes_words(graph_dir: Path):
    ctx = toy_tree()
    graph = WordGraph.load(graph_dir, PHONES)
    faster = WfstDecoder(graph.fst, Transitions(ctx))
    lattices = LatticeDecoder(graph.fst, Transitions(ctx))
    rng = np.random.default_rng(11)
    scores = (0.7 * rng.standard_normal((80, ctx.num_pdfs))).astype(np.float32)
    viterbi, lat = faster.decode(scores), lattices.lattice(scores)
    path = best_path(lat)
    assert path.word_ids == viterbi.olabels
    np.testing.assert_array_equal(path.tids, viterbi.tids)
    assert path.graph_cost == pytest.approx(viterbi.graph_cost, abs=1e-3)
    counts = {k: len(v) for k, v in sweep(lat, [1.0, 4.0], [0.0, 50.0]).items()}
    assert counts[(1.0, 50.0)] <= counts[(1.0, 0.0)] <= counts[(4.0, 0.0)]


def test_word_spans_follow_the_planted_boundaries(graph_dir: Path):
    ctx = toy_tree()
    graph = WordGraph.load(graph_dir, PHONES)
    decoder = WfstDecoder(graph.fst, Transitions(ctx))
    sentence = ["ab", "sea", "cd"]
    scores, _ = planted(ctx, phone_ids(sentence), np.random.default_rng(2), ctx.num_pdfs)
    result = decoder.decode(scores)
    spans = word_spans(result.runs, PHONES, "sil", graph.symbols(result.olabels), graph.lexicon)
    runs = [r for r in result.runs if PHONES[r.phone] != "sil"]
    assert [s.word for s in spans] == sentence
    assert (spans[0].start, spans[0].end) == (runs[0].start, runs[1].end)
    assert (spans[2].start, spans[2].end) == (runs[3].start, runs[4].end)


def test_graph_is_cached_and_rebuilt_when_the_lm_changes(lang: Path, graph_dir: Path, tmp_path: Path):
    """The cache is keyed by the inputs' bytes: an unchanged lang dir reuses the graph; a G
    replaced by a different file with an OLDER time stamp rebuilds it."""
    import os
    import shutil

    before = (graph_dir / "HCLG.fst").stat().st_mtime_ns
    make_word_graph(lang, toy_tree(), graph_dir)
    assert (graph_dir / "HCLG.fst").stat().st_mtime_ns == before
    settings = (graph_dir / HCLG_YAML).read_text()
    assert "hclg_states" in settings and "peak_rss_mb" in settings

    copy, graphs = tmp_path / "lang", tmp_path / "graph"
    shutil.copytree(lang, copy)
    shutil.copytree(graph_dir, graphs)
    other = tmp_path / "other.arpa"
    other.write_text(ARPA.replace("-3.0 ab cee", "-0.1 ab cee").replace("-0.3 ab sea", "-3.0 ab sea"))
    prepare_lang(tmp_path / "lang_other", other, LANG, user_lexicon=lang.parent / "user.dict")
    assert (tmp_path / "lang_other" / "G.fst").read_bytes() != (copy / "G.fst").read_bytes()
    shutil.copyfile(tmp_path / "lang_other" / "G.fst", copy / "G.fst")
    old = (graphs / "HCLG.fst").stat().st_mtime_ns - 10**10
    os.utime(copy / "G.fst", ns=(old, old))  # older than the graph built from the old G
    old_bytes = (graphs / "HCLG.fst").read_bytes()
    make_word_graph(copy, toy_tree(), graphs)
    assert (graphs / "HCLG.fst").read_bytes() != old_bytes
    ctx = toy_tree()
    scores, _ = planted(ctx, phone_ids(["ab", "cee", "cd"]), np.random.default_rng(3), ctx.num_pdfs)
    decoded = WfstDecoder(WordGraph.load(graphs, PHONES).fst, Transitions(ctx)).decode(scores)
    assert WordGraph.load(graphs, PHONES).symbols(decoded.olabels) == ["ab", "cee", "cd"]  # the new LM


def test_second_graph_reads_lg_from_the_lang_dir(lang: Path, graph_dir: Path, tmp_path: Path, caplog):
    """The first graph leaves L∘G in lang/tmp/ (keyed by L's and G's bytes); the next graph of
    the same lang reads it and is the same graph as one composed afresh."""
    import logging
    import shutil

    assert yaml.safe_load((lang / "tmp" / "LG.yaml").read_text())["inputs"].keys() == {
        "L_disambig.fst", "G.fst"}
    with caplog.at_level(logging.INFO, logger="asr.lang.word_graph"):
        make_word_graph(lang, toy_tree(), tmp_path / "again")
    assert "LG read from" in caplog.text
    fresh = tmp_path / "fresh"
    shutil.copytree(lang, fresh, ignore=shutil.ignore_patterns("tmp"))
    make_word_graph(fresh, toy_tree(), tmp_path / "fresh_graph")
    assert (tmp_path / "again" / "HCLG.fst").read_bytes() == (tmp_path / "fresh_graph" / "HCLG.fst").read_bytes()


def test_old_settings_with_a_transition_scale_are_still_up_to_date(lang: Path, graph_dir: Path,
                                                                  tmp_path: Path):
    """HCLG.yaml written when graphs recorded a (meaningless) transition_scale still loads and
    still counts as up to date."""
    import shutil

    import yaml

    graphs = tmp_path / "graph"
    shutil.copytree(graph_dir, graphs)
    settings = yaml.safe_load((graphs / HCLG_YAML).read_text())
    settings["transition_scale"] = 1.0
    (graphs / HCLG_YAML).write_text(yaml.safe_dump(settings, sort_keys=False))
    before = (graphs / "HCLG.fst").stat().st_mtime_ns
    make_word_graph(lang, toy_tree(), graphs)
    assert (graphs / "HCLG.fst").stat().st_mtime_ns == before
    loaded = WordGraph.load(graphs, PHONES)
    assert loaded.fst.num_states > 0 and "transition_scale" not in loaded.settings


# ---- <unk>: a word of G and L, pronounced with the garbage phone, left out of transcripts

#: ARPA with KenLM / SRILM's <unk>: after "ab" it is far likelier than "cd" straight away.
UNK_ARPA = """\\data\\
ngram 1=5
ngram 2=4

\\1-grams:
-1.0 <s> -0.3
-99 </s>
-0.8 <unk> -0.3
-1.0 ab -0.3
-1.0 cd -0.3

\\2-grams:
-0.2 <s> ab
-0.1 ab <unk>
-0.1 <unk> cd
-0.2 cd </s>

\\end\\
"""


@pytest.fixture(scope="module")
def unk_graph(lang: Path, tmp_path_factory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("unk")
    (d / "lm.arpa").write_text(UNK_ARPA)
    record = prepare_lang(d / "lang", d / "lm.arpa", LANG, user_lexicon=lang.parent / "user.dict")
    return make_word_graph(d / "lang", toy_tree(), d / "graph"), record


def test_unk_is_pronounced_with_the_garbage_phone(unk_graph):
    """<unk> never reaches CMUdict or flite (flite would say 'ax ng k', phones outside this
    set): it is the garbage phone, with a disambiguation symbol against optional silence."""
    from asr.phones.timit import GARBAGE_PHONE

    graph_dir, record = unk_graph
    lang = graph_dir.parent / "lang"
    assert GARBAGE_PHONE == "sil" and record["garbage_phone"] == "sil"
    assert record["garbage_words"] == ["<unk>"]
    assert Lexicon.load(lang / "lexicon.txt", PHONES).prons["<unk>"] == [("sil",)]
    assert "<unk> sil #1\n" in (lang / "lexicon_disambig.txt").read_text()
    assert not (lang / "flite_phones.txt").exists()  # nothing was sent to flite
    assert "<unk>" in (lang / "words.txt").read_text().split()


def test_unk_is_decoded_and_dropped_from_the_text_unless_kept(unk_graph):
    """sil ab sil cd sil: the LM makes '<unk>' (the middle silence) likelier than optional
    silence. HCLG keeps <unk>; the words of the transcript drop it unless keep_unk."""
    from asr.decode.transcribe import Transcript, format_transcript
    from asr.decode.words import word_tokens

    graph_dir, _ = unk_graph
    ctx = toy_tree()
    graph = WordGraph.load(graph_dir, PHONES)
    planted_phones = [ID["sil"], ID["aa"], ID["iy"], ID["sil"], ID["m"], ID["n"], ID["sil"]]
    scores, _ = planted(ctx, planted_phones, np.random.default_rng(0), ctx.num_pdfs)
    path = WfstDecoder(graph.fst, Transitions(ctx)).decode(scores)
    assert graph.symbols(path.olabels, keep_unk=True) == ["ab", "<unk>", "cd"]
    assert graph.symbols(path.olabels) == ["ab", "cd"]
    kept = word_tokens(graph, PHONES, "sil", path.olabels, path.runs, [0.9, 0.5, 0.8], keep_unk=True)
    dropped = word_tokens(graph, PHONES, "sil", path.olabels, path.runs, [0.9, 0.5, 0.8])
    assert [(w, c) for _, _, w, c in kept] == [("ab", 0.9), ("<unk>", 0.5), ("cd", 0.8)]
    assert dropped == [kept[0], kept[2]]
    sil_runs = [r for r in path.runs if PHONES[r.phone] == "sil"]
    assert kept[1][:2] == (sil_runs[1].start, sil_runs[1].end)  # <unk> is the middle silence
    assert word_spans(path.runs, PHONES, "sil", graph.symbols(path.olabels), graph.lexicon) == \
        word_spans(path.runs, PHONES, "sil", graph.symbols(path.olabels, keep_unk=True), graph.lexicon)

    def text(tokens):
        return format_transcript(Transcript("a.wav", "word", [t for _, _, t, _ in tokens],
                                            [(a / 100, b / 100, t, c) for a, b, t, c in tokens]), "text")

    assert text(dropped) == "a.wav: ab cd"
    assert text(kept) == "a.wav: ab <unk> cd"


@pytest.mark.parametrize("text, what", [("", "empty"), ("\\data\\\nngram 1=0\n\\end\\\n", "no n-gram"),
                                        ("hello\n", "not an ARPA")])
def test_bad_arpa_is_a_named_error(tmp_path: Path, text: str, what: str):
    (tmp_path / "bad.arpa").write_text(text)
    with pytest.raises(GraphError, match="bad.arpa"):
        prepare_lang(tmp_path / "lang", tmp_path / "bad.arpa", LANG)


def test_nbest_and_confidences(graph_dir: Path):
    """A clearly spoken sentence is sure of its words; 'cee' / 'sea' after 'ab' is an LM call
    the n-best list shares between the homophones in proportion to the LM."""
    from asr.decode.lattice import nbest_words, word_confidences

    ctx = toy_tree()
    graph = WordGraph.load(graph_dir, PHONES)
    lattices = LatticeDecoder(graph.fst, Transitions(ctx))
    scores, _ = planted(ctx, phone_ids(["ab", "sea", "cd"]), np.random.default_rng(4), ctx.num_pdfs)
    lat = lattices.lattice(scores)
    nbest = nbest_words(lat)
    best = best_path(lat).word_ids
    assert nbest[0][0] == best and len({tuple(w) for w, _ in nbest}) == len(nbest) > 1
    conf = word_confidences(best, nbest)
    assert graph.symbols(best) == ["ab", "sea", "cd"]
    # P(cee | ab) / P(sea | ab) = 10^-2.7 in the LM: 'sea' keeps nearly all the mass
    assert conf[0] > 0.95 and conf[2] > 0.95 and 0.95 < conf[1] <= 1.0, conf
    assert word_confidences(best, [(best, 3.0)]) == [1.0, 1.0, 1.0]


def test_parallel_jobs_give_the_same_paths_and_name_failures(graph_dir: Path):
    """Two spawned workers (each loading the graph once) give what one process gives; an
    utterance with NaN scores comes back as its error, the others go on."""
    from asr.decode.jobs import SearchOptions, faster_utt, run_jobs, worker_args
    from asr.errors import ModelError

    ctx = toy_tree()
    rng = np.random.default_rng(9)
    items = [(f"u{i}", (0.7 * rng.standard_normal((50, ctx.num_pdfs))).astype(np.float32)) for i in range(6)]
    items[3][1][10, 2] = np.nan
    init = worker_args(str(graph_dir / "HCLG.fst"), ctx, SearchOptions(), 1.0)
    one, two = run_jobs(faster_utt, items, 1, init), run_jobs(faster_utt, items, 2, init)
    assert isinstance(one["u3"], ModelError) and isinstance(two["u3"], ModelError)
    assert "u3" in str(two["u3"]) and "NaN" in str(two["u3"])
    for u in ("u0", "u1", "u2", "u4", "u5"):
        assert one[u].word_ids == two[u].word_ids
        np.testing.assert_array_equal(one[u].tids, two[u].tids)


def test_word_penalty_in_the_graph_equals_the_lattice_penalty(graph_dir: Path):
    """FasterDecoder over HCLG with the penalty on its word arcs finds the path that the
    lattice's best path finds at that penalty (Kaldi's lattice-add-penalty), with the same
    costs; and a large penalty changes the words (fewer of them), so the test can fail.
    Each penalised graph is made once and kept beside the graph, until dropped."""
    from asr.decode.jobs import drop_penalised_graphs, penalised_graph
    from asr.lang.graph import load_graph
    from asr.lang.word_graph import with_word_penalty

    drop_penalised_graphs(graph_dir)  # another test's
    ctx = toy_tree()
    transitions = Transitions(ctx)
    plain = WordGraph.load(graph_dir, PHONES)
    lattices = LatticeDecoder(plain.fst, transitions, beam=30.0, lattice_beam=30.0)
    rng = np.random.default_rng(3)
    counts = {}
    for penalty in (-4.0, -1.0, 0.0, 2.0, 6.0):
        path, on_graph = penalised_graph(str(graph_dir / "HCLG.fst"), penalty)
        assert on_graph and (path == str(graph_dir / "HCLG.fst")) == (penalty == 0.0)
        fst = load_graph(path)
        assert fst.num_states == plain.fst.num_states
        decoder = WfstDecoder(fst, transitions, beam=30.0, max_active=100000)
        counts[penalty] = 0
        for k in range(8):
            scores = (0.8 * rng.standard_normal((40, ctx.num_pdfs))).astype(np.float32)
            got = decoder.decode(scores)
            want = best_path(lattices.lattice(scores), 1.0, penalty)
            assert got.olabels == want.word_ids, (penalty, k)
            assert got.graph_cost - penalty * len(got.olabels) == pytest.approx(want.graph_cost, abs=1e-3)
            assert got.acoustic_cost == pytest.approx(want.acoustic_cost, abs=1e-3)
            counts[penalty] += len(got.olabels)
    assert counts[-4.0] > counts[0.0] > counts[6.0], counts
    kept = sorted(p.name for p in graph_dir.glob("HCLG.fst.wp*"))
    assert [n.split(".")[2] for n in kept] == ["wp-1", "wp-4", "wp2", "wp6"], kept
    before = (graph_dir / kept[0]).stat().st_mtime_ns
    assert penalised_graph(str(graph_dir / "HCLG.fst"), -1.0)[0] == str(graph_dir / kept[0])
    assert (graph_dir / kept[0]).stat().st_mtime_ns == before  # read, not made again
    drop_penalised_graphs(graph_dir, keep=2.0)
    assert [p.name.split(".")[2] for p in graph_dir.glob("HCLG.fst.wp*")] == ["wp2"]
    drop_penalised_graphs(graph_dir)
    assert not list(graph_dir.glob("HCLG.fst.wp*"))
    assert with_word_penalty(plain.fst, 0.0, 10) is plain.fst
    with pytest.raises(GraphError, match="output label above 2"):
        with_word_penalty(plain.fst, 1.0, 2)


def test_a_training_word_the_lm_lacks_is_in_l_but_out_of_the_vocabulary(lang: Path, tmp_path):
    """A training word missing from a given LM gets a pronunciation (words.txt, L) but no
    unigram in G: the word graph records it, and the OOV rate counts it as out of vocabulary."""
    (tmp_path / "text").write_text("u1 ab dad\nu2 cd naa\n")
    (tmp_path / "user.dict").write_text((lang.parent / "user.dict").read_text() + "NAA n aa\n")
    prepare_lang(tmp_path / "lang", lang / "lm.arpa", LANG, user_lexicon=tmp_path / "user.dict",
                 train_text=tmp_path / "text")
    assert "naa" in (tmp_path / "lang/words.txt").read_text().split()
    make_word_graph(tmp_path / "lang", toy_tree(), tmp_path / "graph")
    settings = yaml.safe_load((tmp_path / "graph" / HCLG_YAML).read_text())
    assert settings["words_without_lm"] == ["naa"] and settings["vocabulary"] == 7
