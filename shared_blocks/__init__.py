"""Attention blocks (``nn.Module``) built on :mod:`tessera.kernels`, registered by name."""
