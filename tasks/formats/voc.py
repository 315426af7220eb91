"""The PASCAL VOC2007 on-disk layout: writing it, and reading it as a torch detection dataset.

A VOC root (e.g. `VOCdevkit/VOC2007`) holds:
- `JPEGImages/<id>.jpg`: the images;
- `Annotations/<id>.xml`: one XML file per image (size, and per object its class name, pose, truncated,
  difficult flags and `bndbox`);
- `ImageSets/Main/<set>.txt`: the ids of a split (train, val, trainval, test), one per line.

Box coordinates. VOC's `bndbox` counts pixels, 1-based and inclusive: an object covering the pixel
columns 0..9 of the image (0-based) has xmin=1, xmax=10. Torchvision and our detection metrics use
continuous coordinates, where that object spans x = 0 to x = 10 (width 10). So reading converts
x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax, and writing does the inverse; a box with integer
continuous coordinates survives a round trip exactly. (py-faster-rcnn subtracts 1 from all four and
then adds 1 to every width; the two conventions give the same widths and IoUs.)

Labels are the class index + 1, because torchvision's detectors reserve label 0 for the background.

Errors say which file is at fault, in one line: a missing folder or file raises `FileNotFoundError`
naming its path; a malformed annotation, an unknown class or a bad box raises `VOCFormatError`; an
undecodable JPEG raises `VOCFormatError` naming the image.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

JPEG_QUALITY = 95  # high enough that the edges of generated shapes stay crisp
BOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")


class VOCFormatError(ValueError):
    """A VOC file that exists but cannot be used: malformed XML, unknown class, bad box, undecodable JPEG."""


@dataclass(frozen=True)
class VOCObject:
    """One annotated object. `bbox` is x1, y1, x2, y2 in continuous 0-based pixel coordinates (see module doc)."""

    name: str
    bbox: tuple[float, float, float, float]
    difficult: bool = False
    truncated: bool = False
    pose: str = "Unspecified"


# ----------------------------------------------------------------------------- writing


def _text(parent: ET.Element, tag: str, value) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = str(value)
    return element


def _annotation_xml(folder: str, image_id: str, width: int, height: int, objects: Iterable[VOCObject]) -> ET.ElementTree:
    """An annotation in the schema of VOC2007's `Annotations/*.xml`."""
    root = ET.Element("annotation")
    _text(root, "folder", folder)
    _text(root, "filename", f"{image_id}.jpg")
    source = ET.SubElement(root, "source")
    _text(source, "database", "metricbench")
    _text(source, "annotation", "PASCAL VOC2007 layout")
    _text(source, "image", "generated")
    size = ET.SubElement(root, "size")
    _text(size, "width", width)
    _text(size, "height", height)
    _text(size, "depth", 3)
    _text(root, "segmented", 0)
    for obj in objects:
        element = ET.SubElement(root, "object")
        _text(element, "name", obj.name)
        _text(element, "pose", obj.pose)
        _text(element, "truncated", int(obj.truncated))
        _text(element, "difficult", int(obj.difficult))
        x1, y1, x2, y2 = (round(float(v)) for v in obj.bbox)
        box = ET.SubElement(element, "bndbox")
        for tag, value in zip(BOX_FIELDS, (x1 + 1, y1 + 1, x2, y2), strict=True):
            _text(box, tag, value)
    tree = ET.ElementTree(root)
    ET.indent(tree, space="\t")
    return tree


def write_voc(
    root: str | Path,
    samples: Iterable[tuple[str, torch.Tensor, Sequence[VOCObject]]],
    image_sets: Mapping[str, Sequence[str]],
    folder: str = "VOC2007",
) -> Path:
    """Write images, annotations and image sets under `root` in the VOC2007 layout; return `root`.

    `samples` yields (image_id, uint8 CHW RGB image, objects); box coordinates are rounded to whole
    pixels, as VOC stores them. `image_sets` maps a set name (e.g. "trainval") to its ids. `folder` is
    what the annotations' <folder> says (not taken from `root`, so that writing into a temporary folder
    and renaming it gives the same bytes).
    """
    root = Path(root)
    images, annotations, sets = root / "JPEGImages", root / "Annotations", root / "ImageSets" / "Main"
    for directory in (images, annotations, sets):
        directory.mkdir(parents=True, exist_ok=True)
    for image_id, image, objects in samples:
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(
                f"image {image_id}: expected a uint8 RGB tensor of shape (3, H, W), got {image.dtype} {tuple(image.shape)}"
            )
        pixels = image.permute(1, 2, 0).contiguous().numpy()
        Image.fromarray(pixels).save(images / f"{image_id}.jpg", format="JPEG", quality=JPEG_QUALITY)
        height, width = image.shape[1:]
        tree = _annotation_xml(folder, image_id, width, height, objects)
        tree.write(annotations / f"{image_id}.xml", encoding="utf-8")
    for name, ids in image_sets.items():
        (sets / f"{name}.txt").write_text("".join(f"{image_id}\n" for image_id in ids))
    return root


# ----------------------------------------------------------------------------- reading


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def read_image_set(root: str | Path, name: str) -> list[str]:
    """The image ids listed in `ImageSets/Main/<name>.txt`, in file order."""
    path = _require(Path(root) / "ImageSets" / "Main" / f"{name}.txt", f"VOC image set {name!r}")
    ids = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        # the per-class lists (e.g. `dog_train.txt`) have a second column; Main/<set>.txt must not
        if len(fields) != 1:
            raise VOCFormatError(f"{path}: line {number} is {line.strip()!r}, expected a single image id")
        ids.append(fields[0])
    return ids


def _integer(path: Path, where: str, element: ET.Element | None, tag: str) -> int:
    child = None if element is None else element.find(tag)
    if child is None or child.text is None:
        raise VOCFormatError(f"{path}: {where} has no <{tag}>")
    try:
        return int(child.text.strip())
    except ValueError:
        raise VOCFormatError(f"{path}: {where} has <{tag}>{child.text.strip()}</{tag}>, expected an integer") from None


def _flag(path: Path, where: str, element: ET.Element, tag: str) -> bool:
    """A 0/1 flag such as <difficult>; absent means 0 (some VOC2012 objects have no <difficult>)."""
    if element.find(tag) is None:
        return False
    value = _integer(path, where, element, tag)
    if value not in (0, 1):
        raise VOCFormatError(f"{path}: {where} has <{tag}>{value}</{tag}>, expected 0 or 1")
    return bool(value)


def parse_annotation(path: str | Path, classes: Sequence[str] = VOC_CLASSES) -> dict[str, torch.Tensor]:
    """One annotation file as a torchvision target: boxes (M, 4) float32, labels (M,) int64, difficult (M,) bool.

    Boxes are converted to continuous coordinates (x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax);
    labels are index in `classes` + 1. Objects are numbered from 1 in error messages, in file order.
    """
    path = _require(Path(path), "VOC annotation")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        raise VOCFormatError(f"{path}: malformed XML ({error})") from None
    if root.tag != "annotation":
        raise VOCFormatError(f"{path}: root element is <{root.tag}>, expected <annotation>")
    label_of = {name: index + 1 for index, name in enumerate(classes)}
    boxes, labels, difficult = [], [], []
    for number, obj in enumerate(root.iter("object"), start=1):
        where = f"object {number}"
        name_element = obj.find("name")
        name = (name_element.text or "").strip() if name_element is not None else ""
        if not name:
            raise VOCFormatError(f"{path}: {where} has no <name>")
        if name not in label_of:
            raise VOCFormatError(f"{path}: {where} has unknown class {name!r} (expected one of {', '.join(classes)})")
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise VOCFormatError(f"{path}: {where} has no <bndbox>")
        xmin, ymin, xmax, ymax = (_integer(path, f"{where}'s <bndbox>", bndbox, tag) for tag in BOX_FIELDS)
        if xmax < xmin or ymax < ymin:
            raise VOCFormatError(f"{path}: {where} has an empty box (xmin={xmin}, ymin={ymin}, xmax={xmax}, ymax={ymax})")
        boxes.append((xmin - 1, ymin - 1, xmax, ymax))
        labels.append(label_of[name])
        difficult.append(_flag(path, where, obj, "difficult"))
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "difficult": torch.tensor(difficult, dtype=torch.bool),
    }


def read_jpeg(path: str | Path) -> torch.Tensor:
    """A JPEG file as a uint8 (3, H, W) RGB tensor (grayscale images are expanded to RGB)."""
    path = _require(Path(path), "VOC image")
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise VOCFormatError(f"{path}: cannot decode JPEG ({reason})") from None
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).contiguous()


class VOCDetection(torch.utils.data.Dataset):
    """One image set of a VOC root as (uint8 CHW image, target dict) pairs.

    All annotations are parsed, and all image files checked to exist, at construction: a corrupt or
    missing file fails before any training starts, and `targets` (for scoring) needs no image decoding.
    Images are decoded on each access, so memory stays small for the 5,011 VOC2007 trainval images.
    """

    def __init__(self, root: str | Path, image_set: str, classes: Sequence[str] = VOC_CLASSES):
        self.root = _require(Path(root), "VOC root folder")
        self.image_set = image_set
        self.classes = tuple(classes)
        annotations = _require(self.root / "Annotations", "VOC annotations folder")
        images = _require(self.root / "JPEGImages", "VOC images folder")
        self.ids = read_image_set(self.root, image_set)
        self.image_paths = [_require(images / f"{image_id}.jpg", "VOC image") for image_id in self.ids]
        self.targets = [parse_annotation(annotations / f"{image_id}.xml", self.classes) for image_id in self.ids]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        target = {key: value.clone() for key, value in self.targets[index].items()}  # callers may edit in place
        return read_jpeg(self.image_paths[index]), target
