"""Small object detectors for the embedded detection task.

`tiny_faster_rcnn` is torchvision's Faster R-CNN (two stages: a region proposal network, then RoI
classification and box regression) with every part shrunk so that it trains on a CPU in seconds: a
few-layer convolutional backbone with one feature map, anchors sized for small images, small heads and
small sample counts. It keeps the real detector's structure and losses, so the methods benchmarked
on it meet the same kind of model as on voc2007, only much faster. Nothing is pretrained or downloaded.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign

ANCHOR_SIZES = (8, 16, 32, 48)  # pixels; the shapes are about 8 to 48 pixels across in 96-pixel images
ANCHOR_RATIOS = (0.5, 1.0, 2.0)  # boxes of occluded or cut-off shapes are often not square


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)
    )


class TinyBackbone(nn.Sequential):
    """Five 3x3 conv-BatchNorm-ReLU layers, total stride 4: one feature map with `out_channels` channels.

    Stride 4 keeps a 8-pixel object about two feature cells wide. The BatchNorm layers are also where
    FiLM-style adapters attach.
    """

    def __init__(self, width: int):
        super().__init__(
            _conv_bn_relu(3, width, 2),
            _conv_bn_relu(width, width, 1),
            _conv_bn_relu(width, 2 * width, 2),
            _conv_bn_relu(2 * width, 2 * width, 1),
            _conv_bn_relu(2 * width, 2 * width, 1),
        )
        self.out_channels = 2 * width  # read by FasterRCNN to size its heads


def tiny_faster_rcnn(num_classes: int, image_size: int, width: int = 16, representation_size: int = 128) -> FasterRCNN:
    """A Faster R-CNN small enough to train on one CPU thread, for square `image_size` images.

    `num_classes` counts the background as class 0 (torchvision's convention): 3 shape classes -> 4.
    Inputs are a list of float (3, H, W) images in [0, 1]; `min_size = max_size = image_size` so they
    are not resized. In train mode the model takes (images, targets) and returns torchvision's loss
    dict; in eval mode it returns one dict of boxes, scores and labels per image.
    """
    backbone = TinyBackbone(width)
    anchors = AnchorGenerator(sizes=(ANCHOR_SIZES,), aspect_ratios=(ANCHOR_RATIOS,))
    return FasterRCNN(
        backbone,
        num_classes=None,  # given through box_predictor
        min_size=image_size,
        max_size=image_size,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.25, 0.25, 0.25],
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=300,
        rpn_post_nms_top_n_train=100,
        rpn_pre_nms_top_n_test=150,
        rpn_post_nms_top_n_test=50,
        rpn_batch_size_per_image=64,
        box_roi_pool=MultiScaleRoIAlign(["0"], output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(backbone.out_channels * 7 * 7, representation_size),
        box_predictor=FastRCNNPredictor(representation_size, num_classes),
        box_batch_size_per_image=32,  # RoIAlign backward dominates a CPU step; 32 halves it
        box_score_thresh=0.01,  # keep low-scored boxes: they only add recall to an AP curve
        box_detections_per_img=20,
    )
