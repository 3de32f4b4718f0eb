"""The word lang dir (Kaldi's ``data/lang_test``): symbol tables, lexicon, L and G.

    phones.txt           <eps>, the 48 phones, #0 … #K
    words.txt            <eps>, the LM's words, #0
    lexicon.txt          word p1 p2 … (every LM word has at least one pronunciation)
    lexicon_disambig.txt the same with #1 … on prefixes and homophones
    L_disambig.fst       L with optional silence and the #0 loop
    lm.arpa, G.fst       the word n-gram (trained here, :mod:`asr.lang.word_lm`, or the user's)
    lang.yaml            what the dir was built from (rebuilt when that changes)

The vocabulary is the LM's: every unigram of the ARPA file but ``<s>`` and
``</s>``. Pronunciations come from the user's lexicon, then CMUdict, then
flite's letter-to-sound rules (:func:`asr.lang.lexicon.build_lexicon`),
except for the LM's garbage words (``<unk>``, ``<SPOKEN_NOISE>``): they are
pronounced with the lang's garbage phone (``garbage_phone`` in lang.yaml,
:data:`asr.lang.phones.GARBAGE_PHONE`) and keep the LM's probability in G.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Sequence

import yaml

from asr.decode.bundle import file_sha256
from asr.errors import GraphError
from asr.io import atomic_path, atomic_write_text
from asr.lang.graph import write_fst
from asr.lang.lexicon import build_lexicon, make_lexicon_fst, write_lang_tables
from asr.lang.ngram import arpa_to_g, arpa_vocabulary
from asr.lang.phones import GARBAGE_PHONE
from asr.lang.symbols import is_garbage_word
from asr.lang.word_graph import G_FST, L_FST, LEXICON_TXT, PHONES_TXT, WORDS_TXT

logger = logging.getLogger(__name__)

LM_ARPA, LANG_YAML, PRON_CACHE = "lm.arpa", "lang.yaml", "flite_prons.txt"
#: Kaldi's default probability of optional silence between words.
DEFAULT_SIL_PROB = 0.5


def _lang_settings(arpa: Path, phones: Sequence[str], source: str, user_lexicon: Path | None,
                   sil_prob: float, garbage_phone: str) -> dict:
    return {"lm_sha256": file_sha256(arpa), "phones": list(phones), "lexicon_source": source,
            "user_lexicon_sha256": file_sha256(user_lexicon) if user_lexicon else None,
            "sil_prob": float(sil_prob), "garbage_phone": garbage_phone}


def _up_to_date(lang_dir: Path, settings: dict) -> bool:
    try:
        old = yaml.safe_load((lang_dir / LANG_YAML).read_text())
    except (OSError, yaml.YAMLError):
        return False
    files = (PHONES_TXT, WORDS_TXT, LEXICON_TXT, L_FST, G_FST)
    return (isinstance(old, dict) and {k: old.get(k) for k in settings} == settings
            and all((lang_dir / f).is_file() for f in files))


def prepare_lang(lang_dir: Path, arpa: Path, phones: Sequence[str], source: str = "cmudict",
                 user_lexicon: Path | None = None, sil_prob: float = DEFAULT_SIL_PROB,
                 garbage_phone: str = GARBAGE_PHONE) -> dict:
    """Write the word lang dir for the LM ``arpa``; return what lang.yaml records.

    Args:
        lang_dir: output directory (``arpa`` is copied in as lm.arpa unless it is there).
        arpa: the word n-gram (validated first: a bad file is a GraphError, not an abort).
        phones: the acoustic model's phone list.
        source: "cmudict" or "flite" (where pronunciations come from after the user's lexicon).
        user_lexicon: a CMUdict-format file whose pronunciations come first.
        sil_prob: probability of optional silence after each word (0: none).
        garbage_phone: the pronunciation of the LM's garbage words (``<unk>`` …).

    Skipped when lang.yaml records the same inputs.
    """
    lang_dir, arpa = Path(lang_dir), Path(arpa)
    if not 0.0 <= sil_prob < 1.0:
        raise GraphError(f"silence probability must be in [0, 1), got {sil_prob}")
    vocab = sorted(arpa_vocabulary(arpa))  # GraphError on a bad ARPA file
    settings = _lang_settings(arpa, phones, source, user_lexicon, sil_prob, garbage_phone)
    if _up_to_date(lang_dir, settings):
        logger.info("%s is up to date", lang_dir)
        return yaml.safe_load((lang_dir / LANG_YAML).read_text())
    lang_dir.mkdir(parents=True, exist_ok=True)
    if arpa.resolve() != (lang_dir / LM_ARPA).resolve():
        with atomic_path(lang_dir / LM_ARPA) as tmp:
            shutil.copyfile(arpa, tmp)
    lexicon = build_lexicon(vocab, phones, source=source, user_lexicon=user_lexicon,
                            cache_path=lang_dir / PRON_CACHE, garbage_phone=garbage_phone)
    phone_ids, word_ids, num_disambig = write_lang_tables(lexicon, phones, lang_dir)
    write_fst(make_lexicon_fst(lexicon, phone_ids, word_ids, sil_prob=sil_prob), lang_dir / L_FST)
    arpa_to_g(lang_dir / LM_ARPA, lang_dir / WORDS_TXT, lang_dir / G_FST)
    record = {**settings, "vocabulary": len(vocab), "pronunciations": lexicon.num_prons,
              "garbage_words": [w for w in vocab if is_garbage_word(w)],
              "disambig_symbols": num_disambig}  # #0 .. #(num_disambig - 1)
    atomic_write_text(lang_dir / LANG_YAML, yaml.safe_dump(record, sort_keys=False))
    logger.info("lang %s: %d words, %d pronunciations, disambiguation symbols #0..#%d", lang_dir,
                len(vocab), lexicon.num_prons, num_disambig - 1)
    return record
