"""Small file helpers shared by every writer and loader: hashes, atomic writes, and the
versioned JSON metadata that dataset headers, ONNX exports and deploy bundles carry."""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextmanager
def atomic_replace(path, suffix: str = ""):
    """``with atomic_replace(path) as tmp: write(tmp)``: the file written to ``tmp`` replaces
    ``path`` in one rename when the block succeeds, and is removed when it fails, so readers
    never see half a file. ``suffix`` ends the temporary name for writers that insist on one
    (``np.savez`` appends ``.npz``); without it the name ends in ``.tmp``, which no loader's
    glob (``*.h5``, ``*.json``) takes for a finished file."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path, text: str, durable: bool = False) -> None:
    """Write via a temporary file and rename, so readers never see half a file.

    ``durable``: also fsync the file before the rename and its directory after, so the new
    content survives a power cut or a kill, not only a crash of this process."""
    path = Path(path)
    with atomic_replace(path) as tmp:
        with open(tmp, "w", encoding="utf8") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
    if durable:
        fsync_dir(path.parent)


def fsync_dir(path) -> None:
    """Make a directory's entries (files created or renamed in it) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_format_json(path, fmt: str, version: int, *, load_error: type[Exception],
                     format_error: type[Exception] | None = None, what: str = "metadata",
                     missing_hint: str = "") -> dict:
    """Read a JSON file that must say ``{"format": fmt, "version": version, ...}``.

    A missing or unparsable file raises ``load_error``; another format or version raises
    ``format_error`` (default: ``load_error``); every message starts with the path.
    """
    path = Path(path)
    format_error = format_error or load_error
    if not path.exists():
        raise load_error(f"{path}: missing{f' ({missing_hint})' if missing_hint else ''}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise load_error(f"{path}: corrupt {what} ({e})") from e
    found = data.get("format") if isinstance(data, dict) else None
    if found != fmt:
        raise format_error(f"{path}: format is {found!r}, expected {fmt!r}")
    if data.get("version") != version:
        raise format_error(f"{path}: version {data.get('version')}, this Parrot reads {version}")
    return data
