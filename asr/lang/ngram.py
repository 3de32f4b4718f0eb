"""N-gram language models over tokens (phones or words): training an ARPA
model with kaldingram, symbol tables, and ARPA → G.fst with kaldilm.

Both external tools are run in a child process: kaldingram prints progress
bars and asserts on bad input, and kaldilm aborts the whole process (SIGABRT)
on an ARPA file or symbol table it does not like. Inputs are validated first,
so that the usual mistakes get a clear :class:`GraphError` naming the file.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import kaldifst

from asr.errors import GraphError
from asr.io import atomic_path
from asr.symbols import BOS, DISAMBIG, EOS, RESERVED, read_symbol_table

logger = logging.getLogger(__name__)

#: Wall-clock limit for one child process (training or conversion), seconds.
SUBPROCESS_TIMEOUT_S = 3600
#: How much of a failing child's stderr goes into the error message.
STDERR_TAIL_CHARS = 2000

_NGRAM_COUNT_RE = re.compile(r"^ngram\s+(\d+)\s*=\s*(\d+)\s*$")


def _stderr_tail(text: str) -> str:
    """Last lines of a child's stderr, without progress-bar noise."""
    lines = [ln for ln in text.replace("\r", "\n").splitlines() if ln.strip() and "%|" not in ln]
    return "\n".join(lines)[-STDERR_TAIL_CHARS:]


def run_child(args: list[str], what: str, path: Path) -> None:
    """Run ``python args...``; raise GraphError naming ``path`` if it fails or crashes."""
    try:
        proc = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                              timeout=SUBPROCESS_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise GraphError(f"{path}: {what} timed out after {SUBPROCESS_TIMEOUT_S} s") from exc
    if proc.returncode != 0:
        how = f"was killed by signal {-proc.returncode}" if proc.returncode < 0 \
            else f"exited with status {proc.returncode}"
        raise GraphError(f"{path}: {what} {how}:\n{_stderr_tail(proc.stderr)}")


def check_training_text(text_path: Path) -> int:
    """Return the number of tokens in ``text_path``; GraphError if missing, empty
    or using a reserved symbol."""
    if not text_path.is_file():
        raise GraphError(f"{text_path}: LM training text does not exist")
    num_tokens = 0
    with open(text_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            tokens = line.split()
            bad = RESERVED.intersection(tokens)
            if bad:
                raise GraphError(f"{text_path}:{lineno}: reserved symbol {sorted(bad)[0]!r} "
                                 f"in LM training text")
            num_tokens += len(tokens)
    if num_tokens == 0:
        raise GraphError(f"{text_path}: LM training text is empty (no tokens)")
    return num_tokens


def read_arpa_counts(arpa_path: Path) -> dict[int, int]:
    """Parse the ``\\data\\`` header of an ARPA file: {order: number of n-grams}.

    Raises:
        GraphError: if the file is missing, empty, lacks ``\\data\\`` or its
            counts, has no unigram other than ``<s>``/``</s>``, or lacks the
            n-gram sections its header announces.
    """
    if not arpa_path.is_file():
        raise GraphError(f"{arpa_path}: ARPA file does not exist")
    text = arpa_path.read_text(encoding="utf-8", errors="replace")
    lines = [ln.strip() for ln in text.splitlines()]
    if not any(lines):
        raise GraphError(f"{arpa_path}: ARPA file is empty")
    if "\\data\\" not in lines:
        raise GraphError(f"{arpa_path}: not an ARPA file (no \\data\\ line)")
    counts: dict[int, int] = {}
    for ln in lines[lines.index("\\data\\") + 1:]:
        m = _NGRAM_COUNT_RE.match(ln)
        if m:
            counts[int(m.group(1))] = int(m.group(2))
        elif ln:
            break
    if not counts or counts.get(1, 0) == 0:
        raise GraphError(f"{arpa_path}: ARPA header has no n-gram counts (ngram 1=0)")
    for order, n in counts.items():
        if n > 0 and f"\\{order}-grams:" not in lines:
            raise GraphError(f"{arpa_path}: header announces {n} {order}-grams "
                             f"but there is no \\{order}-grams: section")
    if "\\end\\" not in lines:
        raise GraphError(f"{arpa_path}: ARPA file is truncated (no \\end\\ line)")
    if not _unigram_tokens(lines) - {BOS, EOS}:
        raise GraphError(f"{arpa_path}: ARPA file has no unigram besides {BOS} and {EOS}")
    return counts


def _unigram_tokens(lines: list[str]) -> set[str]:
    """The tokens of the ``\\1-grams:`` section of an ARPA file's stripped lines."""
    tokens: set[str] = set()
    start = lines.index("\\1-grams:") + 1
    for ln in lines[start:]:
        if ln.startswith("\\"):
            break
        fields = ln.split()
        if len(fields) >= 2:
            tokens.add(fields[1])
    return tokens


def backoffs_above_one(arpa_path: Path) -> list[str]:
    """The histories of an ARPA file whose backoff weight is above 1 (log10 above 0), in file
    order. G's backoff arc of such a history has a negative cost, and a word reached through
    it can come out cheaper than the n-gram the file gives it: over HMMs a phone crosses in one
    frame, a decoder can then re-enter a phone on every frame (a small LM's trap)."""
    out: list[str] = []
    order = 0
    with open(arpa_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            m = re.match(r"^\\(\d+)-grams:$", line)
            if m:
                order = int(m.group(1))
                continue
            if line.startswith("\\") or not line or not order:
                continue
            fields = line.split()
            if len(fields) == order + 2 and float(fields[-1]) > 0:
                out.append(" ".join(fields[1:-1]))
    return out


def arpa_vocabulary(arpa_path: Path) -> set[str]:
    """The unigram tokens of a valid ARPA file, without ``<s>`` and ``</s>``."""
    read_arpa_counts(arpa_path)
    lines = [ln.strip() for ln in Path(arpa_path).read_text(encoding="utf-8").splitlines()]
    return _unigram_tokens(lines) - {BOS, EOS}


def train_ngram(text_path: Path, arpa_path: Path, order: int) -> None:
    """Train a Kneser-Ney back-off n-gram model with kaldingram.

    Args:
        text_path: one sentence per line, tokens separated by spaces (no
            utterance ids).
        arpa_path: the ARPA file to write (atomically).
        order: n-gram order (1..5), always passed to kaldingram (its default is 4).

    Raises:
        GraphError: bad order, missing or empty text, or a failed/invalid run.
    """
    text_path, arpa_path = Path(text_path), Path(arpa_path)
    if not 1 <= order <= 5:
        raise GraphError(f"{arpa_path}: n-gram order must be 1..5, got {order}")
    num_tokens = check_training_text(text_path)
    with atomic_path(arpa_path) as tmp:
        run_child(["-m", "kaldingram.cli", "train", "--ngram-order", str(order),
                    "--text", str(text_path), "--lm", str(tmp)],
                   f"kaldingram training on {text_path}", arpa_path)
        try:
            counts = read_arpa_counts(tmp)
        except GraphError as exc:
            raise GraphError(f"{arpa_path}: kaldingram wrote an invalid ARPA file "
                             f"from {text_path}: {exc}") from exc
    logger.info("trained %d-gram LM on %s (%d tokens): %s -> %s", order, text_path,
                num_tokens, counts, arpa_path)


_ARPA2FST_CHILD = """
import sys, kaldilm, kaldifst
arpa, syms, out = sys.argv[1:4]
text = kaldilm.arpa2fst(arpa, '', disambig_symbol='#0', read_symbol_table=syms)
fst = kaldifst.compile(text, acceptor=False)
kaldifst.arcsort(fst, sort_type='ilabel')
if fst.num_states == 0 or not fst.write(out):
    sys.exit(f'G from {arpa} is empty or could not be written to {out}')
"""


def arpa_to_g(arpa_path: Path, symbols_path: Path, g_path: Path) -> None:
    """Convert an ARPA model to G.fst (input-label sorted) with kaldilm.

    ``<s>``/``</s>`` become epsilons; backoff arcs carry ``#0`` on the input
    side and epsilon on the output side. The conversion runs in a child
    process, so a kaldilm abort becomes a GraphError.

    Raises:
        GraphError: invalid ARPA or table (no ``#0``), crash, or empty G.
    """
    arpa_path, symbols_path, g_path = Path(arpa_path), Path(symbols_path), Path(g_path)
    vocab = arpa_vocabulary(arpa_path)
    table = read_symbol_table(symbols_path)
    if DISAMBIG not in table:
        raise GraphError(f"{symbols_path}: symbol table has no {DISAMBIG}")
    unknown = sorted(vocab - table.keys())
    if unknown:
        raise GraphError(f"{arpa_path}: {len(unknown)} token(s) not in {symbols_path} "
                         f"(kaldilm would drop them), e.g. {unknown[:5]}")
    with atomic_path(g_path) as tmp:
        run_child(["-c", _ARPA2FST_CHILD, str(arpa_path), str(symbols_path), str(tmp)],
                   f"kaldilm conversion of {arpa_path} with {symbols_path}", g_path)
        g = kaldifst.StdVectorFst.read(str(tmp))
        if g is None or g.num_states == 0:
            raise GraphError(f"{g_path}: G converted from {arpa_path} is empty or unreadable")
    logger.info("G from %s: %d states -> %s", arpa_path, g.num_states, g_path)
