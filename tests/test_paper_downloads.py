"""`metricbench data download TASK` for every paper dataset with a public download, against a loopback HTTP
server serving the task's fixture packed as the real archive is (tar.gz, tar, zip, plain or bz2 LIBSVM files):
it downloads, verifies, unpacks into the layout the loader reads, refuses a checksum mismatch in one line,
and resumes an interrupted transfer with a Range request."""

from __future__ import annotations

import bz2
import hashlib
import io
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from helpers.loopback import LoopbackServer
from metricbench.bench.cli import main
from metricbench.tasks import TASKS, create_task
from metricbench.tasks.kinds.base import DataPaths

DOWNLOADABLE = ("cifar10", "sop", "voc2007", "a9a", "covtype")
STREAMED = {"sop": {"workers": 0, "backbone_weights": "none"}, "voc2007": {"workers": 0, "backbone_weights": "none"}}


def _tar(root: Path, members: list[str], compression: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as archive:
        for member in members:
            archive.add(root / member, arcname=member)
    return buffer.getvalue()


def _zip(root: Path, member: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted((root / member).rglob("*")):
            archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue()


def packed(task: str, fixture: Path) -> dict[str, bytes]:
    """The task's fixture as the files its resources name, packed the way the publisher packs the real data."""
    if task == "cifar10":
        return {"cifar-10-python.tar.gz": _tar(fixture, ["cifar-10-batches-py"], "gz")}
    if task == "sop":
        return {"Stanford_Online_Products.zip": _zip(fixture, "Stanford_Online_Products")}
    if task == "voc2007":
        root = fixture / "VOCdevkit" / "VOC2007"
        test_ids = (root / "ImageSets/Main/test.txt").read_text().split()
        test_files = [
            f"VOCdevkit/VOC2007/{kind}/{i}.{ext}"
            for i in test_ids
            for kind, ext in (("JPEGImages", "jpg"), ("Annotations", "xml"))
        ]
        everything = [p.relative_to(fixture).as_posix() for p in sorted(root.rglob("*")) if p.is_file()]
        trainval = [p for p in everything if p not in test_files and not p.endswith("test.txt")]
        return {
            "VOCtrainval_06-Nov-2007.tar": _tar(fixture, trainval),
            "VOCtest_06-Nov-2007.tar": _tar(fixture, [*test_files, "VOCdevkit/VOC2007/ImageSets/Main/test.txt"]),
        }
    if task == "a9a":
        return {name: (fixture / name).read_bytes() for name in ("a9a", "a9a.t")}
    return {"covtype.libsvm.binary.bz2": bz2.compress((fixture / "covtype.libsvm.binary").read_bytes())}


@pytest.fixture
def served(tmp_path, monkeypatch):
    """(server, task name -> its files) with every downloadable task's resources pointing at the server,
    checksummed (md5) where the real resource is."""
    with LoopbackServer() as server:

        def serve(task: str) -> dict[str, bytes]:
            fixture = tmp_path / f"{task}-fixture"
            assert main(["data", "fixture", task, "--data-dir", str(fixture)]) == 0
            files = packed(task, fixture)
            cls = TASKS.entry(task).factory
            resources = []
            for resource in cls.data.resources:
                content = files[resource.filename]
                server.files[f"/{resource.filename}"] = content
                checksum = None if resource.checksum is None else f"md5:{hashlib.md5(content).hexdigest()}"
                resources.append(replace(resource, url=server.url(f"/{resource.filename}"), checksum=checksum))
            monkeypatch.setattr(cls, "data", replace(cls.data, resources=tuple(resources)))
            return files

        yield server, serve


def the_error(capsys) -> str:
    """The one error line on stderr (progress lines, "downloading ...", may precede it)."""
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("metricbench: error:")]
    assert len(errors) == 1, errors
    return errors[0]


def _loads(task: str, data_dir: Path) -> dict[str, int]:
    instance = create_task(task, **STREAMED.get(task, {}))
    instance.check_data(DataPaths(data_dir, data_dir / ".generated"))
    return instance.load_splits(DataPaths(data_dir, data_dir / ".generated")).sizes()


@pytest.mark.parametrize("task", DOWNLOADABLE)
def test_download_unpacks_into_the_layout_the_loader_reads(served, tmp_path, task, capsys):
    server, serve = served
    serve(task)
    data_dir = tmp_path / "data"
    assert main(["data", "download", task, "--data-dir", str(data_dir)]) == 0
    assert "ready in" in capsys.readouterr().out
    sizes = _loads(task, data_dir)
    assert all(n > 0 for n in sizes.values())
    requests = server.count()
    assert main(["data", "download", task, "--data-dir", str(data_dir)]) == 0  # done already: nothing is fetched again
    assert server.count() == requests


@pytest.mark.parametrize("task", DOWNLOADABLE)
def test_a_checksum_mismatch_or_a_cut_transfer_is_one_line_and_the_next_run_resumes(served, tmp_path, task, capsys):
    server, serve = served
    files = serve(task)
    name = next(iter(files))
    path = f"/{name}"
    data_dir = tmp_path / "data"
    resource = next(r for r in TASKS.entry(task).factory.data.resources if r.filename == name)
    if resource.checksum is not None:
        server.files[path] = files[name][:-1] + bytes([files[name][-1] ^ 1])  # one bit flipped
        assert main(["data", "download", task, "--data-dir", str(data_dir)]) == 2
        error = the_error(capsys)
        assert "checksum" in error and name in error
        assert not (data_dir / "downloads" / name).exists()
        server.files[path] = files[name]
    cut = len(files[name]) // 2
    server.truncate_next(path, cut)
    assert main(["data", "download", task, "--data-dir", str(data_dir)]) == 2
    assert name in the_error(capsys)
    assert main(["data", "download", task, "--data-dir", str(data_dir)]) == 0
    assert server.ranges(path)[-1] == f"bytes={cut}-"
    assert (data_dir / "downloads" / name).read_bytes() == files[name]
    assert all(n > 0 for n in _loads(task, data_dir).values())
