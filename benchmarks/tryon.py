"""Virtual try-on: CPU sampling latency per image at 128×96 for 10/20/50 DDIM steps (tiny
MV-VTON vs the one-pass regressor and the paste baseline), training-step time, and memory
(peak RSS increase reported by the harness), labelled with the torch thread count."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from tessera.apps.tryon.module import IMAGE_KEYS, TryOnModule

CONFIG = Path(__file__).resolve().parents[1] / "apps" / "tryon" / "configs" / "tiny.yaml"
H, W = 128, 96


def _batch(n: int) -> dict:
    g = torch.Generator().manual_seed(0)
    b = {k: torch.rand(n, 3, H, W, generator=g) for k in IMAGE_KEYS}
    mask = torch.zeros(n, 1, H, W)
    mask[:, :, 30:90, 20:76] = 1
    b |= {
        "mask": mask,
        "garment_front_mask": mask.clone(),
        "garment_back_mask": mask.clone(),
        "use_back": torch.tensor([i % 2 == 1 for i in range(n)]),
        "view": torch.ones(n),
        "item_id": [f"item{i}" for i in range(n)],
        "paired": torch.ones(n, dtype=torch.bool),
    }
    return b


def _module(method: str) -> TryOnModule:
    net = yaml.safe_load(CONFIG.read_text())["model"]["net"]
    return TryOnModule(method=method, net=net).eval()


def run(bench) -> None:
    torch.manual_seed(0)
    load = Path("/proc/loadavg").read_text().split()[:3]
    bench.note(f"torch threads: {torch.get_num_threads()}; load average at start {' '.join(load)}")
    one = _batch(1)
    diffusion, regressor, paste = _module("diffusion"), _module("regressor"), _module("paste")
    steps_list = (10, 20) if bench.quick else (10, 20, 50)
    cases = {
        f"MV-VTON tiny, {s} DDIM steps": (lambda s=s: diffusion.generate(one, steps=s))
        for s in steps_list
    }
    cases["regressor (1 pass)"] = lambda: regressor.generate(one)
    cases["paste"] = lambda: paste.generate(one)
    bench.compare({"size": f"{H}x{W}", "batch": 1}, cases, baseline=next(iter(cases)))
    batch = _batch(4)
    train = _module("diffusion").train()
    opt = torch.optim.AdamW(train.parameters(), lr=1e-4)

    def step():
        opt.zero_grad()
        from tessera.apps.tryon.module import to_model_space

        train.diffusion_loss(to_model_space(batch)).backward()
        opt.step()

    bench.compare(
        {"size": f"{H}x{W}", "batch": 4},
        {"training step (diffusion)": step},
        baseline="training step (diffusion)",
    )
