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

import http.client
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from metricbench.tasks.data.extract import extract, is_complete
from metricbench.tasks.data.resources import DOWNLOADS, DownloadError, Progress, Report, Resource, file_digest, reason_of, say

USER_AGENT = "metricbench-download/1"


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
    job = _Transfer(resource, Path(folder), progress, timeout, chunk, report or say)
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
        raise DownloadError(
            f"cannot create {job.final.parent} ({reason_of(exc)}); choose a --data-dir you can write to"
        ) from None
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
                f"cannot reach {url} ({reason_of(exc)}); check your connection or download it by hand into {self.final}"
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
            raise DownloadError(f"cannot write {part} ({reason_of(exc)}); check the permissions of {part.parent}") from None
        with handle:
            if self.progress is not None:
                self.progress(done, total)
            read = getattr(response, "read1", response.read)  # what has arrived, so a stall loses nothing already read
            while True:
                try:
                    data = read(self.chunk)
                except (OSError, http.client.HTTPException) as exc:
                    stopped = reason_of(exc)
                    break
                if not data:
                    stopped = None if total is None or done >= total else stopped
                    break
                try:
                    handle.write(data)
                except OSError as exc:
                    raise DownloadError(
                        f"cannot write {part} ({reason_of(exc)}); free some space in {part.parent} and run the command again"
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
