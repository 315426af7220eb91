"""What a dataset is downloaded from (`Resource`: URL, file name, checksum, size, what to unpack it into),
the error every download, verification and extraction raises, and the helpers both share."""

from __future__ import annotations

import hashlib
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath

from metricbench.bench.core.errors import UsageError

Progress = Callable[[int, int | None], None]
Report = Callable[[str], None]
DOWNLOADS = "downloads"
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
            relative_path(self.extract_to, f"Resource {self.filename}: extract_to")
        if self.decompress is not None:
            if self.decompress not in _COMPRESSED_SUFFIX:
                raise ValueError(f"Resource {self.filename}: decompress must be 'bz2' or 'gz', got {self.decompress!r}")
            if self.extract_to is not None:
                raise ValueError(f"Resource {self.filename}: give extract_to (an archive) or decompress (one file), not both")
            if self.output is None and not self.filename.endswith(_COMPRESSED_SUFFIX[self.decompress]):
                raise ValueError(f"Resource {self.filename}: name the decompressed file with output=")
            if self.output is not None:
                relative_path(self.output, f"Resource {self.filename}: output")
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
            folder = data_dir / relative_path(self.extract_to, "extract_to")
            return folder if self.is_archive else folder / self.filename
        if self.decompress is not None:
            return data_dir / self._output_name()
        return data_dir / DOWNLOADS / self.filename

    def _output_name(self) -> str:
        if self.output is not None:
            return self.output
        suffix = next(s for s in _COMPRESSED_SUFFIX[self.decompress] if self.filename.endswith(s))
        return self.filename[: -len(suffix)]


def relative_path(path: str, what: str) -> PurePosixPath:
    """`path` as a relative path without `..` (ValueError otherwise); "" and "." are the folder itself."""
    pure = PurePosixPath(path)
    if path.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", path) or ".." in pure.parts or "\\" in path:
        raise ValueError(f"{what} must be a relative path without '..', got {path!r}")
    return pure


def file_digest(path: str | Path, algorithm: str) -> str:
    """The hex digest of a file's bytes, read in chunks; `algorithm` is "md5", "sha256" or any hashlib name."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, partial(hashlib.new, algorithm, usedforsecurity=False)).hexdigest()


def say(message: str) -> None:
    print(f"metricbench: {message}", file=sys.stderr)


def reason_of(exc: BaseException) -> str:
    """An exception as a short phrase on one line."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return reason_of(exc.reason) if isinstance(exc.reason, BaseException) else " ".join(str(exc.reason).split())
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return " ".join(exc.strerror.split())
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
