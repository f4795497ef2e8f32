"""MossFormer joint local/global gated attention unit (Zhao et al., ICASSP 2023, arXiv:2302.11824).

The single-head gated attention unit of MossFormer (after FLASH, Hua et al., 2022,
arXiv:2202.10447), faithful to the official block (``modelscope``
``models/audio/separation/mossformer_block.py``):

1. Token shift: the first half of the channels is delayed by one step.
2. Conv-augmented projections ``FFConvM`` = norm -> Linear -> SiLU -> depthwise Conv1d(k=17)
   with residual -> Dropout, giving ``v, u`` (``hidden/2`` each) and a shared ``qk``.
3. Per-use offset and scale of ``qk`` (4 outputs ``quad_q, lin_q, quad_k, lin_k``) and
   partial rotary position on all four.
4. Joint attention, applied to both ``v`` and ``u``:
     local  (within chunks of g tokens):  relu(q kᵀ / g)² · v           (no softmax)
     global (whole sequence, linear):     lin_q · (Σ_j lin_kⱼᵀ vⱼ) / N
   the global term through ``kernels.chunked_linear_attention``.
5. Gate ``(att_u ⊙ v) ⊙ sigmoid(att_v ⊙ u)``, output ``FFConvM`` and residual.

Causal mode follows the official code: the local chunk is masked to j <= i, and the global term
sums over whole earlier chunks only, normalised by g. Unlike the official code (whose k=17
"same" convolutions see 8 future steps even when ``causal=True``), the depthwise convolutions are
made causal here, so the unit truly never looks ahead.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from tessera import kernels
from tessera.shared_blocks._checks import check_last_dim
from tessera.shared_blocks.registry import BLOCKS
from tessera.shared_blocks.rotary import RotaryEmbedding


class ScaleNorm(nn.Module):
    """``g * x / max(||x|| / sqrt(C), eps)`` with one learnable scalar ``g`` (Nguyen & Salazar)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.scale = dim**-0.5
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.norm(dim=-1, keepdim=True) * self.scale  # (B, N, 1)
        return x * (self.g / norm.clamp(min=self.eps))


class FFConvM(nn.Module):
    """norm -> Linear -> SiLU -> x + DepthwiseConv1d(x) -> Dropout, on ``(B, N, C)`` tokens."""

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        norm: Literal["scalenorm", "layernorm"],
        dropout: float,
        kernel_size: int,
        causal: bool,
    ):
        super().__init__()
        self.norm = ScaleNorm(dim_in) if norm == "scalenorm" else nn.LayerNorm(dim_in)
        self.linear = nn.Linear(dim_in, dim_out)
        self.conv = nn.Conv1d(dim_out, dim_out, kernel_size, groups=dim_out, bias=False)
        self.causal = causal
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In inference SiLU overwrites the Linear output (fresh large CPU buffers cost page faults).
        h = F.silu(self.linear(self.norm(x)), inplace=not torch.is_grad_enabled())  # (B, N, Cout)
        n, k = h.shape[1], self.conv.kernel_size[0]
        # Causal: pad k-1 on both sides and keep the first N outputs (output t sees inputs <= t).
        pad = k - 1 if self.causal else (k - 1) // 2
        # The residual h + conv(h) is folded into the tap that reads position t itself.
        weight = self.conv.weight.unsqueeze(2)  # (C, 1, 1, k)
        weight = weight + (torch.arange(k, device=weight.device) == pad).to(weight.dtype)
        # (B, N, C) memory seen as a channels-last (B, C, 1, N) image: no transposing copies.
        conv = F.conv2d(
            h.transpose(1, 2).unsqueeze(2), weight, padding=(0, pad), groups=h.shape[-1]
        )
        return self.dropout(conv.squeeze(2)[..., :n].transpose(1, 2))


@BLOCKS.register_module()
class JointAttention(nn.Module):
    """MossFormer gated single-head attention unit with local + global joint attention.

    Args:
        dim: C, token channels.
        group_size: g, chunk length of the local quadratic attention (256 in MossFormer).
        query_key_dim: width of the shared query/key projection (128).
        expansion_factor: hidden width of the ``v, u`` projection as a multiple of ``dim`` (4);
            ``v`` and ``u`` get half of it each.
        dropout: dropout on the local attention map and after each ``FFConvM`` (0.1).
        shift_tokens: delay half of the channels by one step before the projections.
        causal: position i only depends on positions <= i.
        norm: ``"scalenorm"`` (the MossFormer default) or ``"layernorm"``.
        kernel_size: depthwise convolution length inside ``FFConvM`` (17, odd).
        rotary_dim: number of rotated query/key features (``min(32, query_key_dim)``).

    Shapes:
        x: ``(B, N, C)``, any N (padded to a multiple of g internally); output: same.
    """

    def __init__(
        self,
        dim: int,
        group_size: int = 256,
        query_key_dim: int = 128,
        expansion_factor: float = 4.0,
        dropout: float = 0.1,
        shift_tokens: bool = True,
        causal: bool = False,
        norm: Literal["scalenorm", "layernorm"] = "scalenorm",
        kernel_size: int = 17,
        rotary_dim: int = 32,
    ):
        super().__init__()
        hidden = int(dim * expansion_factor)
        if hidden % 2 or hidden < 2:
            raise ValueError(f"dim * expansion_factor = {hidden} must be a positive even number")
        if norm not in ("scalenorm", "layernorm"):
            raise ValueError(f"norm must be 'scalenorm' or 'layernorm', got {norm!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size} must be odd")
        if group_size < 1:
            raise ValueError(f"group_size={group_size} must be positive")
        self.dim = dim
        self.group_size = group_size
        self.shift_tokens = shift_tokens
        self.causal = causal
        ff = dict(norm=norm, dropout=dropout, kernel_size=kernel_size, causal=causal)
        self.to_hidden = FFConvM(dim, hidden, **ff)
        self.to_qk = FFConvM(dim, query_key_dim, **ff)
        # Offset and scale per use: rows are quad_q, lin_q, quad_k, lin_k.
        self.gamma = nn.Parameter(torch.empty(4, query_key_dim).normal_(std=0.02))
        self.beta = nn.Parameter(torch.zeros(4, query_key_dim))
        self.rotary = RotaryEmbedding(min(rotary_dim, query_key_dim))
        self.attn_dropout = nn.Dropout(dropout)
        self.to_out = FFConvM(hidden // 2, dim, **ff)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_last_dim("x", x, 3, self.dim)
        shifted = x
        if self.shift_tokens:
            delayed, kept = x.chunk(2, dim=-1)
            shifted = torch.cat((F.pad(delayed, (0, 0, 1, -1)), kept), dim=-1)
        vu = self.to_hidden(shifted)  # (B, N, hidden) = [v | u]
        v, u = vu.chunk(2, dim=-1)  # (B, N, hidden/2) each
        # One contiguous (B, N, Dqk) slab per use (quad_q, lin_q, quad_k, lin_k) for the matmuls.
        qk = torch.addcmul(self.beta[:, None, None], self.to_qk(shifted), self.gamma[:, None, None])
        rot = self.rotary.dim  # rotated in place: the rotary only saves its cos/sin for backward
        qk[..., :rot] = self.rotary(qk[..., :rot])
        quad_q, lin_q, quad_k, lin_k = qk.unbind(0)  # (B, N, Dqk) each
        att_v, att_u = self.attend(quad_q, lin_q, quad_k, lin_k, vu).chunk(2, dim=-1)
        if torch.is_grad_enabled():
            gated = (att_u * v) * torch.sigmoid(att_v * u)
        else:  # same product, written into the attention output instead of new buffers
            gated = att_u.mul_(v).mul_(att_v.mul_(u).sigmoid_())
        return self.to_out(gated).add_(x)  # the convolution output is not saved for backward

    def attend(
        self,
        quad_q: torch.Tensor,
        lin_q: torch.Tensor,
        quad_k: torch.Tensor,
        lin_k: torch.Tensor,
        values: torch.Tensor,
    ) -> torch.Tensor:
        """Local relu² attention in chunks of g plus global linear attention.

        Args:
            quad_q, lin_q, quad_k, lin_k: ``(B, N, Dqk)``.
            values: ``(B, N, Dv)``.

        Returns:
            ``(B, N, Dv)``.
        """
        b, n, dv = values.shape
        g = self.group_size
        groups = -(-n // g)
        # Zero padding: padded keys give relu(0)² = 0 and padded values are 0, so nothing leaks.
        pad = groups * g - n
        chunk = [
            (F.pad(t, (0, 0, 0, pad)) if pad else t).view(b * groups, g, -1)
            for t in (quad_q, quad_k, lin_q, lin_k, values)
        ]
        qq, qk, lq, lk, vv = chunk  # (B G, g, D)
        # In place where autograd allows it: bmm saves only its inputs, relu_ its own output.
        attn = (qq @ qk.transpose(-1, -2)).div_(g).relu_()  # (B G, g, g)
        attn = attn.square() if torch.is_grad_enabled() else attn.square_()
        attn = self.attn_dropout(attn)
        if self.causal:
            future = torch.ones(g, g, dtype=torch.bool, device=attn.device).triu(1)
            attn = attn.masked_fill_(future, 0.0)
        if not self.causal:
            glob = kernels.chunked_linear_attention(
                lin_q.unsqueeze(1), lin_k.unsqueeze(1), values.unsqueeze(1), causal=False
            ).squeeze(1)  # (B, N, Dv)
            glob = F.pad(glob, (0, 0, 0, pad)) if pad else glob
        else:
            glob = self._chunk_causal_global(*(t.view(b, groups, g, -1) for t in (lq, lk, vv)))
        # The local term is accumulated into the global one: no (N, Dv) temporaries.
        out = glob.reshape(b * groups, g, dv).baddbmm_(attn, vv)
        return out.view(b, groups * g, dv)[:, :n]

    @staticmethod
    def _chunk_causal_global(lq: torch.Tensor, lk: torch.Tensor, vv: torch.Tensor) -> torch.Tensor:
        """``lin_q_i · Σ_{j in earlier chunks} lin_kⱼᵀ vⱼ / g`` through the token-causal kernel.

        The kernel sums over j <= i. Laying out every chunk as g query slots (k = v = 0) followed
        by its g key slots (q = 0) makes the prefix seen by a query slot of chunk c exactly the
        keys of chunks < c; the kernel's 1 / (2 G g) is rescaled to MossFormer's 1 / g.
        """
        b, groups, g, _ = lq.shape
        zq, zv = torch.zeros_like(lq), torch.zeros_like(vv)
        q = torch.stack((lq, zq), dim=2).view(b, 1, 2 * groups * g, -1)
        k = torch.stack((zq, lk), dim=2).view(b, 1, 2 * groups * g, -1)
        v = torch.stack((zv, vv), dim=2).view(b, 1, 2 * groups * g, -1)
        out = kernels.chunked_linear_attention(q, k, v, causal=True)  # (B, 1, 2Gg, Dv)
        out = out.view(b, groups, 2, g, -1)[:, :, 0] * (2 * groups)
        return out.reshape(b, groups * g, -1)
