"""Dataset downloads (`tasks/data/download.py`) against a loopback HTTP server: verification, resuming,
one-line errors, safe and atomic extraction, and an idempotent `fetch`."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
from helpers.loopback import LoopbackServer, refused_url
from metricbench.bench.core.errors import UsageError
from metricbench.tasks.data import extract as extraction
from metricbench.tasks.data.download import download, fetch
from metricbench.tasks.data.extract import extract, is_complete
from metricbench.tasks.data.resources import DownloadError, Resource, file_digest

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def server():
    with LoopbackServer({"/data.bin": PAYLOAD}) as running:
        yield running


@pytest.fixture
def notes():
    return []


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and message.strip() == message
    assert isinstance(error.value, UsageError)  # the CLI prints it as one line, exit code 2
    return message


# ------------------------------------------------------------------------------------------------ download


@pytest.mark.parametrize("checksum", [md5, sha256])
@pytest.mark.parametrize("size", [None, len(PAYLOAD)])
def test_a_download_is_verified_and_renamed(server, tmp_path, notes, checksum, size):
    seen = []
    resource = Resource(server.url("/data.bin"), "data.bin", checksum=checksum(PAYLOAD), size=size)
    path = download(resource, tmp_path, progress=lambda done, total: seen.append((done, total)), chunk=16384, report=notes.append)
    assert path == tmp_path / "data.bin" and path.read_bytes() == PAYLOAD
    assert not (tmp_path / "data.bin.part").exists()
    assert seen[0] == (0, len(PAYLOAD)) and seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert server.ranges("/data.bin") == [None] and notes == [f"downloading data.bin from {resource.url}"]


@pytest.mark.parametrize("algorithm", ["md5", "sha256"])
def test_a_checksum_mismatch_is_one_line_and_leaves_no_file(server, tmp_path, algorithm):
    wrong = f"{algorithm}:" + "0" * (32 if algorithm == "md5" else 64)
    resource = Resource(server.url("/data.bin"), "data.bin", checksum=wrong)
    with pytest.raises(DownloadError) as error:
        download(resource, tmp_path)
    message = one_line(error)
    actual = file_digest_of(PAYLOAD, algorithm)
    assert message.startswith("checksum mismatch for data.bin from http://127.0.0.1:")
    assert f"expected {algorithm} {'0' * 8}" in message and f"got {actual}" in message and "run the command again" in message
    assert list(tmp_path.iterdir()) == []


def file_digest_of(data: bytes, algorithm: str) -> str:
    return hashlib.new(algorithm, data).hexdigest()


@pytest.mark.parametrize("size", [None, len(PAYLOAD)])
def test_an_interrupted_transfer_keeps_the_part_and_the_next_call_resumes_with_range(server, tmp_path, size):
    resource = Resource(server.url("/data.bin"), "data.bin", checksum=md5(PAYLOAD), size=size)
    server.truncate_next("/data.bin", 30000)
    with pytest.raises(DownloadError) as error:
        download(resource, tmp_path)
    message = one_line(error)
    assert "data.bin" in message and resource.url in message and "interrupted after 30,000 of 102,400 bytes" in message
    assert "run the command again to resume" in message
    assert (tmp_path / "data.bin.part").stat().st_size == 30000 and not (tmp_path / "data.bin").exists()
    seen = []
    path = download(resource, tmp_path, progress=lambda done, total: seen.append(done))
    assert path.read_bytes() == PAYLOAD and not (tmp_path / "data.bin.part").exists()
    assert server.ranges("/data.bin") == [None, "bytes=30000-"]
    assert seen[0] == 30000 and seen[-1] == len(PAYLOAD)


def test_a_server_that_ignores_range_restarts_from_zero(server, tmp_path, notes):
    (tmp_path / "data.bin.part").write_bytes(b"x" * 5000)  # not even the right bytes: all of it is replaced
    server.ignore_range = True
    resource = Resource(server.url("/data.bin"), "data.bin", checksum=md5(PAYLOAD))
    assert download(resource, tmp_path, report=notes.append).read_bytes() == PAYLOAD
    assert server.ranges("/data.bin") == ["bytes=5000-"]
    assert (
        notes[0] == f"resuming data.bin from byte 5,000 ({resource.url})" and "ignored the request to resume data.bin" in notes[1]
    )


def test_a_complete_part_answered_416_is_verified_and_kept(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    resource = Resource(server.url("/data.bin"), "data.bin", checksum=md5(PAYLOAD))
    assert download(resource, tmp_path).read_bytes() == PAYLOAD
    assert server.ranges("/data.bin") == [f"bytes={len(PAYLOAD)}-"]


def test_a_complete_part_of_known_size_is_verified_without_a_request(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    resource = Resource(server.url("/data.bin"), "data.bin", checksum=md5(PAYLOAD), size=len(PAYLOAD))
    assert download(resource, tmp_path).read_bytes() == PAYLOAD
    assert server.count() == 0


def test_a_verified_file_on_disk_causes_no_request(server, tmp_path):
    (tmp_path / "data.bin").write_bytes(PAYLOAD)
    (tmp_path / "data.bin.part").write_bytes(b"stale")
    resource = Resource(server.url("/data.bin"), "data.bin", checksum=sha256(PAYLOAD), size=len(PAYLOAD))
    assert download(resource, tmp_path) == tmp_path / "data.bin"
    assert server.count() == 0 and not (tmp_path / "data.bin.part").exists()


def test_a_corrupt_file_on_disk_is_downloaded_again(server, tmp_path, notes):
    (tmp_path / "data.bin").write_bytes(b"y" * len(PAYLOAD))
    resource = Resource(server.url("/data.bin"), "data.bin", checksum=md5(PAYLOAD))
    assert download(resource, tmp_path, report=notes.append).read_bytes() == PAYLOAD
    assert server.count() == 1 and notes[0] == f"{tmp_path / 'data.bin'} does not match its md5 checksum; downloading it again"


def test_without_a_checksum_the_file_is_accepted_and_its_sha256_reported(server, tmp_path, notes):
    resource = Resource(server.url("/data.bin"), "data.bin")
    assert download(resource, tmp_path, report=notes.append).read_bytes() == PAYLOAD
    assert len(notes) == 2 and hashlib.sha256(PAYLOAD).hexdigest() in notes[1] and "checked by its format when loaded" in notes[1]


def test_a_server_size_that_differs_from_the_resource_is_refused(server, tmp_path):
    resource = Resource(server.url("/data.bin"), "data.bin", checksum=md5(PAYLOAD), size=len(PAYLOAD) + 1)
    with pytest.raises(DownloadError) as error:
        download(resource, tmp_path)
    assert "serves data.bin as 102,400 bytes, expected 102,401" in one_line(error)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("status", [404, 500])
def test_http_errors_are_one_line_naming_the_url(server, tmp_path, status):
    path = "/missing.bin" if status == 404 else "/data.bin"
    if status != 404:
        server.fail_next(path, status)
    resource = Resource(server.url(path), "data.bin", checksum=md5(PAYLOAD))
    with pytest.raises(DownloadError) as error:
        download(resource, tmp_path)
    message = one_line(error)
    assert resource.url in message and f"HTTP {status}" in message and str(tmp_path / "data.bin") in message
    assert not (tmp_path / "data.bin").exists() and not (tmp_path / "data.bin.part").exists()


def test_connection_refused_is_one_line_naming_the_url(tmp_path):
    resource = Resource(refused_url("/data.bin"), "data.bin", checksum=md5(PAYLOAD))
    with pytest.raises(DownloadError) as error:
        download(resource, tmp_path, timeout=2.0)
    message = one_line(error)
    assert message.startswith(f"cannot reach {resource.url} (") and "refused" in message and "check your connection" in message


def test_a_stalled_transfer_times_out_and_keeps_the_part(server, tmp_path):
    server.truncate_next("/data.bin", 1000, hang=10.0)  # the wait ends when the server stops
    resource = Resource(server.url("/data.bin"), "data.bin", checksum=md5(PAYLOAD))
    with pytest.raises(DownloadError) as error:
        download(resource, tmp_path, timeout=0.2)
    assert "interrupted after 1,000 of 102,400 bytes (timed out)" in one_line(error)
    assert (tmp_path / "data.bin.part").read_bytes() == PAYLOAD[:1000]


def test_malformed_resources_are_refused():
    good = {"url": "http://x/a.tar.gz", "filename": "a.tar.gz"}
    for bad in (
        {"filename": "../a.tar.gz"},
        {"checksum": "md5:1234"},
        {"checksum": "sha1:" + "0" * 40},
        {"extract_to": "../elsewhere"},
        {"extract_to": "/abs"},
        {"extract_to": ".", "decompress": "gz"},
        {"decompress": "xz"},
        {"filename": "a.bin", "decompress": "bz2"},  # no .bz2 suffix and no output
        {"output": "a"},  # output without decompress
    ):
        with pytest.raises(ValueError):
            Resource(**{**good, **bad})
    assert Resource("u", "covtype.libsvm.binary.bz2", decompress="bz2").target("/d") == Path("/d/covtype.libsvm.binary")
    assert Resource("u", "a9a").target("/d") == Path("/d/downloads/a9a")


def test_file_digest_matches_hashlib(tmp_path):
    (tmp_path / "f").write_bytes(PAYLOAD)
    assert file_digest(tmp_path / "f", "md5") == hashlib.md5(PAYLOAD).hexdigest()
    assert file_digest(tmp_path / "f", "sha256") == hashlib.sha256(PAYLOAD).hexdigest()


# ------------------------------------------------------------------------------------------------ extraction

TREE = {"top/a.txt": b"alpha", "top/sub/b.bin": PAYLOAD[:999]}


def make_tar(path: Path, members: dict[str, bytes], mode: str = "w:gz", links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zipped:
        for name, data in members.items():
            zipped.writestr(name, data)
    return path


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


@pytest.mark.parametrize("name", ["set.tar.gz", "set.tgz", "set.tar", "set.zip"])
def test_archives_extract_to_the_right_tree_once(tmp_path, name, monkeypatch):
    archive = tmp_path / name
    make_zip(archive, TREE) if name.endswith(".zip") else make_tar(archive, TREE, "w" if name.endswith(".tar") else "w:gz")
    root = tmp_path / "data"
    resource = Resource("http://unused/" + name, name, extract_to=".")
    assert not is_complete(resource, root)
    assert extract(archive, root, resource, report=lambda _: None) == root
    assert tree(root) == TREE and is_complete(resource, root)
    assert json.loads((root / f".{name}.extracted").read_text())["entries"] == ["top"]
    assert [p.name for p in root.iterdir() if p.name.endswith(".extracting")] == []
    monkeypatch.setattr(extraction, "_unpack", lambda *a: pytest.fail("extracted twice"))
    assert extract(archive, root, resource) == root
    shutil.rmtree(root / "top")  # the user deleted the dataset: the marker no longer counts
    assert not is_complete(resource, root)


def test_two_archives_extract_into_one_tree(tmp_path):
    """VOC: the trainval and test tars both hold VOCdevkit/VOC2007/..."""
    root = tmp_path / "data"
    first = make_tar(tmp_path / "trainval.tar", {"VOCdevkit/VOC2007/JPEGImages/1.jpg": b"1"}, "w")
    second = make_tar(tmp_path / "test.tar", {"VOCdevkit/VOC2007/JPEGImages/2.jpg": b"2"}, "w")
    for archive in (first, second):
        extract(archive, root, Resource("http://unused", archive.name, extract_to="."), report=lambda _: None)
    assert tree(root) == {"VOCdevkit/VOC2007/JPEGImages/1.jpg": b"1", "VOCdevkit/VOC2007/JPEGImages/2.jpg": b"2"}


def test_extraction_merges_into_a_folder_the_user_symlinked_elsewhere(tmp_path):
    root, elsewhere = tmp_path / "data", tmp_path / "big-disk" / "VOCdevkit"
    elsewhere.mkdir(parents=True)
    root.mkdir()
    (root / "VOCdevkit").symlink_to(elsewhere, target_is_directory=True)
    archive = make_tar(tmp_path / "voc.tar", {"VOCdevkit/VOC2007/a.xml": b"<a/>"}, "w")
    extract(archive, root, Resource("http://unused", archive.name, extract_to="."), report=lambda _: None)
    assert (root / "VOCdevkit").is_symlink() and (elsewhere / "VOC2007" / "a.xml").read_bytes() == b"<a/>"


@pytest.mark.parametrize(
    "kind",
    ["tar ../evil", "tar absolute path", "tar symlink out", "zip ../evil", "zip absolute path"],
    ids=lambda k: k.replace(" ", "-"),
)
def test_an_archive_member_outside_the_destination_is_refused(tmp_path, kind):
    evil = tmp_path / "evil"
    name = {"../evil": "../../evil", "absolute path": str(evil), "symlink out": "top/a.txt"}[kind.split(" ", 1)[1]]
    members = {"top/a.txt": b"alpha", name: b"pwned"} if "symlink" not in kind else {"top/a.txt": b"alpha"}
    if kind.startswith("zip"):
        archive = tmp_path / "bad.zip"
        with zipfile.ZipFile(archive, "w") as zipped:
            for member, data in members.items():
                zipped.writestr(zipfile.ZipInfo(member), data)  # ZipInfo keeps the name as given
    else:
        archive = make_tar(tmp_path / "bad.tar.gz", members, links={"top/link": "../../../evil"} if "symlink" in kind else None)
    root = tmp_path / "data" / "inner"
    resource = Resource("http://unused", archive.name, extract_to="set")
    with pytest.raises(DownloadError) as error:
        extract(archive, root, resource, report=lambda _: None)
    message = one_line(error)
    assert message.startswith(f"refusing to extract {archive}: member ") and "delete it and run the command again" in message
    assert not evil.exists() and not (tmp_path / "data" / "evil").exists()
    assert not (root / "set").exists() and not is_complete(resource, root) and list(root.iterdir()) == []


def test_a_corrupt_archive_is_one_line(tmp_path):
    archive = tmp_path / "set.tar.gz"
    archive.write_bytes(gzip.compress(b"not a tar at all" * 100))
    with pytest.raises(DownloadError) as error:
        extract(archive, tmp_path / "data", Resource("http://unused", archive.name, extract_to="."), report=lambda _: None)
    expected = (
        f"cannot extract {archive}: it is corrupt or incomplete (not a tar or zip archive); delete it and run the command again"
    )
    assert one_line(error) == expected


@pytest.mark.parametrize("kind", ["bz2", "gz"])
def test_a_truncated_compressed_file_is_one_line_and_leaves_no_output(tmp_path, kind):
    archive = tmp_path / f"f.{kind}"
    packed = (bz2 if kind == "bz2" else gzip).compress(PAYLOAD)
    archive.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DownloadError) as error:
        extract(archive, tmp_path / "data", Resource("http://unused", archive.name, decompress=kind))
    assert one_line(error).startswith(f"cannot decompress {archive}: it is corrupt or incomplete (")
    assert list((tmp_path / "data").iterdir()) == []


@pytest.mark.parametrize("kind", ["bz2", "gz"])
def test_single_compressed_files_are_decompressed(tmp_path, kind):
    archive = tmp_path / f"covtype.libsvm.binary.{kind}"
    archive.write_bytes((bz2 if kind == "bz2" else gzip).compress(PAYLOAD))
    resource = Resource("http://unused", archive.name, decompress=kind)
    out = extract(archive, tmp_path / "data", resource)
    assert out == tmp_path / "data" / "covtype.libsvm.binary" and out.read_bytes() == PAYLOAD
    assert sorted(p.name for p in out.parent.iterdir()) == ["covtype.libsvm.binary"] and is_complete(resource, tmp_path / "data")


def test_a_killed_extraction_leaves_no_complete_looking_destination(tmp_path, monkeypatch):
    archive = make_tar(tmp_path / "set.tar.gz", {"top/a.txt": b"alpha", "top/b.txt": b"beta", "top/c.txt": b"gamma"})
    root = tmp_path / "data"
    resource = Resource("http://unused", archive.name, extract_to=".")
    real, calls = tarfile.copyfileobj, []

    def killed_on_the_second_file(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(tarfile, "copyfileobj", killed_on_the_second_file)
    with pytest.raises(KeyboardInterrupt):
        extract(archive, root, resource, report=lambda _: None)
    assert list(root.iterdir()) == [] and not is_complete(resource, root)
    monkeypatch.undo()
    # a SIGKILL cleans nothing up: a staging folder is left behind, and the next run replaces it
    (root / ".set.tar.gz.extracting" / "top").mkdir(parents=True)
    (root / ".set.tar.gz.extracting" / "top" / "a.txt").write_bytes(b"half")
    assert not (root / "top").exists() and not is_complete(resource, root)
    extract(archive, root, resource, report=lambda _: None)
    assert tree(root) == {"top/a.txt": b"alpha", "top/b.txt": b"beta", "top/c.txt": b"gamma"}
    assert sorted(p.name for p in root.iterdir()) == [".set.tar.gz.extracted", "top"]


def test_a_killed_decompression_leaves_no_output(tmp_path, monkeypatch):
    archive = tmp_path / "f.bz2"
    archive.write_bytes(bz2.compress(PAYLOAD))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "copyfileobj", killed)
    with pytest.raises(KeyboardInterrupt):
        extract(archive, tmp_path / "data", Resource("http://unused", archive.name, decompress="bz2"))
    assert list((tmp_path / "data").iterdir()) == []


# ------------------------------------------------------------------------------------------------ fetch


def test_fetch_downloads_extracts_and_is_idempotent(tmp_path):
    archive = make_tar(tmp_path / "set.tar.gz", TREE).read_bytes()
    packed, text = bz2.compress(PAYLOAD), b"+1 3:1 11:1\n-1 5:1\n"
    files = {"/set.tar.gz": archive, "/covtype.bz2": packed, "/a9a": text, "/a9a.t": text}
    with LoopbackServer(files) as server:
        resources = [
            Resource(server.url("/set.tar.gz"), "set.tar.gz", checksum=md5(archive), extract_to="."),
            Resource(
                server.url("/covtype.bz2"), "covtype.bz2", checksum=sha256(packed), decompress="bz2", output="libsvm/covtype"
            ),
            Resource(server.url("/a9a"), "a9a", checksum=md5(text), size=len(text)),  # kept in downloads/
            Resource(server.url("/a9a.t"), "a9a.t", extract_to="."),  # placed in the data folder, no checksum
        ]
        data, seen, notes = tmp_path / "data", [], []
        targets = fetch(resources, data, progress=lambda done, total: seen.append((done, total)), report=notes.append)
        assert targets == [data, data / "libsvm" / "covtype", data / "downloads" / "a9a", data / "a9a.t"]
        assert tree(data / "top") == {k.removeprefix("top/"): v for k, v in TREE.items()}
        assert (data / "libsvm" / "covtype").read_bytes() == PAYLOAD
        assert targets[2].read_bytes() == text and targets[3].read_bytes() == text
        assert (len(archive), len(archive)) in seen and (len(text), len(text)) in seen and server.count() == 4
        assert [n.split(" from ")[0] for n in notes if n.startswith("downloading")] == [
            f"downloading {r.filename}" for r in resources
        ]
        assert sorted(p.name for p in (data / "downloads").iterdir()) == ["a9a", "a9a.t", "covtype.bz2", "set.tar.gz"]
        (data / "downloads" / "set.tar.gz").unlink()  # extracted archives need not be kept
        assert fetch(resources, data, report=notes.append) == targets
        assert server.count() == 4
