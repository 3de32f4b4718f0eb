"""Stage 9, first half: train the recurrent phone-sequence model on the training set's
phone transcripts (early stopping on dev's), and report its perplexity."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import torch
import yaml

from asr.corpus.datadir import read_datadir
from asr.errors import DataError, ModelError
from asr.io import atomic_write_text
from asr.phones.lang import Lang
from asr.nn.phone_lm import PhoneLmConfig, encode, load_phone_lm, perplexity, train_phone_lm

log = logging.getLogger(__name__)

#: Perplexities of the trained model, per data set, beside it.
PPL_FILE = "phone_lm_ppl.yaml"
#: An ARPAbet symbol as CMUdict writes it: upper-case, with or without a stress digit.
_ARPABET = re.compile(r"[A-Z]+[012]?")


def phone_sentences(data_dir: Path, phones: list[str]) -> dict[str, np.ndarray]:
    """{utt: tokens} of every utterance of ``data_dir`` with phones (DataError naming
    the utterance for a phone not in ``phones``)."""
    dd = read_datadir(data_dir, require_phones=True)
    out = {}
    for utt in dd.utts:
        seq = dd.phone_text(utt)
        if seq:
            out[utt] = encode(phones, seq, f"{data_dir}: utterance {utt}")
    return out


def lexicon_is_cmudict(path: Path, phones: list[str]) -> bool:
    """Whether the lexicon at ``path`` is in CMUdict format rather than a lang dir's
    ``lexicon.txt``: it has ``;;;`` comment lines or an upper-case ARPAbet symbol (``AA1``,
    ``B``) that is not one of ``phones``. LexiconError naming the file when it cannot be read."""
    from asr.lang.lexicon import LexiconError

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LexiconError(f"{path}: cannot read the lexicon ({exc})") from None
    known = set(phones)
    for line in text.splitlines():
        if line.lstrip().startswith(";;;"):
            return True
        if any(_ARPABET.fullmatch(p) and p not in known for p in line.split()[1:]):
            return True
    return False


def first_pronunciations(lexicon: Path, phones: list[str]) -> dict[str, tuple[str, ...]]:
    """{word: its first pronunciation} of a lexicon in either format: a lang dir's
    ``lexicon.txt`` (``word p1 p2 …`` over ``phones``, a word's lines in order, words as
    written: :meth:`asr.lang.lexicon.Lexicon.load`) or CMUdict format (ARPAbet with or without
    stress digits, ``WORD(2)`` variants, ``;;;`` comments, words lower-cased:
    :func:`asr.lang.lexicon.read_cmudict_format`), told apart by :func:`lexicon_is_cmudict`.
    LexiconError naming file:line on a phone not in ``phones`` or a malformed line."""
    from asr.lang.lexicon import Lexicon, read_cmudict_format

    if lexicon_is_cmudict(lexicon, phones):
        log.info("%s: read as a CMUdict-format lexicon", lexicon)
        lex = read_cmudict_format(lexicon, phones)
    else:
        lex = Lexicon.load(lexicon, phones)
    return {w: p[0] for w, p in lex.prons.items()}


def _text_lines(text: Path) -> list[str]:
    """The lines of a UTF-8 word text; DataError naming the file when it cannot be read."""
    try:
        return Path(text).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"{text}: cannot read the word text ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise DataError(f"{text}: the word text is not UTF-8") from None


def expanded_sentences(text: Path, lexicon: Path, phones: list[str], silence: str = "") -> list[np.ndarray]:
    """The phone sequences of the sentences of a word text (one sentence a line), each word
    read with its first pronunciation in ``lexicon`` (:func:`first_pronunciations`; a word
    is looked up as written, then lower-cased) and the sentence framed by ``silence`` (the
    lang's optional silence, as the corpus's phone transcripts are; "" for no frame). A
    sentence with a word the lexicon lacks is left out (counted in the log)."""
    prons = first_pronunciations(lexicon, phones)
    edge = [silence] if silence else []
    out, skipped = [], 0
    for lineno, line in enumerate(_text_lines(text), 1):
        words = line.split()
        if not words:
            continue
        found = [prons.get(w) or prons.get(w.lower()) for w in words]
        if not all(found):
            skipped += 1
            continue
        seq = edge + [p for pron in found for p in pron] + edge
        out.append(encode(phones, seq, f"{text}:{lineno}"))
    log.info("%s: %d sentences expanded through %s (%d with a word it lacks left out)", text, len(out),
             lexicon, skipped)
    return out


def read_phone_lm_conf(path: Path | None, phones: list[str], **overrides) -> PhoneLmConfig:
    """The settings of a YAML file (PhoneLmConfig fields but ``phones``; none: the defaults)
    for ``phones``, with ``overrides`` (the command line's); ModelError naming the file on a bad one."""
    fields = {}
    if path is not None:
        try:
            fields = yaml.safe_load(Path(path).read_text()) or {}
            if not isinstance(fields, dict) or "phones" in fields:
                raise ValueError("expected a mapping of phone LM settings (phones come from --phones)")
        except (OSError, yaml.YAMLError, ValueError) as exc:
            raise ModelError(f"{path}: bad phone LM config ({exc})") from None
    try:
        return PhoneLmConfig(phones=tuple(phones), **{**fields, **overrides})
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{path or 'phone LM settings'}: bad phone LM config ({exc})") from None


def train_phone_lm_stage(train_dir: Path, dev_dir: Path, out_dir: Path, lang_dir: Path,
                         conf: Path | None, device: torch.device, eval_dirs: tuple[Path, ...] = (),
                         extra_text: Path | None = None, lexicon: Path | None = None) -> dict:
    """Train the phone LM of ``out_dir`` (resuming or finding it finished), then write its
    perplexity on dev and each of ``eval_dirs`` to ``phone_lm_ppl.yaml``; return that.
    ``lang_dir``: the acoustic models' lang dir (its phones; its optional silence frames
    the sentences of ``extra_text``, word sentences expanded through ``lexicon``, which add
    training sequences)."""
    if (extra_text is None) != (lexicon is None):
        raise ModelError("an extra text and a lexicon go together (the text is expanded through it)")
    try:
        lang = Lang.load(lang_dir)
    except DataError as exc:
        raise ModelError(str(exc)) from None
    phones = list(lang.phones)
    extra = {"extra_text": str(extra_text), "lexicon": str(lexicon)} if extra_text else {}
    cfg = read_phone_lm_conf(conf, phones, **extra)
    train = list(phone_sentences(train_dir, phones).values())
    if cfg.extra_text:
        train += expanded_sentences(Path(cfg.extra_text), Path(cfg.lexicon), phones, lang.optional_silence)
    evals = {d: list(phone_sentences(d, phones).values()) for d in (dev_dir, *eval_dirs)}
    dev = evals[dev_dir]
    log.info("phone LM: %d training utterances (%d phones), %d dev", len(train), sum(map(len, train)), len(dev))
    train_phone_lm(out_dir, train, dev, cfg, device)
    model = load_phone_lm(out_dir, device, phones)
    report = {}
    for d, sents in evals.items():
        report[str(d)] = {"utterances": len(sents), "tokens": sum(len(s) + 1 for s in sents),
                          "ppl": round(perplexity(model, sents, device), 3)}
        log.info("phone LM perplexity on %s: %.3f", d, report[str(d)]["ppl"])
    atomic_write_text(out_dir / PPL_FILE, yaml.safe_dump(report, sort_keys=False))
    return report
