"""The package has one order, bottom to top, and no module imports one above it (so there
is no import cycle between packages). Every import of ``asr`` counts, at module level or
inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Bottom to top. A module may import its own floor and the floors below it.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("asr", "asr.errors", "asr.io", "asr.audio", "asr.symbols"),  # files, audio, symbol tables
    ("asr.phones",),    # phone sets, topologies, the lang dir's phone files
    ("asr.score",),     # edit-distance alignment, PER / WER, reports
    ("asr.corpus",),    # data dirs and the corpus layouts that import to them
    ("asr.synth",),     # flite, prompts, the synthetic corpus
    ("asr.features",),  # front ends, CMVN, augmentation
    ("asr.hmm",),       # context dependency, transition ids, targets, alignments, trees
    ("asr.lang",),      # lexicon, LMs, graphs
    ("asr.nn",),        # networks and their training
    ("asr.decode",),    # decoders and the model bundle
    ("asr.steps",),     # recipe stages
    ("asr.cli",),       # the command
)


def floor(module: str) -> int:
    """The floor of a module (the longest package prefix listed)."""
    best, length = -1, -1
    for i, names in enumerate(FLOORS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > length \
                    and (name != "asr" or module == "asr"):
                best, length = i, len(name)
    return best


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def asr_imports(path: Path, package: list[str] | None = None) -> list[tuple[int, str]]:
    """(line, module) of every ``asr`` import in a file, relative imports resolved against
    its package (by default the one it lies in)."""
    if package is None:
        here = module_name(path).split(".")
        package = here if path.name == "__init__.py" else here[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "asr"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] == "asr":
                out.append((node.lineno, base))
    return out


MODULES = sorted((ROOT / "asr").rglob("*.py"))


def test_every_module_has_a_floor():
    assert [m for m in map(module_name, MODULES) if floor(m) < 0] == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_one_above_it(path):
    mine = floor(module_name(path))
    upward = [f"line {line}: {name} (floor {floor(name)}: {FLOORS[floor(name)][0]})"
              for line, name in asr_imports(path) if floor(name) > mine]
    assert not upward, f"{module_name(path)} (floor {mine}: {FLOORS[mine][0]}) imports above itself: {upward}"


def test_the_check_sees_an_upward_import(tmp_path):
    """The check itself: a file of a low floor that imports a high one, directly or relatively."""
    low = ROOT / "asr" / "phones" / "lang.py"
    assert floor(module_name(low)) == 1
    fake = tmp_path / "mod.py"
    fake.write_text("from asr.decode.hybrid import HybridModel\n"
                    "def f():\n    from ..decode import bundle\n")
    found = [name for _, name in asr_imports(fake, package=["asr", "phones"])]
    assert found == ["asr.decode.hybrid", "asr.decode"]
    assert all(floor(n) > floor(module_name(low)) for n in found)
