"""Text-video retrieval model: open_clip frame/text encoders + a selectable pooling head.

- Frames ``(B, F, 3, S, S)`` go through CLIP's image tower one by one → ``(B, F, C)``;
  captions through its text tower → ``(T, C)`` (Radford et al., 2021; open_clip).
- The pooling head turns frame features into one video embedding per (text, video) pair and
  gives the ``(T, V)`` cosine similarities (see :mod:`tessera.apps.retrieval.heads`).
- Audio (TEFAL head only): a small transformer over log-mel patches → ``(B, A, C)`` tokens.

The paper setting (X-Pool, Gorti et al., CVPR 2022) is the ``ViT-B-32`` architecture with
OpenAI's weights (``pretrained="openai"``, QuickGELU). Offline, a pretrained tag cannot be
downloaded: the model is then built with random weights and a warning says so. ``clip`` may
also be a dict of open_clip ``CLIP`` arguments (``embed_dim``, ``vision_cfg``, ``text_cfg``)
for small configs trained from scratch.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tessera.apps.retrieval.heads import build_head

log = logging.getLogger(__name__)


def build_clip(clip: str | dict[str, Any], pretrained: str | None, quick_gelu: bool) -> nn.Module:
    """An open_clip ``CLIP``: registry name (+ pretrained tag or local file) or a config dict.

    A pretrained *file* that cannot be loaded raises; a pretrained *tag* that cannot be
    downloaded (offline) warns and leaves the weights random.
    """
    import open_clip

    if isinstance(clip, dict):
        model = open_clip.model.CLIP(**clip, quick_gelu=quick_gelu)
        if pretrained:
            open_clip.load_checkpoint(model, pretrained)
        return model
    if pretrained and Path(pretrained).is_file():
        return open_clip.create_model(clip, pretrained=pretrained, force_quick_gelu=quick_gelu)
    if pretrained:
        try:
            return open_clip.create_model(clip, pretrained=pretrained, force_quick_gelu=quick_gelu)
        except Exception as err:  # no network: download errors come from several libraries
            warnings.warn(
                f"could not load open_clip weights {clip}/{pretrained!r} "
                f"({err.__class__.__name__}: {err}); the model is RANDOMLY initialised. "
                "Run once online (weights are cached) or pass a local checkpoint file.",
                UserWarning,
                stacklevel=2,
            )
    return open_clip.create_model(clip, pretrained=None, force_quick_gelu=quick_gelu)


class AudioEncoder(nn.Module):
    """Log-mel ``(B, Ta, M)`` → tokens ``(B, Ta // patch, C)``: linear patch embedding over
    ``patch`` consecutive 10 ms frames, learned positions, a small transformer encoder.

    ``mask`` ``(B, Ta)`` marks real audio; a token is valid when any of its frames is.
    """

    def __init__(self, n_mels: int, num_frames: int, dim: int, patch: int = 16,
                 layers: int = 2, heads: int = 4):  # fmt: skip
        super().__init__()
        if num_frames % patch:
            raise ValueError(f"audio num_frames {num_frames} must be a multiple of patch {patch}")
        self.patch = patch
        self.embed = nn.Linear(patch * n_mels, dim)
        self.pos = nn.Parameter(torch.zeros(1, num_frames // patch, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, batch_first=True,
                                           norm_first=True)  # fmt: skip
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, mel: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, m = mel.shape
        tokens = self.embed(mel.reshape(b, t // self.patch, self.patch * m)) + self.pos
        token_mask = mask.reshape(b, t // self.patch, self.patch).any(-1)  # (B, A)
        # a clip without audio keeps one token so attention is defined; the head ignores it
        safe = token_mask.clone()
        safe[~token_mask.any(1), 0] = True
        tokens = self.norm(self.encoder(tokens, src_key_padding_mask=~safe))
        return tokens, token_mask


class RetrievalModel(nn.Module):
    """CLIP encoders + pooling head.

    Args:
        clip: open_clip model name (``"ViT-B-32"``) or a dict of ``CLIP`` arguments.
        pretrained: open_clip tag (``"openai"``, ``"laion2b_s34b_b79k"``), a local checkpoint
            file, or None (random).
        quick_gelu: QuickGELU activations (what OpenAI's weights were trained with).
        pooling: ``xpool`` (text-conditioned), ``mean`` (CLIP4Clip meanP) or ``tefal``
            (text-conditioned video + audio).
        heads: attention heads of the pooling (1 in X-Pool).
        dropout: pooling dropout (0.3 in X-Pool on MSR-VTT 9k).
        audio_frames, n_mels: log-mel input size of the audio encoder (``tefal``).
        audio_patch, audio_layers: audio encoder patch length and depth.
    """

    def __init__(
        self,
        clip: str | dict[str, Any] = "ViT-B-32",
        pretrained: str | None = None,
        quick_gelu: bool = False,
        pooling: str = "xpool",
        heads: int = 1,
        dropout: float = 0.3,
        audio_frames: int = 1024,
        n_mels: int = 128,
        audio_patch: int = 16,
        audio_layers: int = 2,
    ):
        super().__init__()
        self.clip = build_clip(clip, pretrained, quick_gelu)
        self.context_length = int(self.clip.context_length)
        self.image_size = _image_size(self.clip)
        self.dim = int(self.clip.text_projection.shape[1])
        self.pooling = pooling
        self.head = build_head(pooling, self.dim, heads, dropout)
        self.audio = None
        if pooling == "tefal":
            self.audio = AudioEncoder(n_mels, audio_frames, self.dim, audio_patch, audio_layers)
        self._tokenizer = None

    @property
    def uses_audio(self) -> bool:
        return self.audio is not None

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """``(T, context_length)`` token ids; empty texts raise, long ones are truncated
        with a warning (CLIP's BPE tokenizer, bundled with open_clip, works offline)."""
        from open_clip.tokenizer import SimpleTokenizer

        if self._tokenizer is None:
            self._tokenizer = SimpleTokenizer(context_length=self.context_length)
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise ValueError("a query/caption is empty; type some words")
            n = len(self._tokenizer.encode(text)) + 2  # start and end tokens
            if n > self.context_length:
                warnings.warn(
                    f"text has {n} tokens, more than the context length "
                    f"{self.context_length}; truncated: {text[:60]!r}...",
                    UserWarning,
                    stacklevel=2,
                )
        return self._tokenizer(texts)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(T, L)`` ids → ``(T, C)`` (not normalised)."""
        return self.clip.encode_text(tokens)

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, F, 3, S, S)`` → ``(B, F, C)`` (not normalised)."""
        b, f = frames.shape[:2]
        if frames.shape[-1] != self.image_size or frames.shape[-2] != self.image_size:
            raise ValueError(
                f"frames are {tuple(frames.shape[-2:])} but the image encoder takes "
                f"{self.image_size}x{self.image_size}; set data.image_size={self.image_size}"
            )
        return self.clip.encode_image(frames.flatten(0, 1)).reshape(b, f, -1)

    def encode_audio(self, mel: torch.Tensor, mask: torch.Tensor):
        """Log-mel ``(B, Ta, M)`` + mask → tokens ``(B, A, C)`` and token mask ``(B, A)``."""
        return self.audio(mel, mask)

    @property
    def logit_scale(self) -> torch.Tensor:
        """CLIP's learnable inverse temperature, clamped at 100 (ln 100 in log space)."""
        return self.clip.logit_scale.clamp(max=math.log(100.0)).exp()

    def similarity(
        self,
        text: torch.Tensor,
        frames: torch.Tensor,
        audio: torch.Tensor | None = None,
        audio_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Cosine similarities ``(T, V)`` of texts ``(T, C)`` and videos ``(V, F, C)``."""
        return self.head(text, frames, audio, audio_mask)

    def similarity_matrix(
        self,
        text: torch.Tensor,
        frames: torch.Tensor,
        audio: torch.Tensor | None = None,
        audio_mask: torch.Tensor | None = None,
        video_chunk: int = 256,
    ) -> torch.Tensor:
        """:meth:`similarity` in chunks of videos, so memory stays bounded for large sets
        (text-conditioned pooling builds a ``(V, T, C)`` tensor)."""
        out = []
        for start in range(0, frames.shape[0], video_chunk):
            sl = slice(start, start + video_chunk)
            a = None if audio is None else audio[sl]
            m = None if audio_mask is None else audio_mask[sl]
            out.append(self.similarity(text, frames[sl], a, m))
        return torch.cat(out, dim=1)

    def frame_attention(self, text: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Attention weights over frames ``(V, T, F)`` (uniform for mean pooling)."""
        return self.head.frame_attention(text, frames)


def _image_size(clip: nn.Module) -> int:
    size = clip.visual.image_size
    return int(size[0] if isinstance(size, tuple | list) else size)


def clip_loss(
    sims: torch.Tensor, logit_scale: torch.Tensor, false_negatives: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE on a square ``(B, B)`` text x video similarity matrix whose
    diagonal holds the matching pairs (CLIP; X-Pool ``modules/loss.py``).

    ``false_negatives`` ``(B, B)`` bool marks off-diagonal pairs that are *not* negatives
    (text ``i`` is also a caption of video ``j``); they are left out of both softmaxes.
    """
    logits = sims * logit_scale
    if false_negatives is not None:
        eye = torch.eye(sims.shape[0], dtype=torch.bool, device=sims.device)
        logits = logits.masked_fill(false_negatives & ~eye, float("-inf"))
    target = torch.arange(sims.shape[0], device=sims.device)
    t2v = nn.functional.cross_entropy(logits, target)
    v2t = nn.functional.cross_entropy(logits.T, target)
    return (t2v + v2t) / 2
