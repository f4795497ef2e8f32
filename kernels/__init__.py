"""Attention kernels: Triton on CUDA, exact PyTorch on CPU, one public API."""
