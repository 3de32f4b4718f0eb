"""Recipe options that name paths: relative ones are read against the caller's
working directory (not the repository root the scripts cd to), defaults
against the repository root, and paths with spaces work. Cheap stages only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def venv_env() -> dict[str, str]:
    """The environment with this virtualenv's ``asr`` first on PATH."""
    return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}


def run_script(script: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / script), *args], cwd=cwd, env=venv_env(),
                          capture_output=True, text=True, timeout=120)


def test_timit_relative_paths_are_read_from_the_callers_directory(tmp_path: Path) -> None:
    cwd = tmp_path / "my data"
    (cwd / "TIMIT").mkdir(parents=True)
    proc = run_script("recipes/timit/run.sh", cwd, "--timit", "TIMIT", "--out", "out", "--stop-stage", "0")
    assert proc.returncode == 0, proc.stderr
    assert "does not exist" not in proc.stderr
    assert (cwd / "out/exp/timit/log").is_dir()
    assert not (ROOT / "out").exists()


def test_timit_relative_path_that_is_missing_is_named_absolute(tmp_path: Path) -> None:
    proc = run_script("recipes/timit/run.sh", tmp_path, "--timit", "nope", "--out", "out", "--stop-stage", "0")
    assert proc.returncode == 1
    assert f"TIMIT directory '{tmp_path}/nope' does not exist" in proc.stderr


def test_synth_relative_out_and_conf_with_spaces(tmp_path: Path) -> None:
    cwd = tmp_path / "a work dir"
    cwd.mkdir()
    # a config the trainer refuses at once: proves it was found and read, no data needed
    (cwd / "my conf.yaml").write_text("bogus: 1\n")
    proc = run_script("recipes/synth/run.sh", cwd, "--size", "tiny", "--out", "my out", "--conf", "my conf.yaml",
                      "--device", "cpu", "--stage", "4", "--stop-stage", "4")
    assert proc.returncode == 1, proc.stderr
    conf_error = f"{cwd}/my conf.yaml: bad training config"  # found (at its absolute path) and read
    assert conf_error in proc.stderr
    log = cwd / "my out/exp/synth_tiny/log/train_ci.log"
    assert log.is_file() and conf_error in log.read_text()
    assert not (ROOT / "my out").exists()


def test_synth_default_conf_is_read_from_the_repository(tmp_path: Path) -> None:
    """No --conf: the default, relative to the repository, is found from any directory;
    training then stops at the missing lang dir under the cwd-relative --out."""
    proc = run_script("recipes/synth/run.sh", tmp_path, "--size", "tiny", "--out", "o", "--device", "cpu",
                      "--stage", "4", "--stop-stage", "4")
    assert proc.returncode == 1
    assert "training config not found" not in proc.stderr and "bad training config" not in proc.stderr
    assert f"{tmp_path}/o/data/synth_tiny/lang is not a lang dir" in proc.stderr, proc.stderr
    assert (tmp_path / "o/exp/synth_tiny/log/train_ci.log").is_file()


def test_words_cd_init_options_are_checked_before_any_stage(tmp_path: Path) -> None:
    """--cd-init realigned needs the CI LSTM retrained on the realignment; a misspelt value
    is refused by name. Both before stage 0 writes anything."""
    cases = [(["--ci-realigned", "false"], "it needs --ci-realigned true"),
             (["--cd-init", "yes"], "--cd-init must be realigned, true or false, not 'yes'")]
    for opts, message in cases:
        proc = run_script("recipes/words/run.sh", tmp_path, "--size", "tiny", "--out", "o", *opts)
        assert proc.returncode == 1 and message in proc.stderr, (opts, proc.stderr)
    assert not (tmp_path / "o").exists()


def test_synth_tune_set_is_checked_before_any_stage(tmp_path: Path) -> None:
    """--tune-set takes dev, mixed or auto; mixed needs a dev set unlike training (dev_unseen or
    dev_neural), refused before stage 2 when the data dirs have none."""
    proc = run_script("recipes/synth/run.sh", tmp_path, "--size", "tiny", "--out", "o", "--tune-set", "all")
    assert proc.returncode == 1 and "--tune-set must be dev, mixed or auto, not 'all'" in proc.stderr, proc.stderr
    assert not (tmp_path / "o").exists()
    data = tmp_path / "o/data/synth_tiny"
    for name in ("train", "dev", "test"):  # stage 2 would read them; the check comes first
        (data / name).mkdir(parents=True)
    proc = run_script("recipes/synth/run.sh", tmp_path, "--size", "tiny", "--out", "o", "--tune-set", "mixed",
                      "--stage", "2")
    assert proc.returncode == 1 and "needs dev_unseen or dev_neural data dirs" in proc.stderr, proc.stderr


def test_synth_lfr_ali_needs_a_lower_frame_rate_and_the_10ms_alignments(tmp_path: Path) -> None:
    common = ("--size", "tiny", "--out", "out", "--device", "cpu", "--stage", "5", "--stop-stage", "5",
              "--lfr-ali", "ten ms/ci_lstm")
    proc = run_script("recipes/synth/run.sh", tmp_path, *common)
    assert proc.returncode == 1
    assert "--lfr-ali needs --frame-subsampling K > 1" in proc.stderr
    proc = run_script("recipes/synth/run.sh", tmp_path, *common, "--frame-subsampling", "3")
    assert proc.returncode == 1
    assert f"--lfr-ali: {tmp_path}/ten ms/ci_lstm/ali_train/ali.yaml does not exist" in proc.stderr
    assert (tmp_path / "out/exp/synth_tiny_lfr3_ali10ms/log").is_dir()  # its own exp dir
