"""Datasets as uint8 image arrays: TFDS sources, image folders, MNIST IDX, the embedded procedural faces."""
