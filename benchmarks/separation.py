"""Speech separation: CPU real-time factor, memory vs audio length, MossFormer vs Conv-TasNet.

- RTF (processing time / audio duration) at 8 kHz for the tiny config and the paper-size
  MossFormer (L), 2 cores.
- Peak memory vs audio length (5 s .. 10 min) for the chunked overlap-add separator against a
  single whole-file forward pass (which grows with the length, so it stops at 60 s).
- MossFormer vs torchaudio Conv-TasNet at matched parameter count: RTF, and the test SI-SDRi
  after the same training budget on a fresh synthetic world (needs espeak-ng).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import yaml

from tessera.apps.separation.inference import Separator
from tessera.apps.separation.model import build_model

RATE = 8000
CONFIGS = Path(__file__).resolve().parents[1] / "apps" / "separation" / "configs"


def _model(config: str) -> tuple[torch.nn.Module, dict]:
    cfg = yaml.safe_load((CONFIGS / f"{config}.yaml").read_text())["model"]
    return build_model(cfg["arch"], cfg["num_spks"], cfg["net"]).eval(), cfg


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _rtf_rows(bench) -> None:
    seconds = 2 if bench.quick else 4
    audio = torch.randn(1, RATE * seconds) * 0.1
    cases = {}
    for config in ("tiny", "convtasnet_tiny", "mossformer_l"):
        model, _ = _model(config)

        def run(model=model):
            with torch.no_grad():
                model(audio)

        cases[f"{config} ({_params(model) / 1e6:.3g} M)"] = run
    row = bench.compare({"audio_s": seconds, "rate": RATE}, cases, baseline=next(iter(cases)))
    for r in row.cases:
        if r.median_s:
            r.extra["rtf"] = r.median_s / seconds


def _memory_rows(bench) -> None:
    model, _ = _model("tiny")
    separator = Separator(model, RATE, 2, chunk_seconds=4.0, overlap_seconds=1.0)
    lengths = (5, 60) if bench.quick else (5, 30, 60, 300, 600)
    for seconds in lengths:
        audio = torch.randn(RATE * seconds) * 0.1
        cases = {"chunked overlap-add": lambda a=audio: separator.separate_waveform(a)}
        if seconds <= 60:

            def whole(a=audio):
                with torch.no_grad():
                    model(a[None])

            cases["whole file"] = whole
        row = bench.compare({"audio_s": seconds}, cases, baseline="chunked overlap-add")
        for r in row.cases:
            if r.median_s:
                r.extra["rtf"] = r.median_s / seconds


def _training_rows(bench) -> None:
    from tessera.apps.common.cli import EvaluateRequest
    from tessera.apps.separation import save_weights
    from tessera.apps.separation.cli import evaluate
    from tessera.apps.separation.metrics import pit_si_snr_loss
    from tessera.apps.separation.module import SeparationModule
    from tessera.datamodules.separation.datamodule import SeparationDataModule
    from tessera.datamodules.separation.synth import generate, missing_voices

    if missing_voices():
        bench.note("MossFormer vs Conv-TasNet training comparison skipped: no espeak-ng")
        return
    steps = 100 if bench.quick else 400
    sizes = dict(train=60, val=2, test=10) if bench.quick else dict(train=200, val=2, test=20)
    with tempfile.TemporaryDirectory() as tmp:
        world = generate(Path(tmp) / "world", seed=7, **sizes)
        for config in ("tiny", "convtasnet_tiny"):
            torch.manual_seed(0)
            model, cfg = _model(config)
            model.train()
            data = SeparationDataModule(str(world), segment=1.5, batch_size=4)
            data.setup("fit")
            loader = data.train_dataloader()
            opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"])
            step = 0
            while step < steps:
                for batch in loader:
                    loss = pit_si_snr_loss(model(batch["mix"]), batch["sources"])
                    opt.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                    opt.step()
                    step += 1
                    if step == steps:
                        break
            module = SeparationModule(
                **{k: cfg[k] for k in ("arch", "num_spks", "sample_rate", "net")}
            )
            module.model.load_state_dict(model.state_dict())
            path = save_weights(Path(tmp) / f"{config}.safetensors", module)
            metrics = evaluate(EvaluateRequest(str(path), str(world), "test"))
            bench.note(
                f"{config} ({_params(model) / 1e3:.1f} k params) after {steps} steps of batch 4 x "
                f"1.5 s: test SI-SDRi {metrics['si_sdri']:.2f} dB, SDRi {metrics['sdri']:.2f} dB"
            )


def run(bench) -> None:
    torch.manual_seed(0)
    load = Path("/proc/loadavg").read_text().split()[:3]
    bench.note(
        f"torch threads: {torch.get_num_threads()}; load average at start {' '.join(load)} "
        "(other jobs share the 2 cores); RTF = time / audio duration"
    )
    _rtf_rows(bench)
    _memory_rows(bench)
    _training_rows(bench)
