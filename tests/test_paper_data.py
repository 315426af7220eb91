"""The paper tasks' datasets: each real loader reads its same-format fixture, folders made by other tools in
the standard formats load, and a missing or corrupt file is named in one line (with the line, where the
format has lines) before anything is trained."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from metricbench.bench.cli import main
from metricbench.bench.core.errors import DataError, UsageError
from metricbench.tasks import create_task
from metricbench.tasks.formats.cifar import FOLDER as CIFAR_FOLDER
from metricbench.tasks.formats.cifar import read_cifar10, write_cifar10
from metricbench.tasks.kinds.base import DataPaths

PAPER_TASKS = ("cifar10", "imagenet", "sop", "voc2007", "a9a", "covtype")


def paths(data_dir):
    return DataPaths(data_dir, data_dir / ".generated")


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    """One fixture folder per paper task, written by `metricbench data fixture`."""
    folders = {}
    for task in PAPER_TASKS:
        folder = tmp_path_factory.mktemp(task)
        assert main(["data", "fixture", task, "--data-dir", str(folder)]) == 0
        folders[task] = folder
    return folders


STREAMED = {
    "imagenet": {"workers": 0},
    "sop": {"workers": 0, "backbone_weights": "none"},
    "voc2007": {"workers": 0, "backbone_weights": "none"},
}


def loaded(task_name, folder, **options):
    """The task (streamed ones read in the main process, no public weights) and its splits from `folder`."""
    task = create_task(task_name, **{**STREAMED.get(task_name, {}), **options})
    if task_name != "imagenet":  # imagenet's check asks for starting weights first
        task.check_data(paths(folder))
    return task, task.load_splits(paths(folder))


@pytest.mark.parametrize("task_name", PAPER_TASKS)
def test_each_loader_reads_its_fixture_with_disjoint_fixed_splits(fixtures, task_name, capsys):
    task, splits = loaded(task_name, fixtures[task_name])
    sizes = splits.sizes()
    assert all(n > 0 for n in sizes.values()), sizes
    _, again = loaded(task_name, fixtures[task_name])
    assert again.sizes() == sizes  # fixed by the data and the split seed, never by a run seed
    batch = next(splits.train.eval_batches(4))
    predictions = task.predict(task.build_model().eval(), batch.inputs) if task_name != "voc2007" else None
    if predictions is not None:
        assert len(predictions) == len(batch.targets)
    assert main(["data", "check", task_name, "--data-dir", str(fixtures[task_name])]) == 0
    assert "train" in capsys.readouterr().out


def test_cifar_splits_keep_uint8_images_on_the_device_and_carve_val_from_train(fixtures):
    _, splits = loaded("cifar10", fixtures["cifar10"])
    arrays = read_cifar10(fixtures["cifar10"])
    assert splits.train.inputs.dtype == torch.uint8 and splits.train.inputs.shape[1:] == (3, 32, 32)
    assert len(splits.train) + len(splits.val) == len(arrays.train_labels)
    assert len(splits.test) == len(arrays.test_labels)
    augmented = next(splits.train.train_batches(iter_stream(len(splits.train))))
    assert augmented.inputs.dtype == torch.uint8


def iter_stream(n):
    from metricbench.tasks.data.sampling import ShuffledBatches

    return ShuffledBatches(n, 8, seed=0)


def test_cifar_batches_written_by_python2_with_byte_keys_load(tmp_path):
    """The real files were pickled by Python 2: byte-string keys, read back with encoding latin1."""
    write_cifar10(tmp_path, per_batch=10, test_images=10)
    root = tmp_path / CIFAR_FOLDER
    for name in ("data_batch_1", "test_batch"):
        with open(root / name, "rb") as handle:
            batch = pickle.load(handle)
        with open(root / name, "wb") as handle:
            pickle.dump({key.encode(): value for key, value in batch.items()}, handle, protocol=2)
    arrays = read_cifar10(tmp_path)
    assert arrays.train_images.shape == (50, 3, 32, 32) and arrays.test_labels.shape == (10,)


def test_torchvision_reads_our_cifar_fixture(tmp_path, monkeypatch):
    import torchvision

    write_cifar10(tmp_path, per_batch=10, test_images=10)
    # torchvision checks the real files' md5s, which a fixture cannot match
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: True)
    dataset = torchvision.datasets.CIFAR10(str(tmp_path), train=True, download=False)
    arrays = read_cifar10(tmp_path)
    assert np.array_equal(dataset.data.transpose(0, 3, 1, 2), arrays.train_images)
    assert dataset.targets == arrays.train_labels.tolist()


def test_libsvm_files_written_by_scikit_learn_load(tmp_path):
    from sklearn.datasets import dump_svmlight_file

    rng = np.random.default_rng(0)
    features = (rng.random((60, 123)) < 0.1).astype(float)
    labels = rng.integers(0, 2, 60)
    features[:, 122] = 0  # like a9a.t, whose largest feature index is below 123
    for name, rows in (("a9a", slice(0, 40)), ("a9a.t", slice(40, 60))):
        dump_svmlight_file(features[rows], np.where(labels[rows] == 1, 1, -1), str(tmp_path / name), zero_based=False)
    task, splits = loaded("a9a", tmp_path)
    assert splits.train.inputs.shape[1] == 123
    assert len(splits.test) == 20 and len(splits.train) + len(splits.val) == 40


def test_a_bad_libsvm_line_is_named_with_its_number(fixtures, tmp_path):
    lines = (fixtures["a9a"] / "a9a").read_text().splitlines()
    lines[6] = "+1 5:1 3:1"
    (tmp_path / "a9a").write_text("\n".join(lines) + "\n")
    (tmp_path / "a9a.t").write_text((fixtures["a9a"] / "a9a.t").read_text())
    with pytest.raises(DataError, match=r"a9a: line 7: feature indices that do not increase"):
        loaded("a9a", tmp_path)


def test_a_truncated_cifar_batch_is_named(tmp_path):
    write_cifar10(tmp_path, per_batch=10, test_images=10)
    batch = tmp_path / CIFAR_FOLDER / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:500])
    with pytest.raises(DataError, match=r"data_batch_3: not a readable CIFAR-10 python batch, truncated or corrupt"):
        read_cifar10(tmp_path)


def test_missing_files_name_the_path_and_the_download_command(tmp_path):
    write_cifar10(tmp_path, per_batch=10, test_images=10)
    (tmp_path / CIFAR_FOLDER / "test_batch").unlink()
    with pytest.raises(DataError, match=r"test_batch not found; run `metricbench data download cifar10 --data-dir"):
        create_task("cifar10").check_data(paths(tmp_path))
    with pytest.raises(UsageError, match="no public download"):
        create_task("imagenet", weights="recipe").check_data(paths(tmp_path))
    with pytest.raises(UsageError, match="pass --data-dir DIR"):
        create_task("sop").check_data(DataPaths(None, tmp_path))


def test_malformed_voc_xml_and_sop_index_lines_are_named(fixtures, tmp_path):
    import shutil

    voc = tmp_path / "voc"
    shutil.copytree(fixtures["voc2007"], voc)
    annotation = sorted((voc / "VOCdevkit/VOC2007/Annotations").glob("*.xml"))[3]
    annotation.write_text(annotation.read_text()[:-40])
    with pytest.raises(DataError, match=rf"{annotation.name}: malformed XML"):
        loaded("voc2007", voc)

    sop = tmp_path / "sop"
    shutil.copytree(fixtures["sop"], sop)
    index = sop / "Stanford_Online_Products" / "Ebay_train.txt"
    lines = index.read_text().splitlines()
    lines[4] = "5 x 1 bicycle_final/1.JPG"
    index.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"Ebay_train.txt: line 5 is"):
        loaded("sop", sop)


def test_a_voc_folder_written_by_another_tool_loads(tmp_path):
    """Hand-written annotations in the devkit's own style: other tags, tab indentation, VOC2012-style objects
    without <difficult>, and the extra tags (occluded, part) VOC files carry."""
    from PIL import Image

    root = tmp_path / "VOCdevkit" / "VOC2007"
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)
    for image_id in ("000005", "000007", "000009"):
        Image.new("RGB", (50, 40), (90, 120, 200)).save(root / "JPEGImages" / f"{image_id}.jpg")
        (root / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation>\n\t<folder>VOC2007</folder>\n\t<filename>{image_id}.jpg</filename>\n"
            "\t<size><width>50</width><height>40</height><depth>3</depth></size>\n"
            "\t<object>\n\t\t<name>chair</name>\n\t\t<pose>Rear</pose>\n\t\t<truncated>0</truncated>\n"
            "\t\t<bndbox><xmin>3</xmin><ymin>4</ymin><xmax>30</xmax><ymax>33</ymax></bndbox>\n\t</object>\n"
            "\t<object><name>person</name><occluded>1</occluded><difficult>1</difficult>"
            "<bndbox><xmin>10</xmin><ymin>12</ymin><xmax>20</xmax><ymax>38</ymax></bndbox>"
            "<part><name>head</name><bndbox><xmin>11</xmin><ymin>12</ymin><xmax>14</xmax><ymax>15</ymax></bndbox></part></object>\n"
            "</annotation>\n"
        )
    (root / "ImageSets/Main/trainval.txt").write_text("000005\n000007\n")
    (root / "ImageSets/Main/test.txt").write_text("000009\n")
    task, splits = loaded("voc2007", tmp_path, val_fraction=0.5)
    images, targets = next(splits.test.eval_batches(2))
    assert targets[0]["labels"].tolist() == [9, 15]  # chair, person (index + 1)
    assert targets[0]["difficult"].tolist() == [False, True]
    assert targets[0]["boxes"][0].tolist() == [2.0, 3.0, 30.0, 33.0]


def test_an_sop_folder_in_the_published_layout_loads(tmp_path):
    from metricbench.tasks.formats.images import write_jpeg

    root = tmp_path / "Stanford_Online_Products"
    rows = {"Ebay_train.txt": [], "Ebay_test.txt": []}
    for image_id in range(1, 41):
        product = (image_id - 1) // 4 + 1
        relative = f"{'chair' if product % 2 else 'kettle'}_final/{111085122871 + product}_{image_id % 4}.JPG"
        write_jpeg(root / relative, np.full((30, 40, 3), 10 * product, dtype=np.uint8))
        rows["Ebay_train.txt" if product <= 7 else "Ebay_test.txt"].append(f"{image_id} {product} {product % 2 + 1} {relative}")
    for name, lines in rows.items():
        (root / name).write_text("image_id class_id super_class_id path\n" + "\n".join(lines) + "\n")
    task, splits = loaded("sop", tmp_path, image_size=32)
    assert len(splits.test) == 12 and len(splits.train) + len(splits.val) == 28
    assert set(splits.val.labels().tolist()).isdisjoint(splits.train.labels().tolist())
    batch = next(splits.test.eval_batches(5))
    assert batch.inputs.shape == (5, 3, 32, 32) and batch.inputs.dtype == torch.uint8


def test_the_data_command_explains_imagenet_and_refuses_embedded_tasks(tmp_path, capsys):
    assert main(["data", "download", "imagenet", "--data-dir", str(tmp_path)]) == 2
    assert "image-net.org" in capsys.readouterr().err
    assert main(["data", "download", "digits", "--data-dir", str(tmp_path)]) == 2
    assert "reads no dataset" in capsys.readouterr().err
