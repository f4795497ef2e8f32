"""Attention blocks side by side with lucidrains' reference packages (CPU, fp32, inference).

* ``AxialAttention`` vs ``axial-attention`` (same math: weights copied, outputs checked equal
  before timing) on 64x64 and 128x128 grids with C=64, plus full attention over all pixels for
  the memory comparison.
* ``JointAttention`` (MossFormer unit) vs ``flash-pytorch``'s ``FLASH`` (the FLASH gated
  attention unit MossFormer builds on) at dim 256 and N in {1k, 8k, 32k}, with 1 and 2 torch
  threads. Same family, not the same math, so every case carries its own FLOP count
  (``_joint_flops`` / ``_flash_flops``) and the table gives GFLOP/s besides time. Both use
  query/key 128, group 256, rotary on 32 dims and token shift. ``FLASH`` with expansion 2 (the
  published default) has our projection widths (dim -> 4 dim, 2 dim -> dim) but attends only
  ``v`` (2 dim wide); ours attends ``[v u]`` (4 dim wide), so it does ~1.4x the FLOPs.
  ``FLASH`` with expansion 4 attends a value of our width (4 dim) but then projects dim -> 8 dim
  and 4 dim -> dim (~1.4x our FLOPs). What no setting matches: ours adds a ScaleNorm and a
  depthwise k=17 convolution to each of its three projections and gates with
  ``(att_u * v) * sigmoid(att_v * u)``; FLASH has one LayerNorm, a T5 relative position bias
  on the local scores and gates with ``gate * att_v``.
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


def _flash_pair(dim: int, expansion_factor: float = 2.0):
    from flash_pytorch import FLASH
    from rotary_embedding_torch import RotaryEmbedding

    peer = FLASH(
        dim=dim,
        group_size=256,
        query_key_dim=128,
        expansion_factor=expansion_factor,
        rotary_pos_emb=RotaryEmbedding(dim=32),
        norm_klass=nn.LayerNorm,
        shift_tokens=True,
    ).eval()
    ours = JointAttention(dim, dropout=0.0).eval()
    return ours, peer


# FLOP counts of one forward: a multiply-add is 2, any other op 1 per element (norms 3, SiLU,
# sigmoid, bias, relu², gating, residual 1 each). Local attention runs over N rounded up to g.
QK, GROUP, ROT, KSIZE = 128, 256, 32, 17


def _joint_flops(n: int, dim: int, hidden: int) -> float:
    """``JointAttention``: three ``FFConvM`` (ScaleNorm, Linear, SiLU, depthwise conv), offset,
    rotary, local relu² and global linear attention on ``[v u]`` (``hidden`` wide), gate."""
    n_pad = -(-n // GROUP) * GROUP
    outs = hidden + QK + dim  # output widths of to_hidden, to_qk, to_out
    proj = 2 * dim * hidden + 2 * dim * QK + 2 * (hidden // 2) * dim + 2 * outs
    per_token = (
        3 * (2 * dim + hidden // 2)  # ScaleNorm on the inputs of the three projections
        + proj  # Linear + bias, SiLU
        + 2 * KSIZE * outs  # depthwise convolutions (residual folded into a tap)
        + 2 * 4 * QK
        + 3 * 4 * ROT  # offset-scale, rotary
        + 4 * QK * hidden  # global: k^T v and q (k^T v)
        + 3 * (hidden // 2)  # gate
        + dim  # residual
    )
    local = n_pad * (2 * GROUP * QK + 3 * GROUP + 2 * GROUP * hidden)
    return float(n * per_token + local)


def _flash_flops(n: int, dim: int, expansion_factor: float) -> float:
    """``FLASH``: LayerNorm, Linear + SiLU to ``[v gate]`` and qk, offset, rotary, local relu²
    with T5 bias and global linear attention on ``v`` (``e * dim`` wide), gate, Linear."""
    n_pad = -(-n // GROUP) * GROUP
    hid = int(expansion_factor * dim)
    linears = 2 * dim * 2 * hid + 2 * dim * QK + 2 * hid * dim
    bias_silu = 2 * (2 * hid + QK) + dim  # SiLU only on the two input projections
    per_token = (
        5 * dim  # LayerNorm
        + linears
        + bias_silu
        + 2 * 4 * QK
        + 3 * 4 * ROT  # offset-scale, rotary
        + 4 * QK * hid  # global: k^T v and q (k^T v)
        + 2 * hid  # (local + global) * gate
        + dim  # residual
    )
    local = n_pad * (2 * GROUP * QK + 4 * GROUP + 2 * GROUP * hid)
    return float(n * per_token + local)


def bench_joint(bench: Bench) -> None:
    dim = 256
    torch.manual_seed(0)
    ours, peer = _flash_pair(dim)
    _, peer_wide = _flash_pair(dim, expansion_factor=4.0)
    names = {
        "flash": "flash-pytorch FLASH e=2 (peer)",
        "wide": "FLASH e=4 (attends our value width)",
        "ours": "tessera JointAttention",
    }
    default_threads = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for n in (1024, 8192, 32768):
            x = torch.randn(1, n, dim)
            flops = {
                names["flash"]: _flash_flops(n, dim, 2.0),
                names["wide"]: _flash_flops(n, dim, 4.0),
                names["ours"]: _joint_flops(n, dim, ours.to_hidden.linear.out_features),
            }
            with torch.no_grad():
                bench.compare(
                    {"block": "JointAttention", "N": n, "dim": dim, "threads": threads},
                    {
                        names["flash"]: partial(peer, x),
                        names["wide"]: partial(peer_wide, x),
                        names["ours"]: partial(ours, x),
                    },
                    baseline=names["flash"],
                    flops=flops,
                )
    torch.set_num_threads(default_threads)
    rows = [r for r in bench.rows if r.params.get("block") == "JointAttention"]
    for r in rows:
        n, got = r.params["N"], {c.name: c for c in r.cases}
        mine = got[names["ours"]]
        if mine.median_s is None:
            continue
        parts = []
        for key in ("flash", "wide"):
            peer_case = got[names[key]]
            if peer_case.median_s is None:
                continue
            parts.append(
                f"vs {names[key]}: time x{mine.median_s / peer_case.median_s:.2f}, "
                f"GFLOP/s x{mine.extra['gflops'] / peer_case.extra['gflops']:.2f}"
            )
        bench.note(
            f"JointAttention N={n}, {r.params['threads']} thread(s): "
            f"{_joint_flops(n, dim, 4 * dim) / _flash_flops(n, dim, 2.0):.2f}x the FLOPs of "
            "FLASH e=2; " + "; ".join(parts)
        )
    for threads in (1, 2):
        ours_ms = [
            next(c.median_s for c in r.cases if c.name == names["ours"]) * 1e3 / r.params["N"]
            for r in rows
            if r.params["threads"] == threads
        ]
        bench.note(
            f"JointAttention time per 1k tokens (ms), {threads} thread(s), N = 1k, 8k, 32k: "
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
