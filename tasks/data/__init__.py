"""The data layer every task shares: splits and batch streams, sampling, partitions of a dataset's
examples, on-device transforms, dataset files on disk, downloads and starting weights."""
