"""Readers and same-format fixture writers for the datasets' on-disk formats (VOC, CIFAR, ImageNet, SOP,
LIBSVM, image folders) and the generators of the embedded glyphs and shapes datasets."""
