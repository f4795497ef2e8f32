"""Sentence encoders for text-conditioned segmentation: ``texts -> (B, d)``.

Any ``nn.Module`` with a ``dim`` attribute whose ``forward(texts: list[str])`` returns a
``(B, dim)`` tensor can be plugged into :class:`~tessera.apps.segmentation.model.
SentenceAttentionSegmenter` (configs give it as ``{class_path, init_args}``).

- :class:`OpenCLIPTextEncoder`: the open_clip text tower (default in the paper-size config;
  the paper used the frozen sentence-transformers ``all-MiniLM-L6-v2``). ``pretrained=None``
  is random init and offline; a tag or a local weights file loads real weights.
- :class:`TinyTextEncoder`: open_clip's offline BPE tokenizer, token ids hashed into a small
  table, and a 2-layer transformer; trained from scratch for the shipped tiny checkpoint
  (the 49k-entry CLIP embedding table alone would exceed the checkpoint size budget).
"""

from __future__ import annotations

import torch
from torch import nn


def _check_texts(texts) -> list[str]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be a list of strings")
    if any(not t.strip() for t in texts):
        raise ValueError("texts must not contain an empty question/expression")
    return list(texts)


class TinyTextEncoder(nn.Module):
    """Small trainable sentence encoder over open_clip BPE tokens.

    Args:
        dim: output embedding size d.
        width: transformer width.
        layers: transformer layers.
        heads: attention heads.
        context_length: tokens kept per text (start/end tokens included).
        buckets: size of the hashed token table (BPE id -> 1 + id mod (buckets - 1)).
    """

    def __init__(
        self,
        dim: int = 64,
        width: int = 64,
        layers: int = 2,
        heads: int = 4,
        context_length: int = 24,
        buckets: int = 4093,
    ):
        super().__init__()
        self.dim, self.context_length, self.buckets = dim, context_length, buckets
        self.token = nn.Embedding(buckets, width, padding_idx=0)
        self.position = nn.Parameter(torch.randn(context_length, width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, dim)
        self._tokenizer = None

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """Hashed token ids ``(B, L)``, 0 = padding."""
        if self._tokenizer is None:
            from open_clip.tokenizer import SimpleTokenizer

            self._tokenizer = SimpleTokenizer(context_length=self.context_length)
        ids = self._tokenizer(_check_texts(texts))
        return torch.where(ids > 0, 1 + ids % (self.buckets - 1), ids)

    def forward(self, texts: list[str]) -> torch.Tensor:
        ids = self.tokenize(texts).to(self.position.device)  # (B, L)
        keep = ids > 0
        x = self.token(ids) + self.position[: ids.shape[1]]  # (B, L, W)
        x = self.encoder(x, src_key_padding_mask=~keep)
        x = self.norm(x) * keep[..., None]
        pooled = x.sum(1) / keep.sum(1, keepdim=True).clamp(min=1)  # (B, W)
        return self.proj(pooled)


class OpenCLIPTextEncoder(nn.Module):
    """The text tower of an open_clip model (image tower dropped).

    Args:
        model_name: open_clip architecture (``ViT-B-32`` ...).
        pretrained: open_clip pretrained tag or a local weights file; None = random init
            (nothing is downloaded).
        freeze: keep the tower frozen and in eval mode (as the paper's text encoder).
    """

    def __init__(self, model_name: str = "ViT-B-32", pretrained: str | None = None, freeze=True):
        super().__init__()
        import open_clip

        clip = open_clip.create_model(model_name, pretrained=pretrained)
        clip.visual = nn.Identity()
        self.clip = clip
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.dim = clip.text_projection.shape[1]
        self.freeze = freeze
        if freeze:
            self.clip.requires_grad_(False)
            self.clip.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze:
            self.clip.eval()
        return self

    def forward(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(_check_texts(texts)).to(self.clip.text_projection.device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            return self.clip.encode_text(tokens)


def build_text_encoder(spec: dict | None) -> nn.Module:
    """An encoder from ``{"class_path": "pkg.mod.Class", "init_args": {...}}`` (None = tiny)."""
    import importlib

    if spec is None:
        return TinyTextEncoder()
    if "class_path" not in spec:
        raise ValueError(f"text_encoder needs a 'class_path', got {spec}")
    module, _, name = spec["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    encoder = cls(**spec.get("init_args", {}))
    if not isinstance(getattr(encoder, "dim", None), int):
        raise ValueError(f"{spec['class_path']} must expose the embedding size as `dim`")
    return encoder
