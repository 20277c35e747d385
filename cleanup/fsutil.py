"""Files the tool writes: atomically, never through a symlink, checked before the run."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import UsageError


def atomic_write(path: str | Path, data: bytes | Iterable[bytes], *, mode: int = 0o644) -> None:
    """Write ``data`` (bytes, or chunks of them) to ``path`` so a reader sees the old
    file or the new one, never half.

    The temporary file lives in the same directory (``os.replace`` is atomic only there)
    and is fsynced before the rename. Chunks are written as they come, so a large
    document is never held whole.
    """
    target = Path(path)
    fd, temporary = tempfile.mkstemp(dir=target.parent or Path("."), prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as stream:
            for chunk in (data,) if isinstance(data, bytes) else data:
                stream.write(chunk)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def json_chunks(document: object, **options: Any) -> Iterator[bytes]:
    """``json.dumps(document, **options) + "\\n"``, UTF-8, in chunks of about 64 KiB."""
    pending: list[str] = []
    size = 0
    for piece in json.JSONEncoder(**options).iterencode(document):
        pending.append(piece)
        size += len(piece)
        if size >= 65536:
            yield "".join(pending).encode()
            pending, size = [], 0
    pending.append("\n")
    yield "".join(pending).encode()


def write_json(document: object, path: str, **options: Any) -> None:
    """``document`` as JSON to ``path`` atomically, or to stdout for ``-``; in chunks,
    never held whole (a summary names every task: 300,000 IDs on a large account)."""
    if path != "-":
        atomic_write(path, json_chunks(document, **options))
        return
    for chunk in json_chunks(document, **options):  # whole JSON tokens: each decodes alone
        sys.stdout.write(chunk.decode())
    sys.stdout.flush()


def check_writable(path: str | Path, what: str) -> None:
    """Refuse (``UsageError``, exit 2) an output path that cannot be written.

    Run before the first request: a directory, a missing or read-only parent directory,
    or an existing file that is not writable is found now, not after the deletes.
    """
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{what} {path}: is a directory; expected a file path")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{what} {path}: the directory {parent} does not exist")
    if target.exists() and not os.access(target, os.W_OK):
        raise UsageError(f"{what} {path}: the file is not writable")
    if not target.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path}: cannot create files in {parent}")
