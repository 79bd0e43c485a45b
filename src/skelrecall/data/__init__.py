"""Datasets: the nnU-Net v2 raw layout, synthetic generators, converters and the DataModule."""
