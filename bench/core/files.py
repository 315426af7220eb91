"""Files and digests: writes a reader never sees half-done, folders checked writable before work starts, and the
digest that names every artifact, stage and record (`key_digest`)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from metricbench.bench.core.errors import UsageError


def current_umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, write) -> None:
    """Write through a temporary file in the same folder and rename, so a reader never sees half a file.

    The file gets the mode a plain `open` would give it (0o666 less the umask: 0o644 under umask 022),
    not the 0o600 of `mkstemp`'s private temporary file, so colleagues and web servers can read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_writable_folder(folder: Path, message: str) -> None:
    """Create `folder` if needed and prove a file can be written there; otherwise raise a UsageError.

    `message` is formatted with `folder` and `reason` (the operating system's explanation).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise UsageError(message.format(folder=folder, reason=exc.strerror)) from None


def check_writable_folder(folder: Path, message: str) -> None:
    """Raise a UsageError unless `folder` exists and is writable or could be created, creating nothing
    (input is validated before anything is written). `message` as for `ensure_writable_folder`."""
    folder = Path(folder).absolute()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(message.format(folder=folder, reason=f"'{existing}' is a file"))
    if existing == folder:
        try:
            tempfile.TemporaryFile(dir=folder).close()  # leaves nothing behind
        except OSError as exc:
            raise UsageError(message.format(folder=folder, reason=exc.strerror)) from None
    elif not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(message.format(folder=folder, reason=f"'{existing}' is not writable"))


def canonical_json(value) -> str:
    """The JSON text a digest is taken of: keys sorted, so equal dicts give equal text."""
    return json.dumps(value, sort_keys=True)


def key_digest(key: dict) -> str:
    """The 16-hex-digit digest that names an artifact, a stage or a record: sha256 of `canonical_json(key)`."""
    return hashlib.sha256(canonical_json(key).encode()).hexdigest()[:16]
