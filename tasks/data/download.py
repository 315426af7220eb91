"""Dataset downloads that are verified, resumable and atomic (`metricbench data download TASK --data-dir DIR`).

Layout under the data folder `DIR`:

- `DIR/downloads/FILE`: every downloaded file, kept under the name its `Resource` gives. While it
  arrives it is `FILE.part`; only a file whose size and checksum check out is renamed to `FILE`, so a
  file under its final name is always complete. A `FILE.part` left by an interrupted transfer is
  resumed with an HTTP `Range` request on the next run (a server that ignores `Range` sends the whole
  file again, which restarts it). A user without internet on the machine may put the file there by
  hand: it is verified like a downloaded one and nothing is fetched.
- archives (`extract_to`): tar, tar.gz/tgz/tar.bz2/tar.xz and zip, unpacked into a hidden staging
  folder beside the destination and then renamed into place, so an interrupted extraction never
  leaves a partial dataset folder; a marker `DEST/.FILE.extracted` (written last) records that the
  extraction finished. Members with an absolute path or `..`, links that leave the archive's tree,
  and device files are refused.
- single compressed files (`decompress` "bz2" or "gz", e.g. `covtype.libsvm.binary.bz2`): written to
  a hidden temporary file and renamed to `DIR/<output>`.
- plain files (a name that is not an archive's, e.g. LIBSVM's `a9a`): with `extract_to`, hard-linked
  (or copied, through a temporary file) to `DIR/<extract_to>/FILE`; without, used where they were
  downloaded, `DIR/downloads/FILE`.

Every failure raises `DownloadError` with one line naming the URL or file, what went wrong and what to
do; it is a `UsageError`, so the CLI prints it without a traceback and exits with code 2.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath

from metricbench.bench.core.errors import UsageError

Progress = Callable[[int, int | None], None]
Report = Callable[[str], None]

DOWNLOADS = "downloads"
USER_AGENT = "metricbench-download/1"
_HEX_LENGTH = {"md5": 32, "sha256": 64}
_COMPRESSED_SUFFIX = {"bz2": (".bz2",), "gz": (".gz", ".gzip")}
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz", ".zip")


class DownloadError(UsageError):
    """A download, a verification or an extraction failed; the message is one line naming the URL or file,
    what went wrong and what to do."""


@dataclass(frozen=True)
class Resource:
    """One file a dataset is downloaded from.

    - `url`: where it is published.
    - `filename`: its name in `DIR/downloads/` (a plain name, no folders).
    - `checksum`: `"md5:<hex>"` or `"sha256:<hex>"` as the publisher gives it. None when the publisher
      gives none: the file is then accepted once its transfer completes (and its size, where known,
      matches) and its sha256 is reported, so such files are only checked by their format when loaded.
    - `size`: its size in bytes, when known (checked before the checksum, and lets an interrupted
      transfer be told from a complete one without asking the server).
    - `extract_to`: a folder relative to `DIR` (`"."` for `DIR` itself). For an archive (a `filename`
      ending in .tar, .tar.gz, .tgz, .tar.bz2, .tbz2, .tar.xz, .txz or .zip) its members go there, as for
      `cifar-10-python.tar.gz`, whose members start with `cifar-10-batches-py/`; several archives may
      extract into the same tree (VOC's trainval and test tars). Any other file is placed there as it
      is (`DIR/<extract_to>/<filename>`). None: the file stays in `DIR/downloads/`.
    - `decompress`: `"bz2"` or `"gz"` for a single compressed file, written to `DIR/<output>`;
      `output` defaults to `filename` without its `.bz2` / `.gz` suffix.
    """

    url: str
    filename: str
    checksum: str | None = None
    size: int | None = None
    extract_to: str | None = None
    decompress: str | None = None
    output: str | None = None

    def __post_init__(self):
        if not self.url:
            raise ValueError("Resource: url is empty")
        if not self.filename or self.filename in (".", "..") or "/" in self.filename or "\\" in self.filename:
            raise ValueError(f"Resource: filename must be a plain file name, got {self.filename!r}")
        if self.checksum is not None:
            algorithm, _, digest = self.checksum.partition(":")
            if algorithm not in _HEX_LENGTH or not re.fullmatch(rf"[0-9a-fA-F]{{{_HEX_LENGTH[algorithm]}}}", digest):
                raise ValueError(
                    f"Resource {self.filename}: checksum must be 'md5:<32 hex>' or 'sha256:<64 hex>', got {self.checksum!r}"
                )
        if self.size is not None and (not isinstance(self.size, int) or self.size < 0):
            raise ValueError(f"Resource {self.filename}: size must be a number of bytes, got {self.size!r}")
        if self.extract_to is not None:
            _relative(self.extract_to, f"Resource {self.filename}: extract_to")
        if self.decompress is not None:
            if self.decompress not in _COMPRESSED_SUFFIX:
                raise ValueError(f"Resource {self.filename}: decompress must be 'bz2' or 'gz', got {self.decompress!r}")
            if self.extract_to is not None:
                raise ValueError(f"Resource {self.filename}: give extract_to (an archive) or decompress (one file), not both")
            if self.output is None and not self.filename.endswith(_COMPRESSED_SUFFIX[self.decompress]):
                raise ValueError(f"Resource {self.filename}: name the decompressed file with output=")
            if self.output is not None:
                _relative(self.output, f"Resource {self.filename}: output")
        elif self.output is not None:
            raise ValueError(f"Resource {self.filename}: output is only for decompress")

    @property
    def is_archive(self) -> bool:
        """Whether `filename` names a tar or zip archive (then `extract_to` unpacks it)."""
        return self.filename.lower().endswith(ARCHIVE_SUFFIXES)

    @property
    def algorithm(self) -> str | None:
        """`"md5"` or `"sha256"`, or None without a checksum."""
        return None if self.checksum is None else self.checksum.partition(":")[0]

    @property
    def digest(self) -> str | None:
        """The expected hex digest (lower case), or None."""
        return None if self.checksum is None else self.checksum.partition(":")[2].lower()

    def target(self, data_dir: str | Path) -> Path:
        """What a task reads once `fetch` is done: the folder an archive is extracted to, the placed or
        the decompressed file, or the downloaded file itself."""
        data_dir = Path(data_dir)
        if self.extract_to is not None:
            folder = data_dir / _relative(self.extract_to, "extract_to")
            return folder if self.is_archive else folder / self.filename
        if self.decompress is not None:
            return data_dir / self._output_name()
        return data_dir / DOWNLOADS / self.filename

    def _output_name(self) -> str:
        if self.output is not None:
            return self.output
        suffix = next(s for s in _COMPRESSED_SUFFIX[self.decompress] if self.filename.endswith(s))
        return self.filename[: -len(suffix)]


def _relative(path: str, what: str) -> PurePosixPath:
    """`path` as a relative path without `..` (ValueError otherwise); "" and "." are the folder itself."""
    pure = PurePosixPath(path)
    if path.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", path) or ".." in pure.parts or "\\" in path:
        raise ValueError(f"{what} must be a relative path without '..', got {path!r}")
    return pure


def file_digest(path: str | Path, algorithm: str) -> str:
    """The hex digest of a file's bytes, read in chunks; `algorithm` is "md5", "sha256" or any hashlib name."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, partial(hashlib.new, algorithm, usedforsecurity=False)).hexdigest()


def _stderr(message: str) -> None:
    print(f"metricbench: {message}", file=sys.stderr)


def _reason(exc: BaseException) -> str:
    """An exception as a short phrase on one line."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return _reason(exc.reason) if isinstance(exc.reason, BaseException) else " ".join(str(exc.reason).split())
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return " ".join(exc.strerror.split())
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------- download


def download(
    resource: Resource,
    folder: str | Path,
    progress: Progress | None = None,
    timeout: float = 30.0,
    chunk: int = 1 << 20,
    report: Report | None = None,
) -> Path:
    """`folder/<filename>`, downloaded and verified; a file already there that verifies is returned at once.

    The bytes go to `<filename>.part`, resumed with `Range: bytes=N-` when it exists. A transfer that
    ends short keeps the `.part` and raises (the next call resumes); a checksum mismatch removes it and
    raises; only a verified file is renamed to its final name. A file under the final name that does not
    verify is removed and downloaded again. `progress(bytes_done, bytes_total_or_None)` is called as
    bytes arrive; `report(message)` receives notes (a restarted transfer, the sha256 of a file without a
    published checksum), printed to stderr by default. One request per call (two when a resume must
    start over), no retries.
    """
    job = _Transfer(resource, Path(folder), progress, timeout, chunk, report or _stderr)
    if job.final.is_file():
        problem = _problem(job.final, resource)
        if problem is None:
            job.part.unlink(missing_ok=True)
            return job.final
        job.report(f"{job.final} {problem}; downloading it again")
        job.final.unlink()
    try:
        job.final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create {job.final.parent} ({_reason(exc)}); choose a --data-dir you can write to") from None
    if job.part.is_file():
        job.report(f"resuming {resource.filename} from byte {job.part.stat().st_size:,} ({resource.url})")
    else:
        job.report(f"downloading {resource.filename} from {resource.url}")
    job.run()
    _verify(resource, job.part, job.report)
    os.replace(job.part, job.final)
    return job.final


def _problem(path: Path, resource: Resource) -> str | None:
    """Why a file on disk is not `resource` (size, then checksum), or None."""
    if resource.size is not None and path.stat().st_size != resource.size:
        return f"has {path.stat().st_size:,} bytes, expected {resource.size:,}"
    if resource.checksum is not None and file_digest(path, resource.algorithm) != resource.digest:
        return f"does not match its {resource.algorithm} checksum"
    return None


def _verify(resource: Resource, part: Path, report: Report) -> None:
    if resource.checksum is None:
        digest = file_digest(part, "sha256")
        report(
            f"no checksum is published for {resource.filename}; accepted as downloaded (sha256 {digest}), "
            "it is only checked by its format when loaded"
        )
        return
    got = file_digest(part, resource.algorithm)
    if got != resource.digest:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"checksum mismatch for {resource.filename} from {resource.url}: expected {resource.algorithm} {resource.digest}, "
            f"got {got}; the downloaded file was removed, run the command again"
        )


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total) of `Content-Range: bytes A-B/T` or `bytes */T`; None where absent."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value or "")
    if match is None:
        return None, None
    start, total = match.groups()
    return (int(start) if start else None), (int(total) if total != "*" else None)


@dataclass
class _Transfer:
    """Bringing `<folder>/<filename>.part` to the whole file."""

    resource: Resource
    folder: Path
    progress: Progress | None
    timeout: float
    chunk: int
    report: Report

    @property
    def final(self) -> Path:
        return self.folder / self.resource.filename

    @property
    def part(self) -> Path:
        return self.folder / f"{self.resource.filename}.part"

    def run(self) -> None:
        """Request the rest of the file (at most one restart from zero); raise when it ends short."""
        size = self.resource.size
        for _ in range(2):
            offset = self.part.stat().st_size if self.part.is_file() else 0
            if size is not None and offset == size:
                return  # complete already (a run stopped before verifying it): verify it
            if size is not None and offset > size:
                self.part.unlink()
                offset = 0
            if not self._request(offset):
                return
        raise DownloadError(f"{self.resource.url} does not resume consistently; delete {self.part} and run the command again")

    def _request(self, offset: int) -> bool:
        """One GET from `offset`; True when the part was discarded and the transfer must start again."""
        url, name = self.resource.url, self.resource.filename
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            with exc:
                if exc.code == 416 and offset:
                    if _content_range(exc.headers.get("Content-Range"))[1] == offset:
                        return False  # the part holds the whole file: verify it
                    return self._restart(f"{url} refused to resume {name} from byte {offset:,}")
                if exc.code >= 500 or exc.code in (408, 429):
                    advice = f"the server has a problem, try again later or download it by hand into {self.final}"
                else:
                    advice = (
                        f"the file may have moved: download it by hand into {self.final} and run the command again, or report it"
                    )
                raise DownloadError(
                    f"cannot download {name}: {url} answered HTTP {exc.code} {' '.join(str(exc.reason).split())}; {advice}"
                ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            raise DownloadError(
                f"cannot reach {url} ({_reason(exc)}); check your connection or download it by hand into {self.final}"
            ) from None
        with response:
            length = response.headers.get("Content-Length")
            length = int(length) if length and length.strip().isdigit() else None
            if offset and response.status == 206:
                start, total = _content_range(response.headers.get("Content-Range"))
                if start != offset:
                    return self._restart(f"{url} resumed {name} at the wrong byte")
                if total is None and length is not None:
                    total = offset + length
                mode = "ab"
            else:
                if offset:
                    self.report(f"{url} ignored the request to resume {name}; downloading it from the start")
                offset, total, mode = 0, length, "wb"
            if self.resource.size is not None and total is not None and total != self.resource.size:
                self.part.unlink(missing_ok=True)
                raise DownloadError(
                    f"{url} serves {name} as {total:,} bytes, expected {self.resource.size:,}; the file on the server has "
                    f"changed or the URL is wrong: download it by hand into {self.final} or report it"
                )
            self._receive(response, mode, offset, self.resource.size if self.resource.size is not None else total)
        return False

    def _restart(self, why: str) -> bool:
        self.part.unlink(missing_ok=True)
        self.report(f"{why}; downloading {self.resource.filename} from the start")
        return True

    def _receive(self, response, mode: str, done: int, total: int | None) -> None:
        """Write the response's body to the part from byte `done`; raise when it ends before `total`."""
        url, name, part = self.resource.url, self.resource.filename, self.part
        stopped = "the server closed the connection"
        try:
            handle = open(part, mode)
        except OSError as exc:
            raise DownloadError(f"cannot write {part} ({_reason(exc)}); check the permissions of {part.parent}") from None
        with handle:
            if self.progress is not None:
                self.progress(done, total)
            read = getattr(response, "read1", response.read)  # what has arrived, so a stall loses nothing already read
            while True:
                try:
                    data = read(self.chunk)
                except (OSError, http.client.HTTPException) as exc:
                    stopped = _reason(exc)
                    break
                if not data:
                    stopped = None if total is None or done >= total else stopped
                    break
                try:
                    handle.write(data)
                except OSError as exc:
                    raise DownloadError(
                        f"cannot write {part} ({_reason(exc)}); free some space in {part.parent} and run the command again"
                    ) from None
                done += len(data)
                if self.progress is not None:
                    self.progress(done, total)
            handle.flush()
            os.fsync(handle.fileno())
        if total is not None and done > total:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"{url} sent more than {total:,} bytes for {name}; the partial file was removed, run the command again"
            )
        if stopped is not None:
            of = f" of {total:,}" if total is not None else ""
            raise DownloadError(
                f"the download of {name} from {url} was interrupted after {done:,}{of} bytes ({stopped}); "
                f"the partial file {part} is kept: run the command again to resume"
            )


# ---------------------------------------------------------------------------------------------- extraction


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
        raise DownloadError(f"cannot create {staging} ({_reason(exc)}); check the permissions of {root}") from None
    (report or _stderr)(f"extracting {path.name} into {target}")
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
        raise DownloadError(f"cannot write {marker} ({_reason(exc)}); check the free space and permissions of {target}") from None
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
            raise _refuse(archive, root, exc.tarinfo.name, _reason(exc)) from None
        raise _unusable("extract", archive, staging.parent, exc) from None
    return tops


def _unusable(doing: str, source: Path, folder: Path, exc: BaseException) -> DownloadError:
    """A failed extraction or decompression: the disk (an OSError with an errno) or the file (corrupt data)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return DownloadError(
            f"cannot {doing} {source} into {folder} ({_reason(exc)}); free some space or fix the permissions of {folder}, "
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


# ---------------------------------------------------------------------------------------------- fetch


def fetch(
    resources: Iterable[Resource],
    data_dir: str | Path,
    progress: Progress | None = None,
    report: Report | None = None,
    timeout: float = 30.0,
) -> list[Path]:
    """Download every resource into `data_dir/downloads/` and extract or decompress those that need it
    into `data_dir`; the `target` of each, in order. Idempotent: a resource already complete is skipped
    (an extracted archive is not downloaded again even when its download was deleted). `progress(bytes_done,
    bytes_total_or_None)` follows each transfer, which `report` announces first ("downloading FILE from URL")."""
    data_dir = Path(data_dir)
    targets = []
    for resource in resources:
        if (resource.extract_to is not None or resource.decompress is not None) and is_complete(resource, data_dir):
            targets.append(resource.target(data_dir))
            continue
        path = download(resource, data_dir / DOWNLOADS, progress=progress, timeout=timeout, report=report)
        targets.append(extract(path, data_dir, resource, report=report))
    return targets
