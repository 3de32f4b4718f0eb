"""The README and docs/ stay true to the code: the Layout section names every
module, bench script and recipe (and only paths that exist), every relative
link resolves, and every command line shown parses with the real parser.

Fast (no command is run): the `asr` lines are parsed with ``asr.cli``'s
argparse parser, recipe options are read from each script's ``option_names``,
bench options from the script's source.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINKED_PAGES = [README, *DOCS, ROOT / "data" / "README.md", ROOT / "exp" / "README.md",
                ROOT / "recipes" / "synth" / "RESULTS.md"]
COMMAND_PAGES = [README, *DOCS]
MAX_README_LINES = 300


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# --- Markdown helpers ---------------------------------------------------------

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)


def strip_fences(text: str) -> str:
    """The text with its fenced code blocks blanked out (line numbers kept)."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def section(text: str, title: str) -> str:
    """The body of the ``## title`` section, up to the next level-1/2 heading."""
    m = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^#{{1,2}} |\Z)", text, re.S | re.M)
    assert m, f"README has no '## {title}' section"
    return m.group(1)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    h = heading.strip().lower().replace("`", "")
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = strip_fences(path.read_text(encoding="utf-8"))
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} +(.+?)\s*#*\s*$", text, re.M)}


SHELL_OPERATORS = {"|", "||", "&&", ";", "&"}


def command_lines(path: Path):
    """(line number, shell words) of each command in the page's fenced code blocks."""
    text = path.read_text(encoding="utf-8")
    for m in FENCE.finditer(text):
        if re.match(r"```(yaml|yml|json|text|python)\b", m.group(0)):
            continue
        first = text.count("\n", 0, m.start(1)) + 1
        logical, start = "", first
        for offset, line in enumerate(m.group(1).splitlines()):
            if not logical:
                start = first + offset
            if line.rstrip().endswith("\\"):
                logical += line.rstrip()[:-1] + " "
                continue
            logical += line
            words = shlex.split(logical, comments=True)
            logical = ""
            if words and words[0] == "$":
                words = words[1:]
            for i, w in enumerate(words):  # the command ends at a redirection, pipe or list operator
                if w in SHELL_OPERATORS or re.fullmatch(r"\d?>>?|<", w):
                    words = words[:i]
                    break
            if words:
                yield start, words


def inline_code(path: Path):
    """(line number, text) of each inline code span outside fenced blocks."""
    text = strip_fences(path.read_text(encoding="utf-8"))
    for m in re.finditer(r"(?<!`)`([^`\n]+(?:\n[^`\n]+)?)`(?!`)", text):
        yield text.count("\n", 0, m.start()) + 1, m.group(1)


# --- the Layout section -------------------------------------------------------

NAME = re.compile(r"(?<![\w/.+-])([A-Za-z_][\w.-]*(?:/[\w.-]+)*(?:\.py|\.sh|\.md|/))(?![\w])")


def layout_entries() -> list[tuple[str, list[str]]]:
    """(entry path, names in its description) per entry of the Layout block.

    An entry starts on a block line (indented 4) whose text starts at once;
    more deeply indented lines continue the entry above."""
    body = section(README.read_text(encoding="utf-8"), "Layout")
    entries: list[tuple[str, str]] = []
    for line in body.splitlines():
        if not line.startswith("    ") or not line.strip():
            continue
        text = line[4:]
        if not text[0].isspace():
            head, _, desc = text.partition(" ")
            entries.append((head, desc))
        else:
            assert entries, f"Layout: continuation line before any entry: {line!r}"
            entries[-1] = (entries[-1][0], entries[-1][1] + " " + text.strip())
    assert entries, "README's Layout section has no indented block"
    return [(head, NAME.findall(desc.replace("`", " "))) for head, desc in entries]


def resolve_layout_name(entry: str, name: str) -> Path | None:
    """A name from an entry's description, relative to the entry's directory or the root."""
    base = ROOT / entry if entry.endswith("/") else (ROOT / entry).parent
    for candidate in (base / name, ROOT / name):
        if candidate.exists():
            return candidate
    return None


def layout_paths() -> set[Path]:
    found = set()
    for entry, names in layout_entries():
        found.add((ROOT / entry).resolve())
        for name in names:
            path = resolve_layout_name(entry, name)
            if path is not None:
                found.add(path.resolve())
    return found


def test_layout_names_only_existing_paths():
    missing = []
    for entry, names in layout_entries():
        if not (ROOT / entry).exists():
            missing.append(entry)
        missing += [f"{name} (in {entry})" for name in names if resolve_layout_name(entry, name) is None]
    assert not missing, f"README's Layout names paths that do not exist: {missing}"


def test_layout_names_every_module_script_and_recipe():
    named = layout_paths()
    expected = [p for p in (ROOT / "asr").rglob("*.py")
                if p.name != "__init__.py" and "__pycache__" not in p.parts]
    expected += sorted((ROOT / "bench").glob("*.py"))
    expected += sorted((ROOT / "recipes").glob("*/run.sh"))
    expected += sorted((ROOT / "recipes" / "utils").glob("*.sh"))
    absent = sorted(rel(p) for p in expected if p.resolve() not in named)
    assert not absent, f"README's Layout section does not name: {absent}"


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (at most {MAX_README_LINES}): move detail to docs/"


# --- links --------------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


@pytest.mark.parametrize("page", LINKED_PAGES, ids=rel)
def test_relative_links_resolve(page: Path):
    broken = []
    text = strip_fences(page.read_text(encoding="utf-8"))
    for m in LINK.finditer(text):
        target = m.group(1)
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part) if path_part else page
        line = text.count("\n", 0, m.start()) + 1
        if not dest.exists():
            broken.append(f"line {line}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"line {line}: {target} (no heading with that anchor)")
    assert not broken, f"{rel(page)}: broken links: {broken}"


# --- command lines ------------------------------------------------------------

def asr_parser() -> argparse.ArgumentParser:
    from asr.cli import get_parser

    return get_parser()


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("asr's parser has no subcommands")


def primary_subcommands(parser: argparse.ArgumentParser) -> list[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return [a.dest for a in action._choices_actions]
    raise AssertionError("asr's parser has no subcommands")


def deprecated_options(parser: argparse.ArgumentParser) -> set[str]:
    """Options kept only as old spellings: hidden from --help or marked deprecated."""
    old = set()
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or getattr(action, "deprecated", False):
            old.update(s for s in action.option_strings if s.startswith("--") and s != "--help")
    return old


def parse_error(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            if exc.code:
                return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {exc.code}"
    return None


def recipe_options(script: Path) -> set[str]:
    m = re.search(r'^option_names="([^"]*)"', script.read_text(encoding="utf-8"), re.M)
    assert m, f"{rel(script)} declares no option_names"
    return {"--" + name.replace("_", "-") for name in m.group(1).split()} | {"--help"}


def check_recipe_line(words: list[str]) -> list[str]:
    script = ROOT / words[0]
    if not script.is_file():
        return [f"{words[0]}: no such script"]
    known, problems, i = recipe_options(script), [], 1
    while i < len(words):
        word = words[i]
        if not word.startswith("--"):
            problems.append(f"{word!r}: the recipes take --option value pairs only")
            break
        name = word.split("=", 1)[0]
        if name not in known:
            problems.append(f"{name}: not an option of {words[0]}")
        i += 1 if ("=" in word or name == "--help") else 2
    return problems


def check_bench_line(words: list[str]) -> list[str]:
    script = ROOT / words[1]
    if not script.is_file():
        return [f"{words[1]}: no such script"]
    source = script.read_text(encoding="utf-8")
    return [f"{w}: not an option of {words[1]}" for w in words[2:]
            if re.fullmatch(r"--[a-z][\w-]*", w.split("=")[0]) and f'"{w.split("=")[0]}"' not in source]


def check_make_line(words: list[str]) -> list[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    problems = []
    for w in words[1:]:
        if "=" in w:
            var = w.split("=", 1)[0]
            if not re.search(rf"^{re.escape(var)}\s*[?:]?=", makefile, re.M):
                problems.append(f"{var}: not a Makefile variable")
        elif not w.startswith("-") and not re.search(rf"^{re.escape(w)}:", makefile, re.M):
            problems.append(f"{w}: not a Makefile target")
    return problems


@pytest.mark.parametrize("page", COMMAND_PAGES, ids=rel)
def test_fenced_commands_parse(page: Path):
    subs = subparsers(asr_parser())
    problems = []
    for line, words in command_lines(page):
        where = f"line {line}: {' '.join(words)}"
        if words[0] == "asr":
            error = parse_error(asr_parser(), words[1:])
            if error:
                problems.append(f"{where}\n    -> {error}")
            sub = next((subs[w] for w in words[1:] if w in subs), None)
            old = deprecated_options(sub) if sub else set()
            problems += [f"{where}\n    -> {w}: a deprecated spelling" for w in words if w.split("=")[0] in old]
        elif re.fullmatch(r"recipes/[\w-]+/run\.sh", words[0]):
            problems += [f"{where}\n    -> {p}" for p in check_recipe_line(words)]
        elif words[0] in ("python", "python3") and len(words) > 1 and words[1].startswith("bench/"):
            problems += [f"{where}\n    -> {p}" for p in check_bench_line(words)]
        elif words[0] == "make":
            problems += [f"{where}\n    -> {p}" for p in check_make_line(words)]
    assert not problems, f"{rel(page)}: commands that do not parse:\n" + "\n".join(problems)


GLOBAL_WITH_VALUE = {"--log-file"}


@pytest.mark.parametrize("page", COMMAND_PAGES, ids=rel)
def test_inline_asr_options_exist(page: Path):
    """Inline `asr <subcommand> ... --option` spans (placeholders allowed) name real options."""
    parser = asr_parser()
    subs = subparsers(parser)
    problems = []
    for line, span in inline_code(page):
        words = span.replace("[", " ").replace("]", " ").replace("|", " ").split()
        if not words or words[0] != "asr":
            continue
        i = 1
        while i < len(words) and words[i].startswith("-"):
            i += 2 if words[i] in GLOBAL_WITH_VALUE else 1
        if i == len(words):
            continue
        name = words[i]
        if name not in subs:
            if re.fullmatch(r"[a-z][a-z-]*", name):
                problems.append(f"line {line}: `{span}`: no subcommand {name!r}")
            continue
        sub = subs[name]
        old = deprecated_options(sub)
        for w in words[i + 1:]:
            opt = w.split("=")[0].rstrip(",.;:)")
            if not re.fullmatch(r"--[a-z][a-z0-9-]*", opt):
                continue
            if opt not in sub._option_string_actions:
                problems.append(f"line {line}: `{span}`: asr {name} has no option {opt}")
            elif opt in old:
                problems.append(f"line {line}: `{span}`: {opt} is a deprecated spelling")
    assert not problems, f"{rel(page)}:\n" + "\n".join(problems)


def test_cli_page_lists_every_subcommand():
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    absent = [name for name in primary_subcommands(asr_parser()) if f"`asr {name}`" not in text]
    assert not absent, f"docs/cli.md does not list: {absent}"
