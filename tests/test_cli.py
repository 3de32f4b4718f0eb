"""The ``asr`` command speaks one dialect: one spelling per concept across subcommands,
old spellings still parse (and warn once), options that would do nothing are refused."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from asr.cli import deprecations, get_parser, main, parse_args

BIN = Path(sys.executable).parent

#: (subcommand and its positional arguments, old spelling + value, new spelling + value).
RENAMES = [
    (["synth-corpus", "out"], ["--num-jobs", "3"], ["--nj", "3"]),
    (["prepare-lang", "train", "lang"], ["--num-jobs", "3"], ["--nj", "3"]),
    (["prepare-lang", "train", "lang"], ["--report", "d/dev/text", "d/test"], ["--eval", "d/dev/text", "d/test"]),
    (["decode", "m", "d", "o"], ["--graph", "data/lang/HCG.fst"], ["--graph-dir", "data/lang/HCG.fst"]),
    (["decode", "m", "d", "o"], ["--tune-acwt"], ["--tune"]),
    (["decode", "m", "d", "o", "--decoder", "rnn", "--tune"], ["--max-active", "500"], ["--rnn-max-hyps", "500"]),
    (["align", "m", "d", "a"], ["--acwt", "0.5"], ["--acoustic-scale", "0.5"]),
    (["transcribe"], ["--model", "exp/m", "a.wav", "b.wav"], ["exp/m", "a.wav", "b.wav"]),
    (["transcribe", "--format", "ctm"], ["--model", "exp/m", "a.wav"], ["exp/m", "--output", "words", "a.wav"]),
]


def _parsed(argv: list[str]) -> argparse.Namespace:
    return parse_args(argv)


def _values(ns: argparse.Namespace) -> dict:
    """The parsed values a command reads (transcribe: its model dir and files resolved)."""
    from asr.cli import transcribe_paths

    out = {k: v for k, v in vars(ns).items() if k not in ("renamed", "func")}
    if ns.command == "transcribe":
        out = {"paths": transcribe_paths(ns)}
    return out


@pytest.mark.parametrize("cmd, old, new", RENAMES, ids=[f"{c[0]} {o[0]}" for c, o, _ in RENAMES])
def test_old_spelling_parses_to_the_same_value_and_warns_once(cmd, old, new):
    old_ns, new_ns = _parsed([*cmd, *old]), _parsed([*cmd, *new])
    assert _values(old_ns) == _values(new_ns)
    renamed = deprecations(old_ns)
    assert len(renamed) == 1 and old[0] in renamed
    assert (new[0] if new[0].startswith("--") else "MODEL_DIR") in renamed[old[0]]
    assert deprecations(new_ns) == {}


def test_a_deprecated_option_warns_once_on_the_console(tmp_path, capsys):
    """Given twice, --acwt logs one warning naming --acoustic-scale; the command then runs
    (and fails on the missing model dir, exit 1, with a message naming it)."""
    code = main(["align", str(tmp_path / "nomodel"), str(tmp_path), str(tmp_path / "ali"),
                 "--acwt", "0.5", "--acwt", "0.7"])
    err = capsys.readouterr().err
    assert code == 1 and "model directory does not exist" in err
    assert err.count("--acwt is deprecated: use --acoustic-scale") == 1


@pytest.mark.slow  # kept out of the default suite's 5 minutes
def test_the_installed_command_warns_for_an_old_spelling(tmp_path):
    proc = subprocess.run([str(BIN / "asr"), "transcribe", "--model", str(tmp_path / "nomodel"), "x.wav"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "model directory does not exist" in proc.stderr
    assert proc.stderr.count("--model is deprecated: use the model dir as the first argument") == 1


#: Option combinations that would do nothing: (argv, what the message must say).
NO_OPS = [
    (["transcribe", "m", "a.wav", "--output", "phones", "--keep-unk"],
     "--keep-unk does nothing with --output phones"),
    (["decode", "m", "d", "o", "--decoder", "rnn", "--beam", "10"],
     "--beam does nothing with --decoder rnn: it is the WFST (HMM) search's beam"),
    (["decode", "m", "d", "o", "--decoder", "rnn", "--rnn-beam", "10"], "--rnn-beam does nothing without --tune"),
    (["decode", "m", "d", "o", "--decoder", "rnn", "--max-active", "10"], "--rnn-max-hyps does nothing without --tune"),
    (["decode", "m", "d", "o", "--tune", "--rnn-max-hyps", "10"], "--rnn-max-hyps does nothing with --decoder hmm"),
    (["decode", "m", "d", "o", "--rnn-beam", "10"], "--rnn-beam does nothing with --decoder hmm"),
    (["decode", "m", "d", "o", "--phone-lm", "lm"], "--phone-lm does nothing with --decoder hmm"),
    (["make-feats", "f", "d", "--num-ceps", "20"], "--num-ceps does nothing with --kind fbank"),
    (["prepare-lang", "t", "l", "--lm", "my.arpa", "--vocab-size", "100"], "--vocab-size does nothing with --lm"),
    (["prepare-lang", "t", "l", "--lm", "my.arpa", "--num-jobs", "2"], "--nj does nothing with --lm"),
    (["prepare-lang", "t", "l", "--lm", "my.arpa", "--exclude", "d/text"], "--exclude does nothing with --lm"),
    (["show-alignment", "ali", "--ctm", "--frames"], "--frames does nothing with --ctm"),
    (["show-alignment", "ali", "--textgrid", "tg", "--ctm"], "--ctm does nothing with --textgrid"),
    (["transcribe", "exp/m"], "give the model dir and at least one audio file"),
]


@pytest.mark.parametrize("argv, message", NO_OPS, ids=[" ".join(a[:1] + a[4:]) for a, _ in NO_OPS])
def test_an_option_that_does_nothing_is_refused(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_installed_command_refuses_a_no_op_option():
    proc = subprocess.run([str(BIN / "asr"), "decode", "m", "d", "o", "--decoder", "rnn", "--beam", "9"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "--beam does nothing with --decoder rnn" in proc.stderr


def test_abbreviated_options_are_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        get_parser().parse_args(["decode", "m", "d", "o", "--tun"])
    assert exc.value.code == 2 and "unrecognized arguments: --tun" in capsys.readouterr().err


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in get_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _current_options(parser: argparse.ArgumentParser) -> set[str]:
    """The option strings a subcommand documents (old spellings are hidden from --help)."""
    return {s for a in parser._actions if a.help != argparse.SUPPRESS for s in a.option_strings}


#: Concept → (its one spelling, other spellings that name the same thing).
CONCEPTS = {
    "parallel jobs": ("--nj", {"--num-jobs", "--jobs", "-j", "--num-workers"}),
    "search beam": ("--beam", {"--decode-beam", "--search-beam"}),
    "max active states": ("--max-active", {"--max-active-states", "--max-states"}),
    "acoustic scale": ("--acoustic-scale", {"--acwt", "--am-scale", "--acoustic-weight"}),
    "graph dir": ("--graph-dir", {"--graph", "--graph-path", "--hcg"}),
    "tuning on dev": ("--tune", {"--tune-acwt", "--tune-scale"}),
    "decision tree": ("--tree", {"--tree-dir", "--tree-json"}),
    "model conf": ("--conf", {"--config", "--model-conf"}),
    "device": ("--device", {"--gpu", "--use-gpu", "--cuda"}),
    "sets to report on": ("--eval", {"--report-sets", "--eval-dirs"}),
}


def test_every_subcommand_spells_each_concept_the_same_way():
    subs = _subparsers()
    for concept, (spelling, others) in CONCEPTS.items():
        users = [name for name, p in subs.items() if spelling in _current_options(p)]
        assert users, f"no subcommand has {spelling} ({concept})"
        for name, parser in subs.items():
            clash = _current_options(parser) & others
            assert not clash, f"asr {name} spells {concept} {sorted(clash)}, not {spelling}"


def test_old_spellings_are_hidden_and_each_maps_to_a_current_option():
    """Every hidden option is an old spelling whose new spelling the subcommand documents."""
    from asr.cli import _OldSpelling

    for name, parser in _subparsers().items():
        current = _current_options(parser)
        for action in parser._actions:
            if isinstance(action, _OldSpelling):
                assert action.help == argparse.SUPPRESS
                assert action.new in current or action.new.startswith("the model dir"), (name, action.new)


def test_every_subcommand_that_takes_a_model_takes_it_first_and_positionally():
    for name in ("decode", "decode-words", "align", "transcribe"):
        positionals = [a.dest for a in _subparsers()[name]._actions if not a.option_strings]
        assert positionals[0] == "model_dir", name


def test_make_feats_cmvn_default_is_feature_configs(tmp_path):
    """make-feats without --cmvn computes (and records in feats.yaml) FeatureConfig's default CMVN."""
    import numpy as np
    import soundfile as sf

    from asr.corpus.datadir import write_datadir
    from asr.features.extract import FeatureConfig

    sf.write(tmp_path / "u.wav", (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32), 16000)
    write_datadir(tmp_path / "data", {"s_u": str(tmp_path / "u.wav")}, {"s_u": "a"}, {"s_u": "s"})
    assert main(["make-feats", str(tmp_path / "feats"), str(tmp_path / "data")]) == 0
    assert FeatureConfig.load(tmp_path / "data/feats.yaml") == FeatureConfig()
