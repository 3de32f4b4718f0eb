"""Phone/word n-gram training (kaldingram), symbol tables, ARPA → G (kaldilm)."""

from __future__ import annotations

from pathlib import Path

import kaldifst
import pytest

from asr.errors import GraphError
from asr.symbols import read_symbol_table, write_symbol_table
from asr.lang.ngram import (arpa_to_g, arpa_vocabulary, read_arpa_counts,
                            train_ngram)

TEXT = "a b c a\na b b\nc a b\n"


def parse_arpa(path: Path) -> dict[tuple[str, ...], tuple[float, float]]:
    """{ngram: (log10 prob, log10 backoff or 0)} from an ARPA file."""
    out: dict[tuple[str, ...], tuple[float, float]] = {}
    order = 0
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.endswith("-grams:"):
            order = int(line[1])
            continue
        fields = line.split()
        if order and len(fields) >= order + 1 and not line.startswith("\\"):
            words = tuple(fields[1:order + 1])
            bow = float(fields[order + 1]) if len(fields) > order + 1 else 0.0
            out[words] = (float(fields[0]), bow)
    return out


@pytest.fixture(scope="module")
def bigram(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("ngram")
    (d / "text").write_text(TEXT)
    train_ngram(d / "text", d / "lm.arpa", 2)
    return d / "lm.arpa"


def test_bigram_counts_and_probabilities(bigram: Path) -> None:
    # 3 tokens + <s> + </s>; 8 distinct bigrams (with <s>/</s>), figures from a real run.
    assert read_arpa_counts(bigram) == {1: 5, 2: 8}
    assert arpa_vocabulary(bigram) == {"a", "b", "c"}
    lm = parse_arpa(bigram)
    assert lm[("a", "b")][0] == pytest.approx(-0.1870866, abs=1e-6)
    assert lm[("a",)] == pytest.approx((-0.6020600, -0.3979400), abs=1e-6)
    # seen "a b" beats unseen "a c" (backoff(a) + P(c)).
    unseen_a_c = lm[("a",)][1] + lm[("c",)][0]
    assert ("a", "c") not in lm
    assert lm[("a", "b")][0] > unseen_a_c + 0.5


def test_order_is_passed(tmp_path: Path) -> None:
    (tmp_path / "text").write_text(TEXT)
    train_ngram(tmp_path / "text", tmp_path / "lm3.arpa", 3)
    assert sorted(read_arpa_counts(tmp_path / "lm3.arpa")) == [1, 2, 3]
    train_ngram(tmp_path / "text", tmp_path / "lm1.arpa", 1)
    assert read_arpa_counts(tmp_path / "lm1.arpa") == {1: 4}  # a unigram LM has no <s>


@pytest.mark.parametrize("content", [None, "", "\n  \n\n"])
def test_bad_training_text(tmp_path: Path, content: str | None) -> None:
    text = tmp_path / "text"
    if content is not None:
        text.write_text(content)
    with pytest.raises(GraphError, match=str(text)):
        train_ngram(text, tmp_path / "lm.arpa", 2)
    assert not (tmp_path / "lm.arpa").exists()


def test_reserved_symbol_in_text(tmp_path: Path) -> None:
    (tmp_path / "text").write_text("a b\na #0 b\n")
    with pytest.raises(GraphError, match=r"text:2: reserved symbol '#0'"):
        train_ngram(tmp_path / "text", tmp_path / "lm.arpa", 2)


def test_bad_order(tmp_path: Path) -> None:
    (tmp_path / "text").write_text(TEXT)
    with pytest.raises(GraphError, match="order"):
        train_ngram(tmp_path / "text", tmp_path / "lm.arpa", 7)


def test_symbol_table_round_trip(tmp_path: Path) -> None:
    write_symbol_table(["a", "b", "c"], tmp_path / "syms.txt")
    assert (tmp_path / "syms.txt").read_text() == "<eps>\t0\na\t1\nb\t2\nc\t3\n#0\t4\n"
    assert read_symbol_table(tmp_path / "syms.txt") == {"<eps>": 0, "a": 1, "b": 2, "c": 3,
                                                        "#0": 4}
    for bad in (["a", "a"], ["#0"], ["<s>"], [], ["a b"]):
        with pytest.raises(GraphError, match="syms2.txt"):
            write_symbol_table(bad, tmp_path / "syms2.txt")
    (tmp_path / "bad.txt").write_text("<eps> 0\na x\n")
    with pytest.raises(GraphError, match=r"bad.txt:2"):
        read_symbol_table(tmp_path / "bad.txt")


def test_arpa_to_g(bigram: Path, tmp_path: Path) -> None:
    write_symbol_table(["a", "b", "c"], tmp_path / "syms.txt")
    arpa_to_g(bigram, tmp_path / "syms.txt", tmp_path / "G.fst")
    g = kaldifst.StdVectorFst.read(str(tmp_path / "G.fst"))
    # states: <s>, backoff, histories a, b, c (</s> has no state).
    assert g.num_states == 5
    arcs = [a for s in range(g.num_states) for a in kaldifst.ArcIterator(g, s)]
    backoff = [a for a in arcs if a.ilabel == 4]
    assert len(backoff) == 4 and all(a.olabel == 0 for a in backoff)  # #0:<eps>
    words = [a for a in arcs if a.ilabel != 4]
    assert len(words) == 3 + 6  # unigrams + bigrams without <s>/</s> ends
    assert all(a.ilabel == a.olabel and 1 <= a.ilabel <= 3 for a in words)


def test_arpa_to_g_rejects_bad_input(bigram: Path, tmp_path: Path) -> None:
    syms = tmp_path / "syms.txt"
    write_symbol_table(["a", "b", "c"], syms)
    header_only = tmp_path / "header.arpa"
    header_only.write_text("\\data\\\nngram 1=0\n\n\\end\\\n")
    empty = tmp_path / "empty.arpa"
    empty.write_text("")
    for arpa in (header_only, empty, tmp_path / "missing.arpa"):
        with pytest.raises(GraphError, match=str(arpa)):
            arpa_to_g(arpa, syms, tmp_path / "G.fst")
    no_disambig = tmp_path / "nod.txt"
    no_disambig.write_text("<eps> 0\na 1\nb 2\nc 3\n")
    with pytest.raises(GraphError, match="nod.txt: symbol table has no #0"):
        arpa_to_g(bigram, no_disambig, tmp_path / "G.fst")
    small = tmp_path / "small.txt"
    write_symbol_table(["a", "b"], small)
    with pytest.raises(GraphError, match=r"not in .*small.txt.*'c'"):
        arpa_to_g(bigram, small, tmp_path / "G.fst")
    assert not (tmp_path / "G.fst").exists()


def test_kaldilm_abort_becomes_graph_error(tmp_path: Path) -> None:
    """A file that passes the header checks but makes kaldilm abort (SIGABRT)."""
    syms = tmp_path / "syms.txt"
    write_symbol_table(["a", "b", "c"], syms)
    arpa = tmp_path / "bad.arpa"
    arpa.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\nxyz\ta\nfoo\tb\n\n\\end\\\n")
    with pytest.raises(GraphError, match=r"bad.arpa.*signal 6(.|\n)*invalid n-gram logprob"):
        arpa_to_g(arpa, syms, tmp_path / "G.fst")
    assert not (tmp_path / "G.fst").exists()
