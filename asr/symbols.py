"""OpenFst symbol tables (``symbol id`` per line), read and written with
``kaldifst.SymbolTable``.

One kind of table serves every stage: ``phones.txt`` in the lang dir, beside
the decoding graph in a model bundle, and as the model's phone list. It holds
``<eps>`` at 0, the symbols at ids 1..N in pdf order, then the
disambiguation symbols (``#0`` …).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import kaldifst

from asr.errors import GraphError
from asr.io import atomic_path

EPS = "<eps>"
#: Disambiguation symbol on the input side of G's backoff arcs.
DISAMBIG = "#0"
#: Sentence boundary symbols written by kaldingram (epsilons in G).
BOS, EOS = "<s>", "</s>"
#: Symbols a user's token may not be (they have a fixed meaning in the tables).
RESERVED = frozenset({EPS, DISAMBIG, BOS, EOS})
#: The unknown-word token of KenLM / SRILM models built with ``-unk``.
UNK = "<unk>"
#: LM tokens that stand for no word (an unknown word, noise), compared lower-cased:
#: ``<unk>`` / ``<UNK>`` and Kaldi's ``<SPOKEN_NOISE>``. They are words of G and L
#: (pronounced with the lang's garbage phone), never get a letter-to-sound
#: pronunciation, and are left out of transcripts unless asked for.
GARBAGE_WORDS = frozenset({UNK, "<spoken_noise>"})


def is_garbage_word(word: str) -> bool:
    """True for the LM's unknown-word / noise tokens (:data:`GARBAGE_WORDS`, any case)."""
    return word.lower() in GARBAGE_WORDS



def is_disambig(symbol: str) -> bool:
    """True for disambiguation symbols: ``#`` followed by digits."""
    return symbol.startswith("#") and symbol[1:].isdigit()


def _check_symbols(symbols: Sequence[str], path: Path) -> None:
    """GraphError on an empty list, a duplicate, a reserved or a blank symbol."""
    if not symbols:
        raise GraphError(f"{path}: no symbols to write")
    seen: set[str] = set()
    for s in symbols:
        if not s or any(c.isspace() for c in s):
            raise GraphError(f"{path}: symbol {s!r} is blank or contains whitespace")
        if s in RESERVED or is_disambig(s):
            raise GraphError(f"{path}: symbol {s!r} is reserved")
        if s in seen:
            raise GraphError(f"{path}: duplicate symbol {s!r}")
        seen.add(s)


def write_symbol_table(symbols: Sequence[str], path: Path, num_disambig: int = 1) -> None:
    """Write ``<eps>`` 0, ``symbols`` at 1..N and ``#0`` … ``#k-1`` after them (atomically).

    Raises:
        GraphError: on an empty list, a duplicate, a reserved or a blank
            symbol, or when the table cannot be written.
    """
    path = Path(path)
    _check_symbols(symbols, path)
    table = kaldifst.SymbolTable()
    for s in [EPS, *symbols, *(f"#{k}" for k in range(num_disambig))]:
        table.add_symbol(s)
    with atomic_path(path) as tmp:
        if not table.write_text(str(tmp)):
            raise GraphError(f"{path}: could not write the symbol table")


def read_symbol_table(path: Path) -> dict[str, int]:
    """Read a symbol table into {symbol: id}.

    Raises:
        GraphError: missing or malformed file (the message names it), or
            ``<eps>`` not at 0.
    """
    path = Path(path)
    if not path.is_file():
        raise GraphError(f"{path}: symbol table does not exist")
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if fields and (len(fields) != 2 or not fields[1].isdigit()):
            raise GraphError(f"{path}:{lineno}: expected 'symbol id', got {line!r}")
    table = kaldifst.SymbolTable.read_text(str(path))
    if table is None:
        raise GraphError(f"{path}: not a readable symbol table")
    symbols = {}
    for key in range(table.available_key()):
        sym = table.find(key)
        if sym:
            symbols[sym] = key
    if len(set(symbols.values())) != len(symbols) or len(symbols) != _count_entries(path):
        raise GraphError(f"{path}: duplicate symbol or id")
    if symbols.get(EPS) != 0:
        raise GraphError(f"{path}: symbol table must map {EPS} to 0")
    return symbols


def _count_entries(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.split())


def read_phone_table(path: Path) -> list[str]:
    """The phones of a ``phones.txt`` symbol table, in id (pdf) order.

    Raises:
        GraphError: unreadable table, or ids that are not ``<eps>`` 0, the
            phones at 1..N, then only disambiguation symbols.
    """
    table = read_symbol_table(path)
    ordered = sorted(table.items(), key=lambda kv: kv[1])
    if [i for _, i in ordered] != list(range(len(ordered))):
        raise GraphError(f"{path}: ids are not consecutive from 0")
    phones = [s for s, _ in ordered[1:] if not is_disambig(s)]
    if not phones or [s for s, _ in ordered[1:len(phones) + 1]] != phones:
        raise GraphError(f"{path}: expected <eps>, the phones, then #0 …; found no phones "
                         f"or a disambiguation symbol among them")
    return phones
