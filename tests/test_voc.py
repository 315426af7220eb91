"""The VOC2007 layout (write, read, errors), the shapes generator that writes it, and the tiny detector."""

from __future__ import annotations

import errno
import os
import re
import xml.etree.ElementTree as ET

import pytest
import torch
from metricbench.tasks.formats import shapes as shapes_data
from metricbench.tasks.formats.shapes import SHAPE_CLASSES, generate_shapes_voc
from metricbench.tasks.formats.voc import (
    VOC_CLASSES,
    VOCDetection,
    VOCFormatError,
    VOCObject,
    parse_annotation,
    read_image_set,
    write_voc,
)
from metricbench.tasks.models.detectors import tiny_faster_rcnn
from torch import nn

CLASSES = ("cat", "dog")


def flat_image(height: int, width: int, value: int = 120) -> torch.Tensor:
    return torch.full((3, height, width), value, dtype=torch.uint8)


@pytest.fixture
def tiny_voc(tmp_path):
    """Three images: two objects (one difficult), one object, none."""
    samples = [
        ("000001", flat_image(20, 30), [VOCObject("cat", (0, 0, 10, 10)), VOCObject("dog", (5, 2, 30, 20), difficult=True)]),
        ("000002", flat_image(16, 16, 200), [VOCObject("dog", (3, 4, 4, 5), truncated=True)]),
        ("000003", flat_image(16, 16, 30), []),
    ]
    root = write_voc(tmp_path / "VOC2007", samples, {"train": ["000001", "000002"], "test": ["000003"]})
    return root, samples


def test_voc_classes_are_the_twenty_in_standard_order():
    assert len(VOC_CLASSES) == 20
    assert VOC_CLASSES[0] == "aeroplane" and VOC_CLASSES[14] == "person" and VOC_CLASSES[-1] == "tvmonitor"


def test_round_trip_keeps_boxes_difficult_and_empty_images(tiny_voc):
    root, samples = tiny_voc
    assert read_image_set(root, "train") == ["000001", "000002"]
    dataset = VOCDetection(root, "train", CLASSES)
    assert dataset.ids == ["000001", "000002"] and len(dataset) == 2
    for (image, target), (_, written, objects) in zip(dataset, samples[:2], strict=True):
        assert image.dtype == torch.uint8 and image.shape == written.shape
        assert (image.int() - written.int()).abs().max() <= 2  # JPEG of a flat image is near exact
        assert target["boxes"].dtype == torch.float32
        assert target["boxes"].tolist() == [list(map(float, obj.bbox)) for obj in objects]
        assert target["labels"].tolist() == [CLASSES.index(obj.name) + 1 for obj in objects]
        assert target["difficult"].tolist() == [obj.difficult for obj in objects]

    empty = VOCDetection(root, "test", CLASSES)
    _, target = empty[0]
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,) and target["difficult"].shape == (0,)


def test_annotation_uses_voc_one_based_inclusive_pixels(tiny_voc):
    root, _ = tiny_voc
    annotation = ET.parse(root / "Annotations" / "000001.xml").getroot()
    assert annotation.findtext("filename") == "000001.jpg"
    assert [annotation.findtext(f"size/{tag}") for tag in ("width", "height", "depth")] == ["30", "20", "3"]
    first, second = annotation.findall("object")
    assert [first.findtext(f"bndbox/{tag}") for tag in ("xmin", "ymin", "xmax", "ymax")] == ["1", "1", "10", "10"]
    assert first.findtext("difficult") == "0" and second.findtext("difficult") == "1"
    assert ET.parse(root / "Annotations" / "000002.xml").getroot().findtext("object/truncated") == "1"


def test_items_are_copies(tiny_voc):
    root, _ = tiny_voc
    dataset = VOCDetection(root, "train", CLASSES)
    dataset[0][1]["boxes"] += 100
    assert dataset[0][1]["boxes"][0].tolist() == [0.0, 0.0, 10.0, 10.0]


# ----------------------------------------------------------------------------- errors


def annotation_with(tiny_voc, body: str):
    """Replace image 000001's annotation with `body` and return its path."""
    root, _ = tiny_voc
    path = root / "Annotations" / "000001.xml"
    path.write_text(body)
    return path


GOOD_OBJECT = "<object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>"


def annotation(*objects: str) -> str:
    return "<annotation>" + "".join(objects) + "</annotation>"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("<annotation><object>", "malformed XML"),
        ("<notes/>", "expected <annotation>"),
        (annotation(GOOD_OBJECT, "<object><name>cow</name></object>"), "object 2 has unknown class 'cow'"),
        (annotation(GOOD_OBJECT, "<object><name>dog</name></object>"), "object 2 has no <bndbox>"),
        (annotation("<object><bndbox/></object>"), "object 1 has no <name>"),
        (annotation(GOOD_OBJECT.replace("<ymax>5</ymax>", "")), "object 1's <bndbox> has no <ymax>"),
        (annotation(GOOD_OBJECT.replace("<xmax>5</xmax>", "<xmax>5.5</xmax>")), "<xmax>5.5</xmax>, expected an integer"),
        (annotation(GOOD_OBJECT.replace("<xmin>1</xmin>", "<xmin>9</xmin>")), "object 1 has an empty box"),
        (annotation(GOOD_OBJECT.replace("</name>", "</name><difficult>2</difficult>")), "expected 0 or 1"),
    ],
)
def test_bad_annotation_names_the_file_and_the_problem(tiny_voc, body, problem):
    path = annotation_with(tiny_voc, body)
    for load in (lambda: parse_annotation(path, CLASSES), lambda: VOCDetection(tiny_voc[0], "train", CLASSES)):
        with pytest.raises(VOCFormatError) as caught:
            load()
        message = str(caught.value)
        assert str(path) in message and problem in message and "\n" not in message


@pytest.mark.parametrize(
    "missing",
    ["", "ImageSets/Main/train.txt", "Annotations", "Annotations/000002.xml", "JPEGImages", "JPEGImages/000002.jpg"],
)
def test_missing_file_or_folder_names_its_path(tiny_voc, missing):
    root, _ = tiny_voc
    path = root / missing
    if path.is_dir():
        for child in sorted(path.rglob("*"), reverse=True):
            child.unlink() if child.is_file() else child.rmdir()
        path.rmdir()
    else:
        path.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        VOCDetection(root, "train", CLASSES)


def test_undecodable_jpeg_names_the_file(tiny_voc):
    root, _ = tiny_voc
    path = root / "JPEGImages" / "000002.jpg"
    path.write_bytes(b"not a jpeg at all")
    dataset = VOCDetection(root, "train", CLASSES)  # images are decoded on access
    with pytest.raises(VOCFormatError, match=re.escape(str(path))) as caught:
        dataset[1]
    assert "\n" not in str(caught.value)


def test_image_set_with_a_second_column_is_refused(tiny_voc):
    root, _ = tiny_voc
    (root / "ImageSets" / "Main" / "train.txt").write_text("000001  1\n")
    with pytest.raises(VOCFormatError, match="line 1"):
        read_image_set(root, "train")


# ----------------------------------------------------------------------------- the shapes generator

SMALL = {"n_train": 4, "n_val": 2, "n_test": 3, "image_size": 48, "seed": 3}


def folder_bytes(root):
    return {path.relative_to(root): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_generator_is_deterministic_and_leaves_no_temporary_folder(tmp_path):
    first = generate_shapes_voc(tmp_path / "a" / "shapes", **SMALL)
    second = generate_shapes_voc(tmp_path / "b" / "shapes", **SMALL)
    assert folder_bytes(first) == folder_bytes(second)
    other = generate_shapes_voc(tmp_path / "c" / "shapes", **{**SMALL, "seed": 4})
    assert folder_bytes(other) != folder_bytes(first)
    assert os.listdir(tmp_path / "a") == ["shapes"]


def test_generated_folder_reads_as_voc(tmp_path):
    root = generate_shapes_voc(tmp_path / "shapes", **SMALL)
    assert read_image_set(root, "trainval") == read_image_set(root, "train") + read_image_set(root, "val")
    sizes = {name: len(VOCDetection(root, name, SHAPE_CLASSES)) for name in ("train", "val", "test")}
    assert sizes == {"train": 4, "val": 2, "test": 3}
    for image, target in VOCDetection(root, "train", SHAPE_CLASSES):
        assert image.shape == (3, 48, 48)
        assert 1 <= len(target["labels"]) <= 4
        boxes = target["boxes"]
        assert (boxes >= 0).all() and (boxes <= 48).all() and (boxes[:, 2:] > boxes[:, :2]).all()


def test_existing_folder_is_reused_untouched_or_refused(tmp_path):
    root = generate_shapes_voc(tmp_path / "shapes", **SMALL)
    stamp = (root / "JPEGImages" / "000001.jpg").stat().st_mtime_ns
    assert generate_shapes_voc(root, **SMALL) == root
    assert (root / "JPEGImages" / "000001.jpg").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="generated with"):
        generate_shapes_voc(root, **{**SMALL, "n_test": 5})


def test_losing_the_rename_race_returns_the_winners_folder(tmp_path, monkeypatch):
    winner = generate_shapes_voc(tmp_path / "winner", **SMALL)
    real_rename = os.rename

    def another_process_got_there_first(source, destination):
        real_rename(winner, destination)
        raise OSError(errno.ENOTEMPTY, "Directory not empty")

    monkeypatch.setattr(shapes_data.os, "rename", another_process_got_there_first)
    root = generate_shapes_voc(tmp_path / "shapes", **SMALL)
    assert (root / shapes_data.MARKER).exists()
    assert sorted(os.listdir(tmp_path)) == ["shapes"]  # our temporary folder is gone


# ----------------------------------------------------------------------------- the tiny detector


def test_tiny_detector_trains_and_predicts():
    torch.manual_seed(0)
    model = tiny_faster_rcnn(num_classes=4, image_size=64)
    assert any(isinstance(module, nn.BatchNorm2d) for module in model.backbone.modules())
    images = [torch.rand(3, 64, 64) for _ in range(2)]
    targets = [
        {"boxes": torch.tensor([[4.0, 4.0, 30.0, 30.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.tensor([[10.0, 20.0, 40.0, 60.0], [0.0, 0.0, 12.0, 12.0]]), "labels": torch.tensor([2, 3])},
    ]
    model.train()
    losses = model(images, targets)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()

    model.eval()
    with torch.no_grad():
        predictions = model(images)
    assert len(predictions) == 2
    for prediction in predictions:
        assert set(prediction) == {"boxes", "scores", "labels"}
        assert prediction["boxes"].shape[1:] == (4,) and len(prediction["boxes"]) <= 20
