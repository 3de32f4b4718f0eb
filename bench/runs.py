"""Helpers the training benches share: run ``asr`` commands, decode the eval sets.

Training benches run one model at a time: two trainings sharing 2 cores each
run at a fraction of their speed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EVAL_SETS = ("dev", "test", "test_unseen")
os.environ["PATH"] = f"{BIN}:{os.environ['PATH']}"


def asr(log: Path, *args: str) -> None:
    """Run one ``asr`` command, its log in ``log``; exit with its log's tail when it fails."""
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([str(BIN / "asr"), "--log-file", str(log), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"asr {' '.join(args[:2])} failed:\n{proc.stderr[-3000:]}")


def epoch_counts(text: str) -> list[int]:
    """``"3,5,7"`` → [3, 5, 7] (ascending, each once); ValueError unless positive integers."""
    points = sorted({int(e) for e in text.split(",") if e})
    if not points or points[0] < 1:
        raise ValueError(f"{text!r}: epoch counts must be positive")
    return points


def recipe_conf(kind: str, size: str) -> Path:
    """The recipe's training YAML for model ``kind`` (ci, cd) on corpus ``size``, as
    ``recipes/synth/run.sh`` picks it: ``conf/<kind>_lstm_<size>.yaml`` where there is one."""
    conf = ROOT / "recipes/synth/conf"
    sized = conf / f"{kind}_lstm_{size}.yaml"
    return sized if sized.is_file() else conf / f"{kind}_lstm.yaml"


def copies_seconds(train: Path, names: list[str] | None = None) -> float:
    """Seconds spent making ``train``'s augmented copies ``names`` (default: every copy made)."""
    from asr.features.augment import copy_dir

    if names is None:
        files = list(copy_dir(train, "*").parent.glob("*/seconds"))
    else:
        files = [copy_dir(train, n) / "seconds" for n in names]
    return sum(float(f.read_text()) for f in files if f.is_file())


def write_conf(base: Path, path: Path, augment: dict | None = None, train: dict | None = None) -> Path:
    """``base`` (a training YAML) with its ``augment:`` section replaced by ``augment``
    (None keeps it) and ``train`` settings overriding its ``train:`` ones; written to ``path``."""
    conf = yaml.safe_load(base.read_text())
    if augment is not None:
        conf.pop("augment", None)
        if augment:
            conf["augment"] = augment
    conf["train"] = {**conf.get("train", {}), **(train or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(conf, sort_keys=False))
    return path


def decode_eval_sets(model: Path, data: Path, graph: Path, logs: Path, device: str = "auto",
                     sets: tuple[str, ...] = EVAL_SETS) -> dict[str, float]:
    """Decode ``sets`` of ``data`` with ``model`` (the acoustic scale tuned on dev, which
    comes first, over the phone graph ``graph``, an HCG.fst; a set decoded already is read
    back) → {set: PER %}."""
    for name in sets:
        if not (model / f"decode_{name}/scores.yaml").is_file():
            tune = ["--graph-dir", str(graph.parent), "--tune"] if name == "dev" else []
            asr(logs.with_name(f"{logs.name}.decode_{name}.log"), "decode", str(model), str(data / name),
                str(model / f"decode_{name}"), "--device", device, *tune)
    return {n: yaml.safe_load((model / f"decode_{n}/scores.yaml").read_text())["per"] for n in sets}


def snapshot(model: Path, dst: Path) -> None:
    """Copy ``model``'s bundle (not its epoch checkpoints, points or decodes) to ``dst``."""
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(model, tmp, ignore=shutil.ignore_patterns("epoch-*.pt", "e[0-9]*", "decode_*"))
    tmp.rename(dst)


def epoch_point(model: Path, base_conf: Path, train: Path, data: Path, graph: Path, epochs: int,
                device: str = "auto", train_opts: tuple[str, ...] = ()) -> dict:
    """Train ``model`` on ``train`` (dev: ``data``/dev) with ``base_conf`` on to ``epochs``,
    resuming from its last checkpoint (a run continued to more epochs is the run that had
    asked for them: the learning-rate schedule does not depend on the epoch count), keep
    that bundle as ``model/e<epochs>``, decode ``data``'s eval sets with it (phone graph
    ``graph``) → {set: PER %, epochs_run, train_s, dev_frame_acc}. A point kept is reused.
    ``train_opts``: more ``asr train`` options (a CD model's tree and alignments)."""
    point = model / f"e{epochs}"
    if not (point / "final.pt").is_file():
        conf = write_conf(base_conf, model.parent / "conf" / f"{model.name}_e{epochs}.yaml", train={"epochs": epochs})
        asr(model.parent / f"{model.name}.train.log", "train", str(train), str(data / "dev"), str(model),
            "--lang", str(data / "lang"), "--conf", str(conf), "--device", device, *train_opts)
        snapshot(model, point)
    per = decode_eval_sets(point, data, graph, model.parent / f"{model.name}_e{epochs}", device)
    history = yaml.safe_load((point / "history.yaml").read_text())
    return {**per, "epochs_run": len(history), "train_s": sum(r["seconds"] for r in history),
            "dev_frame_acc": 100 * history[-1]["dev_frame_acc"]}


def feature_variant(data: Path, name: str, make_feats_opts: list[str], sets: tuple[str, ...] = ("train",) + EVAL_SETS) -> Path:
    """Copies of ``data``'s data dirs ``sets`` under ``data/<name>/``, their features
    recomputed with ``asr make-feats`` options ``make_feats_opts`` (made once; CMVN over
    speech frames, as the recipes compute it, unless the options give ``--cmvn``)."""
    out = data / name
    for part in sets:
        dst = out / part
        if not (dst / "feats.yaml").is_file():
            dst.mkdir(parents=True, exist_ok=True)
            for f in (data / part).iterdir():
                if f.is_file() and f.name not in ("feats.scp", "cmvn.scp", "feats.yaml"):
                    shutil.copy(f, dst / f.name)
            cmvn = [] if "--cmvn" in make_feats_opts else ["--cmvn", "speech"]
            asr(out / "feats.log", "make-feats", *cmvn, *make_feats_opts, str(out / "feats"), str(dst))
    return out


def pick_rows(parser, text: str, known) -> list[str]:
    """The comma-separated row names of ``text``; a parser error naming the unknown ones."""
    rows = [r for r in text.split(",") if r]
    unknown = [r for r in rows if r not in known]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {list(known)}")
    return rows


def report(path: Path, title: str, text: str, note: str) -> None:
    """Print the table ``text`` and write it to ``path`` under ``title``, ``note`` below it."""
    print(text)
    path.write_text(f"# {title}\n\n{text}\n\n{note}\n")
