"""Atomic file writing (a temp file in the same directory, then a rename,
so an interrupted run never leaves a half-written file behind) and file hashes."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, TypeVar, Union

import yaml

PathLike = Union[str, Path]
T = TypeVar("T")


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; use the usual mode
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_yaml_config(cls: type[T], path: PathLike, what: str) -> T:
    """Build the dataclass ``cls`` from the YAML mapping in ``path``.

    Raises:
        ModelError: the file is missing, is not a YAML mapping, or has keys
            or values ``cls`` rejects; the message names the file.
    """
    from asr.errors import ModelError

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: {what} not found")
    try:
        fields = yaml.safe_load(path.read_text())
        if not isinstance(fields, dict):
            raise ValueError("not a YAML mapping")
        return cls(**fields)
    except (yaml.YAMLError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: bad {what} ({exc})") from None


def dataclass_defaults(cls: type) -> dict:
    """The default of each field of the dataclass ``cls`` that has one: how a config
    file written before the field existed reads it."""
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
