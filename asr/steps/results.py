"""Stage 10: the results table of one or more experiments."""

from __future__ import annotations

from pathlib import Path

import yaml

from asr.io import atomic_write_text

SCORING_NOTE = ("PER on 39 phones after Kaldi's 60-48-39 folding; silence is scored "
                "(as in Kaldi's TIMIT recipe since 2014); acoustic scale chosen on dev.")


def _scores(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


def _fmt(value, spec: str = ".2f") -> str:
    return "—" if value is None else format(value, spec)


def results_table(exp_dirs: list[Path], stage_times: Path | None = None) -> str:
    """A Markdown table: PER on dev and test (HMM and argmax), frame accuracy,
    acoustic scale; then seconds per recipe stage. Also written to each
    experiment's ``RESULTS.md``."""
    lines = ["| system | dev PER | test PER | test PER argmax | test frame acc | acwt |",
             "|---|---|---|---|---|---|"]
    for exp in map(Path, exp_dirs):
        dev, test = _scores(exp / "decode_dev" / "scores.yaml"), _scores(exp / "decode_test" / "scores.yaml")
        lines.append(f"| {exp.name} | {_fmt(dev.get('per'))} | {_fmt(test.get('per'))} | "
                     f"{_fmt(test.get('per_argmax'))} | {_fmt(test.get('frame_acc'))} | {_fmt(test.get('acwt'), 'g')} |")
    lines += ["", SCORING_NOTE]
    if stage_times and Path(stage_times).is_file():
        lines += ["", "| stage | seconds |", "|---|---|"]
        for row in Path(stage_times).read_text().splitlines():
            if row.strip():
                name, secs = row.rsplit("\t", 1)
                lines.append(f"| {name} | {secs} |")
    table = "\n".join(lines)
    for exp in map(Path, exp_dirs):
        if exp.is_dir():
            atomic_write_text(exp / "RESULTS.md", f"# Results: {exp.name}\n\n{table}\n")
    return table
