"""Unpacking a downloaded file safely (tar and zip archives through a staging folder renamed into place and
a completion marker, single compressed files through a temporary file, plain files linked or copied);
`tasks/data/download.py`'s docstring describes the layout."""

from __future__ import annotations

import bz2
import errno
import gzip
import json
import os
import re
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from metricbench.tasks.data.resources import DownloadError, Report, Resource, reason_of, say


def extract(path: str | Path, destination_root: str | Path, resource: Resource, report: Report | None = None) -> Path:
    """Unpack a downloaded file under `destination_root` (the data folder) as `resource` says; returns
    `resource.target(destination_root)`. Archives go through a staging folder renamed into place and a
    completion marker; single compressed files through a temporary file. Does nothing when the result
    is already complete; a plain file is returned as it is."""
    path, root = Path(path), Path(destination_root)
    target = resource.target(root)
    if resource.decompress is not None:
        return _decompress(path, target, resource.decompress)
    if resource.extract_to is None:
        return path
    if not resource.is_archive:
        return _place(path, target)
    if is_complete(resource, root):
        return target
    staging = (root if target == root else target.parent) / f".{resource.filename}.extracting"
    try:
        staging.parent.mkdir(parents=True, exist_ok=True)
        _remove(staging)  # left by a killed run
        staging.mkdir()
    except OSError as exc:
        raise DownloadError(f"cannot create {staging} ({reason_of(exc)}); check the permissions of {root}") from None
    (report or say)(f"extracting {path.name} into {target}")
    try:
        entries = _unpack(path, staging, root)
        _move_into(staging, target)
    except OSError as exc:  # renaming into place (the disk, the permissions)
        _remove(staging)
        raise _unusable("extract", path, target, exc) from None
    except BaseException:
        _remove(staging)
        raise
    marker = _marker(resource, root)
    temporary = marker.with_name(marker.name + ".tmp")
    try:
        temporary.write_text(json.dumps({"archive": resource.filename, "checksum": resource.checksum, "entries": entries}))
        os.replace(temporary, marker)
    except OSError as exc:
        raise DownloadError(
            f"cannot write {marker} ({reason_of(exc)}); check the free space and permissions of {target}"
        ) from None
    return target


def is_complete(resource: Resource, data_dir: str | Path) -> bool:
    """Whether `resource` needs nothing more under `data_dir`: its archive was extracted completely
    (marker present, for the same checksum, with the archive's top-level entries still there), or its
    target file (placed, decompressed or downloaded) exists; nothing is re-verified here."""
    data_dir = Path(data_dir)
    target = resource.target(data_dir)
    if not resource.is_archive or resource.extract_to is None:
        return target.is_file()
    try:
        record = json.loads(_marker(resource, data_dir).read_text())
        return record["checksum"] == resource.checksum and all((target / entry).exists() for entry in record["entries"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _marker(resource: Resource, data_dir: Path) -> Path:
    return resource.target(data_dir) / f".{resource.filename}.extracted"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def _move_into(source: Path, destination: Path) -> None:
    """Rename `source` to `destination`, merging into folders that already exist there (also through a
    symlink to a folder the user made, e.g. onto a larger disk); entries in `source` win. Each entry
    arrives by one rename (a copy, across file systems)."""
    if not destination.exists() and not destination.is_symlink():
        destination.parent.mkdir(parents=True, exist_ok=True)
        _rename(source, destination)
        return
    if source.is_dir() and destination.is_dir():
        for child in list(source.iterdir()):
            _move_into(child, destination / child.name)
        source.rmdir()
        return
    if destination.is_dir() != source.is_dir() or destination.is_symlink():
        _remove(destination)
    _rename(source, destination)


def _rename(source: Path, destination: Path) -> None:
    try:
        os.replace(source, destination)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.move(source, destination)  # another file system: copied, then removed


def _refuse(archive: Path, root: Path, member: str, why: str) -> DownloadError:
    return DownloadError(
        f"refusing to extract {archive}: member {member!r} {why}; this is not the published archive, "
        "delete it and run the command again"
    )


def _member_path(archive: Path, root: Path, name: str) -> PurePosixPath:
    """A member's path inside the archive, refused when absolute or with `..`."""
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        raise _refuse(archive, root, name, f"has an absolute path (it would be written outside {root})")
    pure = PurePosixPath(name.replace("\\", "/"))
    if ".." in pure.parts:
        raise _refuse(archive, root, name, f"contains '..' (it would be written outside {root})")
    return pure


def _checked_tar_members(tar: tarfile.TarFile, archive: Path, root: Path, tops: list[str]) -> Iterator[tarfile.TarInfo]:
    for member in tar:
        pure = _member_path(archive, root, member.name)
        if member.issym():
            link = member.linkname
            if link.startswith(("/", "\\")) or ".." in link.replace("\\", "/").split("/"):
                raise _refuse(archive, root, member.name, f"is a link to {link!r}, outside the archive's tree")
        elif member.islnk():
            _member_path(archive, root, member.linkname)
        elif not (member.isfile() or member.isdir()):
            raise _refuse(archive, root, member.name, "is a device or pipe")
        if pure.parts and pure.parts[0] != "." and pure.parts[0] not in tops:
            tops.append(pure.parts[0])
        yield member


def _unpack(archive: Path, staging: Path, root: Path) -> list[str]:
    """Extract `archive` into `staging`; the archive's top-level entries."""
    tops: list[str] = []
    try:
        if archive.name.lower().endswith(".zip") or (zipfile.is_zipfile(archive) and not tarfile.is_tarfile(archive)):
            with zipfile.ZipFile(archive) as zipped:
                members = zipped.infolist()
                for info in members:
                    pure = _member_path(archive, root, info.filename)
                    if pure.parts and pure.parts[0] not in tops:
                        tops.append(pure.parts[0])
                for info in members:
                    zipped.extract(info, staging)
        else:
            with tarfile.open(archive, "r:*") as tar:
                kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(staging, members=_checked_tar_members(tar, archive, root, tops), **kwargs)
    except DownloadError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError, ValueError) as exc:
        if isinstance(exc, getattr(tarfile, "FilterError", ())):  # the standard library's own safety filter
            raise _refuse(archive, root, exc.tarinfo.name, reason_of(exc)) from None
        raise _unusable("extract", archive, staging.parent, exc) from None
    return tops


def _unusable(doing: str, source: Path, folder: Path, exc: BaseException) -> DownloadError:
    """A failed extraction or decompression: the disk (an OSError with an errno) or the file (corrupt data)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return DownloadError(
            f"cannot {doing} {source} into {folder} ({reason_of(exc)}); free some space or fix the permissions of {folder}, "
            "then run the command again"
        )
    if isinstance(exc, tarfile.ReadError) and "could not be opened" in str(exc):
        exc = ValueError("not a tar or zip archive")
    return DownloadError(
        f"cannot {doing} {source}: it is corrupt or incomplete ({' '.join(str(exc).split()) or type(exc).__name__}); "
        "delete it and run the command again"
    )


def _place(source: Path, output: Path) -> Path:
    """`source` hard-linked (copied where links are impossible) to `output` through a temporary name."""
    if output.is_file():
        return output
    temporary = output.with_name(f".{output.name}.partial")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        temporary.unlink(missing_ok=True)
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)
        os.replace(temporary, output)
    except BaseException as exc:
        temporary.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _unusable("place", source, output.parent, exc) from None
        raise
    return output


def _decompress(source: Path, output: Path, kind: str) -> Path:
    """`source` (bz2 or gz) decompressed to `output` through a temporary file renamed into place."""
    if output.is_file():
        return output
    temporary = output.with_name(f".{output.name}.partial")
    opener = {"bz2": bz2.open, "gz": gzip.open}[kind]
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with opener(source, "rb") as compressed, open(temporary, "wb") as plain:
            shutil.copyfileobj(compressed, plain, 1 << 20)
            plain.flush()
            os.fsync(plain.fileno())
        os.replace(temporary, output)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        temporary.unlink(missing_ok=True)
        raise _unusable("decompress", source, output.parent, exc) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return output
