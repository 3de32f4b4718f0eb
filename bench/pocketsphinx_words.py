"""The off-the-shelf peer for word recognition: pocketsphinx 5 with an n-gram LM.

By default the en-us acoustic model, pocketsphinx's own 72k-word trigram
(``en-us.lm.bin``) and ``cmudict-en-us.dict``; or any ARPA LM (pocketsphinx
reads ARPA text directly) with a dictionary for its words, which
:func:`pocketsphinx_dict` writes: CMU pronunciations from pocketsphinx's own
dictionary, flite's letter-to-sound for the rest.

Import it from a bench script::

    sys.path.insert(0, str(Path(__file__).parent))
    from pocketsphinx_words import word_decoder, decode_words

or run it on a data dir (prints WER against ``text`` and the real-time factor)::

    python bench/pocketsphinx_words.py data/test [--lm lm.arpa --dict words.dict] [--report r.txt]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Iterable, NamedTuple, Optional, Sequence

import numpy as np

_BENCH = Path(__file__).resolve().parent
for _p in (_BENCH, _BENCH.parent):  # pocketsphinx_peer beside us; asr when run as a script
    if str(_p) not in sys.path:
        sys.path.append(str(_p))

from pocketsphinx_peer import _CMU_PHONES, _to_int16  # noqa: E402  (one resampler / int16 path)

log = logging.getLogger(__name__)

#: pocketsphinx's en-us phone set for words (the CMU phones without SIL).
PS_PHONES = frozenset(p for p in _CMU_PHONES if p != "SIL")
#: flite phones whose CMU symbol differs from their upper-case name.
FLITE_TO_CMU = {"ax": "AH"}
#: Words per flite call when looking up pronunciations (one command-line argument).
FLITE_BATCH = 200
#: A pronunciation variant suffix, ``word(2)``.
_VARIANT = re.compile(r"\(\d+\)$")


class DictSources(NamedTuple):
    """How many words of a written dictionary came from where."""

    cmudict: int
    flite: int
    skipped: int


def read_cmudict(path: Path) -> dict[str, list[list[str]]]:
    """A pocketsphinx dictionary: word -> its pronunciations in file order (variants ``w(2)`` merged).

    Raises:
        ValueError: a line without phones (naming file and line).
    """
    prons: dict[str, list[list[str]]] = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ValueError(f"{path}:{lineno}: dictionary entry {fields[0]!r} has no phones")
        prons.setdefault(_VARIANT.sub("", fields[0]), []).append(fields[1:])
    return prons


def flite_to_cmu(phones: Sequence[str]) -> Optional[list[str]]:
    """flite's lower-case ARPAbet -> pocketsphinx phones; None if a symbol has no CMU phone."""
    out = []
    for p in phones:
        cmu = FLITE_TO_CMU.get(p, p.upper())
        if cmu not in PS_PHONES:
            return None
        out.append(cmu)
    return out


def _flite_prons(words: Sequence[str]) -> dict[str, list[str]]:
    """flite's pronunciation (CMU phones) of each word; words flite says as nothing or with
    a non-CMU symbol are left out with a warning."""
    from asr.synth.tts import word_pronunciations

    out: dict[str, list[str]] = {}
    for i in range(0, len(words), FLITE_BATCH):
        batch = words[i:i + FLITE_BATCH]
        for word, phones in zip(batch, word_pronunciations(batch, where=f"pronunciations of {batch[0]!r}...")):
            cmu = flite_to_cmu(phones)
            if cmu:
                out[word] = cmu
            else:
                log.warning("skipping word %r: flite's pronunciation %s has no pocketsphinx phones",
                            word, " ".join(phones) or "(empty)")
    return out


def _is_special(word: str) -> bool:
    """LM / filler tokens (``<s>``, ``<unk>``, ``[NOISE]``) that get no pronunciation."""
    return word[:1] in "<[" and word[-1:] in ">]"


def _unpronounceable(word: str) -> bool:
    """Special tokens, and strings a dictionary line cannot hold (empty, with whitespace)."""
    return not word or any(c.isspace() for c in word) or _is_special(word)


def pocketsphinx_dict(words: Iterable[str], out_path: Path) -> DictSources:
    """Write a pocketsphinx dictionary (``word P1 P2 ...``, variants ``word(2)``) for ``words``.

    Pronunciations come from pocketsphinx's ``cmudict-en-us.dict`` (all its
    variants; a word is looked up as given, then lower-cased), else from flite
    (batched). Special tokens (``<s>``, ``<unk>``, ``[NOISE]``), empty strings or
    strings with whitespace, and words flite
    cannot give CMU phones are skipped with a warning. Written atomically.

    Returns:
        how many distinct words came from cmudict and from flite, and how many were skipped.
    """
    from asr.synth.prompts import model_paths
    from asr.io import atomic_write_text

    cmudict = read_cmudict(model_paths()[1])
    distinct = list(dict.fromkeys(words))
    wanted = [w for w in distinct if not _unpronounceable(w)]
    if len(wanted) < len(distinct):
        log.warning("skipping %d special or malformed token(s): %s",
                    len(distinct) - len(wanted), [w for w in distinct if _unpronounceable(w)][:5])
    known = {w: cmudict.get(w) or cmudict.get(w.lower()) or [] for w in wanted}
    flite = _flite_prons([w for w, p in known.items() if not p])
    lines = []
    for w in wanted:
        prons = known[w] or ([flite[w]] if w in flite else [])
        lines += [f"{w if k == 0 else f'{w}({k + 1})'} {' '.join(p)}" for k, p in enumerate(prons)]
    atomic_write_text(out_path, "\n".join(lines) + "\n")
    n_cmu = sum(1 for p in known.values() if p)
    sources = DictSources(n_cmu, len(flite), len(distinct) - n_cmu - len(flite))
    log.info("wrote %s: %d words from cmudict, %d from flite, %d skipped", out_path, *sources)
    return sources


# ---- decoding -------------------------------------------------------------------


def _model_files(lm_path: Optional[Path], dict_path: Optional[Path]) -> tuple[Path, Path, Path]:
    """(acoustic model dir, LM, dictionary): the given ones, else pocketsphinx's en-us files."""
    from pocketsphinx import get_model_path  # heavy import kept local

    root = Path(get_model_path()) / "en-us"
    files = (root / "en-us", Path(lm_path or root / "en-us.lm.bin"), Path(dict_path or root / "cmudict-en-us.dict"))
    for f in files:
        if not f.exists():
            raise FileNotFoundError(f"{f}: pocketsphinx model, LM or dictionary file missing")
    return files


def arpa_unigrams(lm_path: Path) -> list[str]:
    """The words of an ARPA LM's ``\\1-grams:`` section ([] for a binary LM)."""
    with open(lm_path, "rb") as f:
        if not f.read(64).lstrip().startswith(b"\\data\\"):
            return []
    words, inside = [], False
    for line in Path(lm_path).read_text(encoding="utf-8").splitlines():
        if line.startswith("\\"):
            if inside:
                break
            inside = line.strip() == "\\1-grams:"
        elif inside and line.strip():
            words.append(line.split()[1])
    return words


def _check_lm_words(lm_path: Path, dict_path: Path) -> None:
    """Warn about ARPA words the dictionary lacks: pocketsphinx drops them silently."""
    words = [w for w in arpa_unigrams(lm_path) if not _is_special(w)]
    if words:
        lacking = sorted(set(words) - set(read_cmudict(dict_path)))
        if lacking:
            log.warning("%d of %d words of %s have no pronunciation in %s and can never be recognised, e.g. %s",
                        len(lacking), len(words), lm_path, dict_path, lacking[:5])


def word_decoder(
    lm_path: Optional[Path] = None,
    dict_path: Optional[Path] = None,
    lw: Optional[float] = None,
    beam: Optional[float] = None,
    wbeam: Optional[float] = None,
    pbeam: Optional[float] = None,
    maxhmmpf: Optional[int] = None,
):
    """A pocketsphinx Decoder over the en-us acoustic model (quiet logging).

    Args:
        lm_path: an ARPA (text) or pocketsphinx binary LM; default ``en-us.lm.bin``.
        dict_path: pronunciations of the LM's words; default ``cmudict-en-us.dict``.
        lw, beam, wbeam, pbeam, maxhmmpf: pocketsphinx's settings; None keeps its defaults
            (lw 6.5, beam 1e-48, wbeam 7e-29, pbeam 1e-48, maxhmmpf 30000).

    Raises:
        FileNotFoundError: a model, LM or dictionary file is missing.
        RuntimeError: pocketsphinx cannot load them (naming the files).
    """
    from pocketsphinx import Decoder

    hmm, lm, dic = _model_files(lm_path, dict_path)
    _check_lm_words(lm, dic)
    settings = {"lw": lw, "beam": beam, "wbeam": wbeam, "pbeam": pbeam, "maxhmmpf": maxhmmpf}
    try:
        return Decoder(hmm=str(hmm), lm=str(lm), dict=str(dic), loglevel="FATAL",
                       **{k: v for k, v in settings.items() if v is not None})
    except (RuntimeError, ValueError) as exc:
        raise RuntimeError(f"pocketsphinx cannot load LM {lm} with dictionary {dic}: {exc}") from None


def clean_words(tokens: Iterable[str]) -> list[str]:
    """pocketsphinx segment words -> words: lower case, ``(2)`` suffixes and fillers removed."""
    out = []
    for tok in tokens:
        if _is_special(tok) or (tok.startswith("+") and tok.endswith("+")):
            continue
        out.append(_VARIANT.sub("", tok).lower())
    return out


def decode_words(decoder, audio: np.ndarray, sample_rate: int) -> list[str]:
    """Recognise the words of one utterance.

    Args:
        decoder: from :func:`word_decoder`.
        audio: (T,) samples, float in [-1, 1] or int16; resampled to 16 kHz if needed.

    Returns:
        the best hypothesis' words, lower case (empty when pocketsphinx has none).
    """
    pcm = _to_int16(audio, sample_rate)
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), no_search=False, full_utt=True)
    decoder.end_utt()
    return clean_words(seg.word for seg in decoder.seg() or [])  # seg() is None without a hypothesis


def decode_datadir_words(decoder, data_dir: Path) -> tuple[dict[str, list[str]], float, float]:
    """Decode every utterance of a Kaldi data dir.

    Returns:
        (utt -> words, seconds of audio, CPU seconds spent decoding (reading excluded)).

    Raises:
        DataError / AudioError: a bad data dir or audio file (naming it and the utterance).
    """
    from asr.audio import MODEL_RATE, read_audio
    from asr.corpus.datadir import read_datadir
    from asr.errors import AsrError, AudioError

    data = read_datadir(data_dir)
    hyps: dict[str, list[str]] = {}
    audio_s = cpu_s = 0.0
    for utt in data.utts:
        try:
            audio = read_audio(data.wav[utt], rate=MODEL_RATE, resample=True)
        except AsrError as exc:
            raise AudioError(f"{data_dir}: utterance {utt!r}: {exc}") from None
        start = time.process_time()
        hyps[utt] = decode_words(decoder, audio.samples, audio.rate)
        cpu_s += time.process_time() - start
        audio_s += audio.seconds
    log.info("decoded %d utterances, %.1f s of audio in %.1f CPU s", len(hyps), audio_s, cpu_s)
    return hyps, audio_s, cpu_s


def dictionary_words(dict_path: Path) -> set[str]:
    """The words of a pocketsphinx dictionary (variants merged)."""
    return set(read_cmudict(dict_path))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="pocketsphinx word decoding of a data dir (WER, RTF)")
    parser.add_argument("data_dir", type=Path, help="Kaldi data dir; its text is the reference")
    parser.add_argument("--lm", type=Path, help="ARPA LM (default: pocketsphinx's en-us.lm.bin)")
    parser.add_argument("--dict", type=Path, help="dictionary for the LM's words (default: cmudict-en-us.dict)")
    parser.add_argument("--lw", type=float, help="language weight (default: pocketsphinx's, 6.5)")
    parser.add_argument("--report", type=Path, help="write an sclite-style report here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from asr.corpus.datadir import read_datadir
    from asr.score.per import score_summary, score_words
    from asr.score.report import write_report

    decoder = word_decoder(args.lm, args.dict, lw=args.lw)
    hyps, audio_s, cpu_s = decode_datadir_words(decoder, args.data_dir)
    data = read_datadir(args.data_dir)
    refs = {u: data.text[u].lower() for u in data.utts}  # pocketsphinx writes lower case
    result = score_words(refs, hyps)
    if args.report:
        vocab = dictionary_words(_model_files(args.lm, args.dict)[2])
        write_report(result, args.report, f"pocketsphinx words on {args.data_dir}", data.utt2spk, vocab)
    print(f"{score_summary(result, str(args.data_dir))}  RTF {cpu_s / max(audio_s, 1e-9):.3f} "
          f"(CPU s / audio s; {audio_s:.1f} s audio, {os.cpu_count()} cpus)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
