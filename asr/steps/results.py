"""Stage 10: the results table of one or more experiments."""

from __future__ import annotations

from pathlib import Path

import yaml

from asr.io import atomic_write_text

#: What a table of decodes written before scores.yaml recorded their convention says of PER.
OLD_PER_CONVENTION = "PER after the lang's score map"
SCORING_NOTE = ("PER: {per}; acoustic scale chosen on dev. "
                "Frame accuracy is on dev, against each model's own training targets mapped to "
                "its pdfs (column frame targets): the uniform split of the reference segmentation, "
                "or the realignment it was trained on. WER over the word graph HCLG (lexicon + word "
                "trigram); its acoustic scale and word insertion penalty chosen on dev. PER RNN: "
                "the RNN phone-sequence decoder (stage 9), its acoustic scale, LM weight and phone "
                "insertion penalty chosen on dev.")


UNSEEN_NOTE = ("unseen: the test_unseen set, spoken only by voices held out of training and dev "
               "(synthetic corpus: flite's awb by default); neural: the test_neural set, the neural "
               "voice's test speakers (piper's joe; word transcripts only); both scored with the "
               "settings tuned on dev (or on the mixed dev set, --tune-set mixed).")


def _scores(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


def _fmt(value, spec: str = ".2f") -> str:
    return "—" if value is None else format(value, spec)


def _train_seconds(exp: Path) -> float | None:
    """Seconds the model's training epochs took (history.yaml), or None."""
    hist = exp / "history.yaml"
    if not hist.is_file():
        return None
    return sum(float(r.get("seconds", 0)) for r in yaml.safe_load(hist.read_text()) or [])


def _targets(exp: Path) -> str:
    """What the model's targets came from (targets.yaml): uniform or realigned, and
    whether its LSTM layers started from another model's."""
    info = _scores(exp / "targets.yaml")
    if info.get("alignment") is None:
        return "—"
    kind = "uniform" if isinstance(info["alignment"], str) else "realigned"
    if info.get("criterion") == "mmi":
        return f"{kind}, MMI from {Path(info['init_from']).name}"
    return kind + (f", init {Path(info['init_from']).name}" if info.get("init_from") else "")


def frame_targets(scores: dict) -> str:
    """What a decode's ``frame_acc`` was scored against (scores.yaml ``frame_acc_targets``),
    shortened for the table: ``uniform split`` or ``realignment <model>/<ali dir>``.
    Scores written before the key existed were against the uniform split."""
    if scores.get("frame_acc") is None:
        return "—"
    source = scores.get("frame_acc_targets", "uniform split")
    if source.startswith("realignment "):
        path = Path(source.partition(" ")[2])
        return f"realignment {path.parent.name}/{path.name}"
    return source


def results_table(exp_dirs: list[Path], stage_times: Path | None = None,
                  out: Path | None = None) -> str:
    """A Markdown table, one row per system: pdfs, targets, PER on dev, test
    and the held-out-voice set test_unseen (HMM), test PER of the framewise
    argmax, dev frame accuracy and the targets it is scored against, acoustic scale, PER of the RNN phone-sequence
    decoder on the three sets, WER on dev, test, test_unseen and the neural
    voice's test_neural, training seconds; then seconds per recipe stage. Written to each
    experiment's ``RESULTS.md`` and to ``out``."""
    lines = ["| system | pdfs | targets | dev PER | test PER | unseen PER | test PER argmax | dev frame acc "
             "| frame targets | acwt | dev PER RNN | test PER RNN | unseen PER RNN | dev WER | test WER | unseen WER "
             "| neural WER | train s |",
             "|---" * 18 + "|"]
    conventions = []
    for exp in map(Path, exp_dirs):
        per = {s: _scores(exp / f"decode_{s}" / "scores.yaml") for s in ("dev", "test", "test_unseen")}
        rnn = {s: _scores(exp / f"decode_rnn_{s}" / "scores.yaml").get("per") for s in ("dev", "test", "test_unseen")}
        wer = {s: _scores(exp / f"decode_words_{s}" / "scores.yaml").get("wer")
               for s in ("dev", "test", "test_unseen", "test_neural")}
        test = per["test"]
        conventions += [per["dev"]["per_convention"]] if per["dev"].get("per_convention") else []
        lines.append(f"| {exp.name} | {_fmt(test.get('num_pdfs'), 'd')} | {_targets(exp)} | "
                     f"{_fmt(per['dev'].get('per'))} | {_fmt(test.get('per'))} | {_fmt(per['test_unseen'].get('per'))} | "
                     f"{_fmt(test.get('per_argmax'))} | {_fmt(per['dev'].get('frame_acc'))} | {frame_targets(per['dev'])} | "
                     f"{_fmt(test.get('acwt'), 'g')} | {_fmt(rnn['dev'])} | {_fmt(rnn['test'])} | "
                     f"{_fmt(rnn['test_unseen'])} | {_fmt(wer['dev'])} | {_fmt(wer['test'])} | "
                     f"{_fmt(wer['test_unseen'])} | {_fmt(wer['test_neural'])} | {_fmt(_train_seconds(exp), '.0f')} |")
    convention = " / ".join(dict.fromkeys(conventions)) or OLD_PER_CONVENTION
    lines += ["", SCORING_NOTE.format(per=convention), "", UNSEEN_NOTE]
    if stage_times and Path(stage_times).is_file():
        lines += ["", "| stage | seconds |", "|---|---|"]
        for row in Path(stage_times).read_text().splitlines():
            if row.strip():
                name, secs = row.rsplit("\t", 1)
                lines.append(f"| {name} | {secs} |")
    table = "\n".join(lines)
    targets = [exp / "RESULTS.md" for exp in map(Path, exp_dirs) if exp.is_dir()]
    for path in targets + ([Path(out)] if out else []):
        atomic_write_text(path, f"# Results: {path.parent.name}\n\n{table}\n")
    return table
