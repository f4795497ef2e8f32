"""Attention blocks side by side with lucidrains' reference packages (CPU, fp32, inference).

* ``AxialAttention`` vs ``axial-attention`` (same math: weights copied, outputs checked equal
  before timing) on 64x64 and 128x128 grids with C=64, plus full attention over all pixels for
  the memory comparison.
* ``JointAttention`` (MossFormer unit) vs ``flash-pytorch``'s ``FLASH`` (the FLASH gated
  attention unit MossFormer builds on) at dim 256 and N in {1k, 8k, 32k}. Same family, not
  identical math: MossFormer adds a depthwise k=17 convolution and a norm to each of its three
  projections, FLASH adds a T5 relative position bias; widths are matched (``v``/``u`` of
  2*dim each, query/key 128, group 256, rotary on 32 dims, token shift on).
"""

from __future__ import annotations

import os
from functools import partial

import torch
from torch import nn

from benchmarks.harness import Bench
from tessera.shared_blocks import AxialAttention, JointAttention


def _axial_pair(dim: int, heads: int):
    from axial_attention import AxialAttention as PeerAxial

    peer = PeerAxial(dim=dim, dim_index=1, heads=heads, num_dimensions=2).eval()
    ours = AxialAttention(dim, heads=heads).eval()
    with torch.no_grad():
        for theirs in peer.axial_attentions:
            mine, fn = ours.attns[theirs.permutation[-2] - 2], theirs.fn
            mine.to_qkv.weight.copy_(torch.cat((fn.to_q.weight, fn.to_kv.weight)))
            mine.to_out.load_state_dict(fn.to_out.state_dict())
    return ours, peer


def _full_attention(block: AxialAttention, x: torch.Tensor) -> torch.Tensor:
    """Plain softmax attention over every pixel with the first axis' projections (memory only)."""
    attn = block.attns[0]
    tokens = x.flatten(2).transpose(1, 2)  # (B, HW, C)
    q, k, v = attn.to_qkv(tokens).view(1, tokens.shape[1], 3, attn.heads, -1).permute(2, 0, 3, 1, 4)
    weights = (q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5).softmax(-1)  # (B, H, HW, HW)
    return weights @ v


def bench_axial(bench: Bench) -> None:
    dim, heads = 64, 8
    for side in (64, 128):
        torch.manual_seed(0)
        ours, peer = _axial_pair(dim, heads)
        x = torch.randn(1, dim, side, side)
        with torch.no_grad():
            err = (ours(x) - peer(x)).abs().max().item()
        assert err < 1e-4, f"AxialAttention differs from the peer by {err}"
        cases = {
            "axial-attention (peer)": partial(peer, x),
            "tessera AxialAttention": partial(ours, x),
        }
        if side == 64 or not bench.quick:
            cases["full attention, all pixels"] = partial(_full_attention, ours, x)
        with torch.no_grad():
            bench.compare(
                {"block": "AxialAttention", "grid": f"{side}x{side}", "C": dim, "heads": heads},
                cases,
                baseline="axial-attention (peer)",
            )
    bench.note(
        "AxialAttention: weights copied from the peer, outputs equal to <1e-4 before timing; "
        "full attention over all pixels is measured for memory (it materialises HW x HW scores; "
        "at 128x128 it needs ~8.6 GB and is only run without --quick)."
    )


def _flash_pair(dim: int):
    from flash_pytorch import FLASH
    from rotary_embedding_torch import RotaryEmbedding

    peer = FLASH(
        dim=dim,
        group_size=256,
        query_key_dim=128,
        expansion_factor=2.0,
        rotary_pos_emb=RotaryEmbedding(dim=32),
        norm_klass=nn.LayerNorm,
        shift_tokens=True,
    ).eval()
    ours = JointAttention(dim, dropout=0.0).eval()
    return ours, peer


def bench_joint(bench: Bench) -> None:
    dim = 256
    torch.manual_seed(0)
    ours, peer = _flash_pair(dim)
    for n in (1024, 8192, 32768):
        x = torch.randn(1, n, dim)
        with torch.no_grad():
            bench.compare(
                {"block": "JointAttention", "N": n, "dim": dim},
                {
                    "flash-pytorch FLASH (peer)": partial(peer, x),
                    "tessera JointAttention": partial(ours, x),
                },
                baseline="flash-pytorch FLASH (peer)",
            )
    rows = [r for r in bench.rows if r.params.get("block") == "JointAttention"]
    ours_ms = [
        next(c.median_s for c in r.cases if c.name.startswith("tessera")) * 1e3 / r.params["N"]
        for r in rows
    ]
    bench.note(
        "JointAttention time per 1k tokens (ms) at N = 1k, 8k, 32k: "
        + ", ".join(f"{t * 1e3:.2f}" for t in ours_ms)
        + " (flat = linear growth in N)."
    )


def run(bench: Bench) -> None:
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    bench.note(f"system load average (1, 5, 15 min) at start: {load} on {os.cpu_count()} cores.")
    bench.note(
        f"kernels backend on CPU: torch; torch threads {torch.get_num_threads()}; fp32, no_grad."
    )
    bench_axial(bench)
    bench_joint(bench)
