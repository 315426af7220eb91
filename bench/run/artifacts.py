"""A folder store for results that are costly to build and shared by many cells and invocations.

A pretrained checkpoint is built once per (task, seed, recipe, code) and then read by every cell of
that task and seed: in this process, in later runs, and by runs started side by side (two terminals,
parallel workers sharing one cache folder). A bare file in a cache folder gives no guarantee in any
of those cases, so the store gives three:

- one builder per key: the builder holds an exclusive `flock` on a per-key lock file; anyone else
  asking for that key waits for it, then reuses what it built. Different keys never wait on each other.
- nothing half-written ever looks complete: an artifact is built in a `.tmp-*` folder and renamed into
  place in one step, after its files are flushed to disk. A build that fails or is killed leaves only
  a `.tmp-*` folder, which is never read and is removed by the next builder of that key.
- corruption is noticed, not loaded: `manifest.json` lists each file's size and sha256; an artifact
  whose files do not match (a flipped byte, a truncated copy, a lost manifest) is reported with one
  warning line and rebuilt.

Layout: `root/<kind>/<label>-<digest>/` (just `<digest>/` without a label) holding the built files
and `manifest.json`, beside `root/<kind>/<label>-<digest>.lock`. The digest is the first 16 hex digits of the sha256 of the key's
JSON (sorted keys); the label is only there so a person can tell the folders apart.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from metricbench.bench.core.faults import pause_point
from metricbench.bench.core.files import canonical_json, key_digest

MANIFEST = "manifest.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_LABEL = 80  # a folder name must stay well under the file system's 255 bytes

# verified artifacts of this process: (folder, manifest mtime_ns) -> (manifest, the files' stats then).
# Hashing a checkpoint again for every cell of a suite would cost more than loading it; a cheap stat
# of each file still notices one replaced in the meantime.
_verified: dict[tuple[str, int], tuple[dict, tuple]] = {}


def _safe_name(text: str) -> str:
    # a leading dot would hide the folder and could look like a `.tmp-` or `.corrupt-` leftover
    return _UNSAFE.sub("_", text).lstrip(".")[:_MAX_LABEL]


@dataclass(frozen=True)
class Artifact:
    """A verified artifact: its folder, the `info` its build returned, and whether this call built it."""

    path: Path
    info: dict
    built: bool

    def file(self, name: str) -> Path:
        """The path of one of the artifact's files (`name` relative to its folder)."""
        return self.path / name


class CorruptArtifact(Exception):
    """An artifact folder whose files do not match its manifest (the message names the file and why)."""


class ArtifactStore:
    """Artifacts under `root`, one folder per (kind, key); see the module docstring for the guarantees."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, kind: str, key: dict, label: str = "") -> Path:
        """The folder the artifact of (kind, key) lives in (whether or not it exists yet)."""
        return self._kind_dir(kind) / self._name(key, label)

    def get(self, kind: str, key: dict, label: str = "") -> Artifact | None:
        """The verified artifact of (kind, key), or None if it is absent or corrupt; never builds."""
        folder = self.path(kind, key, label)
        try:
            manifest = _verify(folder, canonical_json(key))
        except CorruptArtifact:
            return None
        return None if manifest is None else Artifact(folder, manifest["info"], built=False)

    def get_or_build(self, kind: str, key: dict, build: Callable[[Path], dict], label: str = "") -> Artifact:
        """The verified artifact of (kind, key), built first if it is absent or corrupt.

        `build(folder)` writes the artifact's files into the empty `folder` and returns an `info` dict
        (JSON-able) that later calls get back. If it raises, nothing is stored and the error propagates.
        While one process builds a key, others asking for it wait and then return its artifact.
        """
        found = self.get(kind, key, label)
        if found is not None:
            return found
        kind_dir = self._kind_dir(kind)
        kind_dir.mkdir(parents=True, exist_ok=True)
        name = self._name(key, label)
        # the lock file stays: deleting it while another process waits on it would let a second builder in
        with open(kind_dir / f"{name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed, or when the process dies
            return self._build_locked(kind, key, build, label, kind_dir, name)

    def _build_locked(self, kind: str, key: dict, build, label: str, kind_dir: Path, name: str) -> Artifact:
        folder = kind_dir / name
        canonical = canonical_json(key)
        # checked again under the lock: another process may have built it while we waited
        try:
            manifest = _verify(folder, canonical)
        except CorruptArtifact as exc:
            print(f"metricbench: warning: artifact {folder} is corrupt ({exc}); rebuilding it", file=sys.stderr)
            manifest = None
        if manifest is not None:
            return Artifact(folder, manifest["info"], built=False)

        digest = key_digest(key)
        _remove_leftovers(kind_dir, name, digest)
        tmp = _new_temporary_folder(kind_dir, name)
        try:
            info = build(tmp)
            if not isinstance(info, dict):
                raise TypeError(f"an artifact's build must return its info as a dict, not {type(info).__name__}")
            manifest = {
                "kind": kind,
                "label": label,
                "key": json.loads(canonical),
                "info": json.loads(canonical_json(info)),  # what every later call will read back
                "created": time.time(),
                "files": _seal(tmp),
            }
            _write_synced(tmp / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
            _fsync_folders(tmp)
            pause_point("checkpoint-files-written")
            aside = None
            if folder.exists() or folder.is_symlink():
                aside = kind_dir / f".corrupt-{digest}-{time.time_ns()}"
                os.rename(folder, aside)
            os.rename(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_folder(kind_dir)  # makes the rename itself durable
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        _remember(folder, manifest, (folder / MANIFEST).stat().st_mtime_ns)
        return Artifact(folder, manifest["info"], built=True)

    def _kind_dir(self, kind: str) -> Path:
        if not kind or _safe_name(kind) != kind:
            raise ValueError(f"artifact kind {kind!r} must be a plain folder name ([A-Za-z0-9._-], not starting with '.')")
        return self.root / kind

    @staticmethod
    def _name(key: dict, label: str) -> str:
        label = _safe_name(label)
        digest = key_digest(key)
        return f"{label}-{digest}" if label else digest


def _verify(folder: Path, canonical_key: str) -> dict | None:
    """The manifest of a valid artifact in `folder`; None if there is none; CorruptArtifact if broken."""
    if not folder.is_dir():
        return None
    manifest_path = folder / MANIFEST
    try:
        manifest_mtime = manifest_path.stat().st_mtime_ns
    except FileNotFoundError:
        raise CorruptArtifact(f"{MANIFEST}: missing") from None
    cached = _verified.get((str(folder), manifest_mtime))
    if cached is not None and canonical_json(cached[0]["key"]) == canonical_key and _file_stats(folder, cached[0]) == cached[1]:
        return cached[0]
    manifest = _read_manifest(manifest_path)
    if canonical_json(manifest["key"]) != canonical_key:
        raise CorruptArtifact(f"{MANIFEST}: written for another key")
    for entry in manifest["files"]:
        path = folder / entry["path"]
        try:
            size = path.stat().st_size
            if size != entry["size"]:
                raise CorruptArtifact(f"{entry['path']}: {size} bytes, expected {entry['size']}")
            if _sha256(path) != entry["sha256"]:
                raise CorruptArtifact(f"{entry['path']}: sha256 does not match the manifest")
        except FileNotFoundError:
            raise CorruptArtifact(f"{entry['path']}: missing") from None
    _remember(folder, manifest, manifest_mtime)
    return manifest


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_bytes())
        well_formed = (
            isinstance(manifest, dict)
            and isinstance(manifest.get("info"), dict)
            and "key" in manifest
            and all(
                isinstance(e, dict)
                and isinstance(e.get("path"), str)
                and type(e.get("size")) is int
                and isinstance(e.get("sha256"), str)
                for e in manifest.get("files")
            )
        )
    except (OSError, ValueError, TypeError) as exc:
        raise CorruptArtifact(f"{MANIFEST}: unreadable ({type(exc).__name__})") from None
    if not well_formed:
        raise CorruptArtifact(f"{MANIFEST}: not a manifest")
    return manifest


def _remember(folder: Path, manifest: dict, manifest_mtime: int) -> None:
    stats = _file_stats(folder, manifest)
    if stats is not None:
        _verified[(str(folder), manifest_mtime)] = (manifest, stats)


def _file_stats(folder: Path, manifest: dict) -> tuple | None:
    """(inode, size, mtime) of each listed file, None if one is missing: what a replaced file changes."""
    try:
        stats = [(folder / entry["path"]).stat() for entry in manifest["files"]]
    except OSError:
        return None
    return tuple((st.st_ino, st.st_size, st.st_mtime_ns) for st in stats)


def _sha256(path: Path, sync: bool = False) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
        if sync:
            os.fsync(handle.fileno())
    return digest.hexdigest()


def _seal(folder: Path) -> list[dict]:
    """Each file a build wrote (size, sha256), flushed to disk on the way."""
    files = []
    for path in sorted(p for p in folder.rglob("*") if not p.is_dir() or p.is_symlink()):
        relative = path.relative_to(folder).as_posix()
        if relative == MANIFEST:
            raise ValueError(f"an artifact's build must not write {MANIFEST}: the store writes it")
        if path.is_symlink() or not path.is_file():
            raise ValueError(f"an artifact holds plain files only; the build wrote {relative!r}")
        files.append({"path": relative, "size": path.stat().st_size, "sha256": _sha256(path, sync=True)})
    return files


def _write_synced(path: Path, payload: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folders(folder: Path) -> None:
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        _fsync_folder(sub)
    _fsync_folder(folder)


def _new_temporary_folder(kind_dir: Path, name: str) -> Path:
    # not tempfile.mkdtemp: its folders are private to the user (0o700) and the artifact should get
    # the permissions of any folder made here (umask), so a cache shared by a team stays readable
    while True:
        folder = kind_dir / f".tmp-{name}-{secrets.token_hex(6)}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue


def _remove_leftovers(kind_dir: Path, name: str, digest: str) -> None:
    """Delete what killed builders of this key left behind; only its lock holder may, so no build is cut short."""
    # the random suffix has no '-', so `.tmp-<name>-<suffix>` never matches a longer name's folder
    temporary = re.compile(rf"\.tmp-{re.escape(name)}-[0-9a-f]{{12}}")
    aside = re.compile(rf"\.corrupt-{digest}-[0-9]+")
    for entry in kind_dir.iterdir():
        if temporary.fullmatch(entry.name) or aside.fullmatch(entry.name):
            shutil.rmtree(entry, ignore_errors=True)
