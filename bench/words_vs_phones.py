"""WER of a word-supervised system (recipes/words/run.sh) beside a phone-supervised one
(recipes/synth/run.sh) on the same synthetic speech, with the paired bootstrap interval of each
difference.

The two recipes read the same corpus in two layouts, so the same utterance has two ids: the
LibriSpeech layout's ``<spk>-<chapter>-<n>`` and the TIMIT layout's ``<name>_<sentence>``. The
LibriSpeech layout's SPEAKERS.TXT gives each speaker's TIMIT name; within a speaker the transcript
finds the utterance. The word system's hypotheses are renamed that way and both are scored against
the phone-supervised data dir's references.

    python bench/words_vs_phones.py --pair cd=exp/synth_medium/cd_lstm_1000,exp/words_synth_medium/cd_lstm_1000 \\
        --phones-data data/synth_medium --words-data data/words_synth_medium
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Optional

SETS = ("dev", "test", "test_unseen")


def read_speaker_names(path: Path) -> dict[str, str]:
    """SPEAKERS.TXT (``ID | SEX | SUBSET | MINUTES | NAME voice``) → {id: TIMIT name, lower case}."""
    names = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        fields = [f.strip() for f in line.split("|")]
        if len(fields) < 5 or not fields[4]:
            sys.exit(f"{path}: not a SPEAKERS.TXT line with a NAME column: {line!r}")
        names[fields[0]] = fields[4].split()[0].lower()
    return names


def id_map(words_text: dict[str, list[str]], phones_text: dict[str, list[str]],
           names: dict[str, str], where: str) -> dict[str, str]:
    """{LibriSpeech-layout utterance id: TIMIT-layout id} of one set, by speaker and transcript."""
    by_key = {(u.split("_")[0], tuple(w)): u for u, w in phones_text.items()}
    out = {}
    for utt, words in words_text.items():
        spk = utt.split("-")[0]
        if spk not in names:
            sys.exit(f"{where}: speaker {spk} of utterance {utt} is not in SPEAKERS.TXT")
        key = (names[spk], tuple(words))
        if key not in by_key:
            sys.exit(f"{where}: utterance {utt} ({names[spk]}: {' '.join(words)!r}) has no twin in the TIMIT layout")
        out[utt] = by_key[key]
    if len(set(out.values())) != len(out):
        sys.exit(f"{where}: two utterances map to one TIMIT-layout utterance")
    return out


def compare_set(phones_model: Path, words_model: Path, phones_data: Path, words_data: Path,
                set_name: str, names: dict[str, str]) -> Optional[dict]:
    """Both systems' WER on one set and the bootstrap interval of words − phones; None when
    either system has no decode of it."""
    from asr.score.per import read_transcripts, score_words
    from asr.score.significance import paired_bootstrap

    hyp_p = phones_model / f"decode_words_{set_name}" / "hyp.txt"
    hyp_w = words_model / f"decode_words_{set_name}" / "hyp.txt"
    if not (hyp_p.is_file() and hyp_w.is_file()):
        return None
    refs = read_transcripts(phones_data / set_name / "text")
    mapping = id_map(read_transcripts(words_data / set_name / "text"), refs, names, str(words_data / set_name))
    words_hyps = {mapping[u]: w for u, w in read_transcripts(hyp_w).items()}
    a, b = score_words(refs, read_transcripts(hyp_p)), score_words(refs, words_hyps)
    cmp = paired_bootstrap(a, b)
    return {"set": set_name, "phones": cmp.rate_a, "words": cmp.rate_b, "interval": cmp.interval,
            "p_words_better": cmp.p_b_better}


def table(rows: list[tuple[str, dict]]) -> str:
    lines = ["| system | set | phone-supervised WER | word-supervised WER | relative gap | difference [95% interval] "
             "| word system better in |", "|---|---|---:|---:|---:|---|---:|"]
    for name, r in rows:
        lo, hi = r["interval"]
        gap = 100 * (r["words"] - r["phones"]) / r["phones"] if r["phones"] else float("nan")
        lines.append(f"| {name} | {r['set']} | {r['phones']:.2f} | {r['words']:.2f} | {gap:+.1f}% | "
                     f"{r['words'] - r['phones']:+.2f} [{lo:+.2f}, {hi:+.2f}] | {100 * r['p_words_better']:.1f}% |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pair", action="append", required=True, metavar="NAME=PHONES_MODEL,WORDS_MODEL",
                   help="a phone-supervised and a word-supervised model dir to compare, repeatable")
    p.add_argument("--phones-data", type=Path, required=True, help="the phone-supervised recipe's data dir root")
    p.add_argument("--words-data", type=Path, required=True, help="the word-supervised recipe's data dir root")
    p.add_argument("--speakers", type=Path, help="SPEAKERS.TXT (default: <words-data>/corpus/SPEAKERS.TXT)")
    p.add_argument("--sets", nargs="+", default=list(SETS))
    args = p.parse_args(argv)
    pairs = []
    for spec in args.pair:
        name, sep, dirs = spec.partition("=")
        models = dirs.split(",")
        if not sep or len(models) != 2 or not name:
            p.error(f"--pair {spec!r}: expected NAME=PHONES_MODEL,WORDS_MODEL")
        pairs.append((name, Path(models[0]), Path(models[1])))
    speakers = args.speakers or args.words_data / "corpus" / "SPEAKERS.TXT"
    if not speakers.is_file():
        sys.exit(f"{speakers}: no SPEAKERS.TXT (give --speakers)")
    names = read_speaker_names(speakers)
    print("python " + " ".join(shlex.quote(a) for a in (sys.argv if argv is None else ["bench/words_vs_phones.py", *argv])))
    rows = []
    for name, phones_model, words_model in pairs:
        for set_name in args.sets:
            r = compare_set(phones_model, words_model, args.phones_data, args.words_data, set_name, names)
            if r is None:
                print(f"{name} / {set_name}: no word decode of both systems, skipped", file=sys.stderr)
            else:
                rows.append((name, r))
    if not rows:
        sys.exit("nothing to compare: no set has word decodes of both systems (decode_words_<set>/hyp.txt)")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
