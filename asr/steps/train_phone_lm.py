"""Stage 9, first half: train the recurrent phone-sequence model on the training set's
phone transcripts (early stopping on dev's), and report its perplexity."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import yaml

from asr.corpus.datadir import read_datadir
from asr.errors import ModelError
from asr.io import atomic_write_text
from asr.lang.symbols import read_phone_table
from asr.nn.phone_lm import PhoneLmConfig, encode, load_phone_lm, perplexity, train_phone_lm

log = logging.getLogger(__name__)

#: Perplexities of the trained model, per data set, beside it.
PPL_FILE = "phone_lm_ppl.yaml"


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


def expanded_sentences(text: Path, lexicon: Path, phones: list[str]) -> list[np.ndarray]:
    """The phone sequences of the sentences of a word text (one sentence a line), each word
    read with its first pronunciation in ``lexicon`` and the sentence framed by ``sil`` (as
    the corpus's phone transcripts are) when that is a phone. A sentence with a word the
    lexicon lacks is left out (counted in the log)."""
    from asr.lang.lexicon import read_cmudict_format

    prons = read_cmudict_format(lexicon, phones).prons
    edge = ["sil"] if "sil" in phones else []
    out, skipped = [], 0
    with open(text, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            words = line.split()
            if not words:
                continue
            if any(w not in prons for w in words):
                skipped += 1
                continue
            seq = edge + [p for w in words for p in prons[w][0]] + edge
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


def train_phone_lm_stage(train_dir: Path, dev_dir: Path, out_dir: Path, phones_txt: Path,
                         conf: Path | None, device: torch.device, eval_dirs: tuple[Path, ...] = (),
                         extra_text: Path | None = None, lexicon: Path | None = None) -> dict:
    """Train the phone LM of ``out_dir`` (resuming or finding it finished), then write its
    perplexity on dev and each of ``eval_dirs`` to ``phone_lm_ppl.yaml``; return that.
    ``extra_text`` (word sentences) expanded through ``lexicon`` adds training sequences."""
    from asr.errors import GraphError

    if (extra_text is None) != (lexicon is None):
        raise ModelError("an extra text and a lexicon go together (the text is expanded through it)")
    try:
        phones = read_phone_table(phones_txt)
    except GraphError as exc:
        raise ModelError(str(exc)) from None
    extra = {"extra_text": str(extra_text), "lexicon": str(lexicon)} if extra_text else {}
    cfg = read_phone_lm_conf(conf, phones, **extra)
    train = list(phone_sentences(train_dir, phones).values())
    if cfg.extra_text:
        train += expanded_sentences(Path(cfg.extra_text), Path(cfg.lexicon), phones)
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
