"""Attention kernels as plain functions on tensors, below the layer."""
