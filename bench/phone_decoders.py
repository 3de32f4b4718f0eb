#!/usr/bin/env python3
"""Phone decoders side by side on one acoustic model (Boulanger-Lewandowski, Droppo,
Seltzer & Yu, 2014): the HMM with the phone bigram, the HMM with the phone n-gram
whose order dev chose (2-5), the RNN phone-sequence beam search, and the HMM's
n-best lists rescored with the RNN. Every setting (acoustic scale, LM weight,
penalty, n-gram order) is tuned on dev; test and test_unseen are decoded once.

The phone LMs (n-grams and RNN alike) are trained on two sets of phone sequences:
``train``, the training set's phone transcripts; ``text``, those plus the word
LM's training text (``lang_words/lm_text.txt``, which excludes the dev and test
prompts) expanded through the lexicon (first pronunciations, ``sil`` at both ends).

Also printed: the perplexity of every phone LM on dev and test phone transcripts;
for the RNN decoder, the utterances of test whose reference phones score better
than the decoded path (search errors); and how often the constrained RNN search
(an alignment) agrees with the HMM's Viterbi alignment, frame by frame.

    python bench/phone_decoders.py [--size small] [--model exp/synth_small/cd_lstm_1000]
        [--orders 2,3,4,5] [--device auto]

Needs the recipe through stage 8 (``recipes/synth/run.sh --size small --stop-stage 8``).
Work files (phone LMs, graphs, a copy of the model bundle) go to
``exp/synth_<size>/phone_decoders/<model>``, the table to RESULTS.md there.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from runs import report  # noqa: E402

from asr.corpus.datadir import read_datadir  # noqa: E402
from asr.decode.hybrid import HybridModel, scaled_loglikes  # noqa: E402
from asr.decode.lattice import LatticeDecoder  # noqa: E402
from asr.decode.rescore import nbest_lists, rescore, tune_rescoring  # noqa: E402
from asr.decode.rnn_decode import install_phone_lm, rnn_decoder, tuned_settings  # noqa: E402
from asr.decode.wfst import WfstDecoder  # noqa: E402
from asr.lang.graph import alignment_graph, load_graph, make_decoding_graph  # noqa: E402
from asr.lang.word_lm import lm_report  # noqa: E402
from asr.nn.phone_lm import load_phone_lm, perplexity, sentence_logprobs  # noqa: E402
from asr.nn.train import resolve_device  # noqa: E402
from asr.score.per import score_phones  # noqa: E402
from asr.steps.decode import ACWT_GRID, decode_with, set_features, set_posteriors, tune_rnn  # noqa: E402
from asr.steps.train_phone_lm import expanded_sentences, phone_sentences, train_phone_lm_stage  # noqa: E402
from asr.phones.timit import timit_lang  # noqa: E402

TIMIT = timit_lang()  # the synthetic corpus's lang: PER folded to 39

SETS = ("dev", "test", "test_unseen")
#: (LM weight, penalty) grid of n-best rescoring, tuned on dev.
RESCORE_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
RESCORE_PENALTIES = (-1.0, -0.5, 0.0, 0.5, 1.0)


class EvalSet:
    """One data set's references and log posteriors under the model, and its audio seconds."""

    def __init__(self, model: HybridModel, data_dir: Path) -> None:
        self.path = data_dir
        dd = read_datadir(data_dir, require_phones=True)
        self.refs = {u: dd.phone_text(u) for u in dd.utts}
        start = time.time()
        self.post = set_posteriors(model, set_features(model, data_dir))
        self.nn_seconds = time.time() - start
        self.audio_seconds = sum(len(p) for p in self.post.values()) * model.feat_cfg.frame_shift_ms / 1000

    def per(self, hyps: dict[str, list[str]]) -> float:
        return score_phones(self.refs, hyps, TIMIT).counts.rate


def timed_decode(model: HybridModel, decoder, data: EvalSet, acwt: float) -> tuple[float, float]:
    """(PER, search RTF) of one decoder over a set."""
    start = time.time()
    hyps = decode_with(model, decoder, data.post, acwt).hyps
    return data.per(hyps), (time.time() - start) / data.audio_seconds


def hmm_rows(model: HybridModel, sets: dict[str, EvalSet], graphs: dict[tuple[str, int], Path]
             ) -> dict[tuple[str, int], dict]:
    """Per phone n-gram (training text, order): acwt tuned on dev, PER and RTF of every set."""
    out = {}
    for order, graph in graphs.items():
        decoder = WfstDecoder(graph, model.transitions, beam=13.0)
        sweep = {a: sets["dev"].per(decode_with(model, decoder, sets["dev"].post, a).hyps) for a in ACWT_GRID}
        acwt = min(sweep, key=sweep.get)
        row = {"acwt": acwt}
        for name, data in sets.items():
            row[name], row[f"{name}_rtf"] = timed_decode(model, decoder, data, acwt)
        out[order] = row
        print(f"HMM {order} (acwt {acwt}): " + ", ".join(f"{n} {row[n]:.2f}" for n in sets), flush=True)
    return out


def rescore_row(model: HybridModel, sets: dict[str, EvalSet], graph: Path, acwt: float, lm) -> dict:
    """n-best rescoring of the bigram HMM's lattices: weights tuned on dev; PER and RTF
    (lattice, n-best and RNN scoring included) per set."""
    decoder = LatticeDecoder(load_graph(graph), model.transitions, name=str(graph))
    lists, rtf = {}, {}
    for name, data in sets.items():
        start = time.time()
        scores = {u: scaled_loglikes(p, model.log_priors, acwt) for u, p in data.post.items()}
        lists[name] = nbest_lists(decoder, scores, lm, model.device)
        rtf[name] = (time.time() - start) / data.audio_seconds
    w, p, _ = tune_rescoring(lists["dev"], lambda h: sets["dev"].per(_symbols(model, h)), RESCORE_WEIGHTS,
                             RESCORE_PENALTIES)
    row = {"lm_weight": w, "penalty": p}
    for name, data in sets.items():
        row[name], row[f"{name}_rtf"] = data.per(_symbols(model, rescore(lists[name], w, p))), rtf[name]
    return row


def _symbols(model: HybridModel, hyps: dict[str, list[int]]) -> dict[str, list[str]]:
    return {u: model.phone_symbols(h) for u, h in hyps.items()}


def rnn_row(model: HybridModel, sets: dict[str, EvalSet], lm) -> dict:
    """The RNN beam search tuned on dev (the bundle's settings), PER and RTF per set."""
    tune_rnn(model, sets["dev"].path, model.model_dir, post=sets["dev"].post)
    settings = tuned_settings(model)
    decoder = rnn_decoder(model, settings, lm)
    row = {"settings": settings}
    for name, data in sets.items():
        row[name], row[f"{name}_rtf"] = timed_decode(model, decoder, data, settings.acwt)
    return row


def search_errors(model: HybridModel, data: EvalSet, lm) -> tuple[int, int]:
    """(utterances whose reference phones score better than the decoded path, utterances)."""
    settings = tuned_settings(model)
    decoder = rnn_decoder(model, settings, lm)
    ids = {p: i + 1 for i, p in enumerate(model.phones)}
    errors = 0
    for utt, post in data.post.items():
        scores = scaled_loglikes(post, model.log_priors, settings.acwt)
        found = decoder.decode(scores, utt)
        phones = [ids[p] for p in data.refs[utt]]
        ref = decoder.decode(scores, utt, constrain=phones)  # its score leaves the LM and penalty out
        ref_total = ref.score + settings.lm_weight * sentence_logprobs(lm, [phones], model.device)[0] \
            - settings.penalty * len(phones)
        errors += ref.reached_final and ref_total > found.score + 1e-6
    return errors, len(data.post)


def alignment_agreement(model: HybridModel, data: EvalSet, lm, beam: float = 50.0) -> float:
    """% of frames where the constrained RNN search and the HMM's Viterbi alignment give the same
    pdf, both with ``beam`` (the WFST's is 50)."""
    settings = replace(tuned_settings(model), beam=beam, max_active=100000)
    decoder = rnn_decoder(model, settings, lm)
    ids = {p: i + 1 for i, p in enumerate(model.phones)}
    same = total = 0
    for utt, post in data.post.items():
        phones = [ids[p] for p in data.refs[utt]]
        scores = scaled_loglikes(post, model.log_priors, 1.0)
        ours = decoder.decode(scores, utt, constrain=phones)
        viterbi = WfstDecoder(alignment_graph(model.context, phones), model.transitions, beam=50.0).decode(scores)
        same += int((ours.pdfs == viterbi.pdfs).sum())
        total += len(scores)
    return 100.0 * same / total


def perplexities(out: Path, data: Path, model: HybridModel, lms: dict, orders: list[int]
                 ) -> dict[str, dict[str, float]]:
    """{phone LM: {set: perplexity per phone (</s> included)}} on dev and test."""
    texts = {}
    for name in ("dev", "test"):
        texts[name] = out / f"{name}.phones.txt"  # the 48-phone transcripts, as the LMs are trained on
        dd = read_datadir(data / name, require_phones=True)
        texts[name].write_text("".join(f"{u} {' '.join(dd.phone_text(u))}\n" for u in dd.utts))
    table = {}
    for source, lm in lms.items():
        for order in orders:
            r = lm_report(out / f"lang_{source}_{order}/lm.arpa", texts)
            table[f"{order}-gram ({source})"] = {n: r[n]["ppl"] for n in texts}
        table[f"RNN ({source})"] = {n: perplexity(lm, list(phone_sentences(data / n, model.phones).values()),
                                                  model.device) for n in texts}
    return table


def phone_texts(out: Path, data: Path, phones: list[str]) -> dict[str, Path]:
    """The phone LMs' training sequences as Kaldi text: ``train`` (the transcripts) and ``text``
    (those and the word LM text expanded through the lexicon)."""
    expanded = out / "text.phone_text"
    if not expanded.is_file():
        lang = data / "lang_words"
        seqs = expanded_sentences(lang / "lm_text.txt", lang / "lexicon.txt", phones, TIMIT.optional_silence)
        lines = [f"x{i:06d} {' '.join(phones[t - 1] for t in s)}\n" for i, s in enumerate(seqs)]
        expanded.write_text((data / "train/phone_text").read_text() + "".join(lines))
    return {"train": data / "train/phone_text", "text": expanded}


def train_lms(out: Path, data: Path, device: torch.device) -> dict[str, Path]:
    """The two RNN phone LMs (trained when missing): {source: dir}. ``text`` as stage 9 trains
    it (``recipes/synth/conf/phone_lm.yaml``, 10 epochs of 64-utterance batches); ``train``,
    a few hundred utterances, with the defaults (40 epochs of 32), both stopped early on dev."""
    dirs = {"train": out / "phone_lm_train", "text": out / "phone_lm_text"}
    lang = data / "lang_words"
    for source, d in dirs.items():
        if source == "text":
            conf, extra = ROOT / "recipes/synth/conf/phone_lm.yaml", {"extra_text": lang / "lm_text.txt",
                                                                      "lexicon": lang / "lexicon.txt"}
        else:
            conf, extra = None, {}
        train_phone_lm_stage(data / "train", data / "dev", d, data / "lang", conf, device, **extra)
    return dirs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="small")
    p.add_argument("--model", type=Path, help="acoustic model bundle (default: the recipe's CD model)")
    p.add_argument("--orders", default="2,3,4,5")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data, exp = ROOT / f"data/synth_{args.size}", ROOT / f"exp/synth_{args.size}"
    src = args.model or exp / "cd_lstm_1000"
    orders = sorted({int(o) for o in args.orders.split(",")})
    out = exp / "phone_decoders" / src.name
    bundle = out / "bundle"
    if not bundle.is_dir():  # a copy: the bench installs phone LMs and settings into it
        shutil.copytree(src, bundle, ignore=shutil.ignore_patterns("decode_*", "ali_*", "epoch-*.pt", "partial.pt"))
    device = resolve_device(args.device)
    lm_dirs = train_lms(out.parent, data, device)
    model = HybridModel.load(bundle, device)
    lms = {source: load_phone_lm(d, device, model.phones) for source, d in lm_dirs.items()}
    texts = phone_texts(out.parent, data, model.phones)
    graphs = {(source, o): make_decoding_graph(out.parent / f"lang_{source}_{o}", model.context, texts[source],
                                               order=o, graph_dir=out / f"graph_{source}_{o}")
              for source in texts for o in orders}
    sets = {name: EvalSet(model, data / name) for name in SETS}
    nn_rtf = sum(s.nn_seconds for s in sets.values()) / sum(s.audio_seconds for s in sets.values())
    ppl = perplexities(out.parent, data, model, lms, orders)
    hmm = hmm_rows(model, sets, graphs)
    rnn = {}
    for source in ("train", "text"):
        install_phone_lm(model, lm_dirs[source])
        rnn[source] = rnn_row(model, sets, lms[source])
        print(f"RNN ({source}) {rnn[source]['settings']}: " + ", ".join(f"{n} {rnn[source][n]:.2f}" for n in SETS),
              flush=True)
    resc = rescore_row(model, sets, graphs[("train", 2)], hmm[("train", 2)]["acwt"], lms["text"])
    errors, n_utts = search_errors(model, sets["test"], lms["text"])  # the bundle holds the text LM now
    agree = alignment_agreement(model, sets["test"], lms["text"])

    def line(name: str, r: dict, how: str) -> str:
        return (f"| {name} | {how} | {r['dev']:.2f} | {r['test']:.2f} | {r['test_unseen']:.2f} | "
                f"{r['test_rtf']:.4f} |")

    rows = ["| decoder | phone LM trained on | settings (dev) | dev PER | test PER | unseen PER | search RTF |",
            "|---|---|---|---|---|---|---|"]
    for source in ("train", "text"):
        best = min((o for o in orders), key=lambda o: hmm[(source, o)]["dev"])
        for o in sorted({2, best}) if source == "train" else [best]:
            r = hmm[(source, o)]
            rows.append(line(f"HMM, phone {o}-gram" + (" (order chosen on dev)" if o == best else ""),
                             r, f"{source} | acwt {r['acwt']}"))
    for source in ("train", "text"):
        st = rnn[source]["settings"]
        rows.append(line("RNN beam search", rnn[source],
                         f"{source} | acwt {st.acwt}, LM weight {st.lm_weight}, penalty {st.penalty}"))
    rows.append(line("HMM (bigram, train) 100-best rescored with the RNN", resc,
                     f"text | LM weight {resc['lm_weight']}, penalty {resc['penalty']}"))
    ppl_rows = ["| phone LM | dev ppl | test ppl |", "|---|---|---|"] + \
        [f"| {k} | {v['dev']:.2f} | {v['test']:.2f} |" for k, v in ppl.items()]
    other = [f"{s} {o}-gram: dev {hmm[(s, o)]['dev']:.2f}, test {hmm[(s, o)]['test']:.2f}" for s, o in hmm]
    body = "\n".join(rows) + "\n\n" + "\n".join(ppl_rows) + "\n\nEvery HMM: " + "; ".join(other) + (
        f".\n\nNetwork RTF (every decoder reads the same posteriors): {nn_rtf:.4f}. "
        f"RNN (text) search errors on test (reference phones score better than the decoded path): "
        f"{errors} of {n_utts} utterances. Constrained RNN search vs HMM Viterbi alignment on test: "
        f"{agree:.2f}% of frames with the same pdf.")
    report(out / "RESULTS.md", f"Phone decoders, {src.name}, synth_{args.size}", body,
           f"`python bench/phone_decoders.py --size {args.size} --model {src.relative_to(ROOT)}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
