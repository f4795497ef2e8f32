"""Speech separation demo: one track per talker from a recording of overlapping speech.

Upload or record a mixture -> separated tracks as audio players, waveforms and spectrograms of
the mixture and of each track, and the SI-SDRi / SDRi when the clean references are uploaded.

Bundled examples (``demos/examples/separation/``) are test mixtures of a fresh synthetic world:
``python -m tessera.demos.separation --write-examples``.
"""

from __future__ import annotations

import argparse
import shutil
from functools import cache
from pathlib import Path

import gradio as gr
import numpy as np

EXAMPLES_DIR = Path(__file__).parent / "examples" / "separation"
CHECKPOINT = "separation-mossformer-tiny"
MAX_SECONDS = 600
MAX_TRACKS = 3


# What the demo separates with: a registry name, a weight file or an official MossFormer folder
# (set by build_demo / ``--checkpoint``).
ACTIVE = {"checkpoint": CHECKPOINT}


@cache
def _load(checkpoint: str):
    from tessera.apps.separation import load

    return load(checkpoint)


def _separator():
    return _load(ACTIVE["checkpoint"])


def _examples() -> list[list]:
    rows = []
    for mix in sorted(EXAMPLES_DIR.glob("*_mix.wav")):
        refs = sorted(EXAMPLES_DIR.glob(mix.name.replace("_mix.wav", "_s*.wav")))
        rows.append([str(mix), [str(r) for r in refs]])
    return rows


def _pcm16(track: np.ndarray) -> np.ndarray:
    return (np.clip(track, -1.0, 1.0) * 32767).astype(np.int16)


def _figure(mixture: np.ndarray, tracks: np.ndarray, rate: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    signals = [("mixture", mixture)] + [(f"track {k + 1}", t) for k, t in enumerate(tracks)]
    fig, axes = plt.subplots(len(signals), 2, figsize=(10, 1.7 * len(signals)), squeeze=False)
    time = np.arange(len(mixture)) / rate
    for (name, x), (wave_ax, spec_ax) in zip(signals, axes, strict=True):
        wave_ax.plot(time, x, lw=0.4, color="tab:blue")
        wave_ax.set_xlim(0, time[-1] if len(time) else 1)
        wave_ax.set_ylabel(name, fontsize=8)
        nfft = 256 if len(x) > 256 else max(16, len(x) // 2)
        spec_ax.specgram(x + 1e-9, NFFT=nfft, Fs=rate, noverlap=nfft // 2, cmap="magma")
        spec_ax.set_ylabel("Hz", fontsize=8)
    axes[0, 0].set_title("waveform", fontsize=9)
    axes[0, 1].set_title("spectrogram", fontsize=9)
    axes[-1, 0].set_xlabel("seconds")
    axes[-1, 1].set_xlabel("seconds")
    fig.tight_layout()
    return fig


def separate(audio_path, reference_files, progress=gr.Progress()):  # noqa: B008
    """Separate the uploaded/recorded file; returns track players, plot, metrics text."""
    if not audio_path:
        raise gr.Error("Upload or record a mixture first.")
    from tessera.apps.separation.inference import as_waveform

    try:
        mixture, rate = as_waveform(audio_path, None)
    except ValueError as err:
        raise gr.Error(f"Cannot use this audio: {err}") from err
    if len(mixture) > MAX_SECONDS * rate:
        raise gr.Error(f"Recordings up to {MAX_SECONDS // 60} minutes, please.")
    progress(0.1, desc="loading the checkpoint")
    try:
        separator = _separator()
    except (FileNotFoundError, ValueError) as err:
        raise gr.Error(f"Checkpoint unavailable: {err}") from err
    refs = [f if isinstance(f, str) else f.name for f in (reference_files or [])]
    if refs and len(refs) != separator.num_spks:
        raise gr.Error(f"Give {separator.num_spks} reference files (one per talker) or none.")
    progress(0.3, desc="separating")
    try:
        result = separator(audio_path, reference=refs or None)
    except ValueError as err:
        raise gr.Error(str(err)) from err
    tracks = result.sources
    players = [
        gr.update(value=(result.sample_rate, _pcm16(tracks[k])), visible=True)
        if k < len(tracks)
        else gr.update(value=None, visible=False)
        for k in range(MAX_TRACKS)
    ]
    progress(0.9, desc="plotting")
    figure = _figure(mixture.numpy(), tracks, rate)
    if result.metrics:
        m = result.metrics
        text = (
            f"**SI-SDRi {m['si_sdri']:.2f} dB** (SI-SDR {m['si_sdr']:.2f} dB), "
            f"SDRi {m['sdri']:.2f} dB, against the uploaded references."
        )
    elif not np.any(tracks):
        text = "The input is silent: the tracks are silent too."
    else:
        text = "Upload the clean references (one file per talker) to score the separation."
    return (*players, figure, text)


def build_demo(checkpoint: str = CHECKPOINT) -> gr.Blocks:
    """The demo page, separating with ``checkpoint`` (registry name, weight file, or a folder
    with the official MossFormer ``encoder/masknet/decoder.bin``)."""
    ACTIVE["checkpoint"] = str(checkpoint)
    with gr.Blocks(title="Tessera speech separation") as demo:
        gr.Markdown(
            "### Speech separation\nMossFormer (joint local/global gated attention) splits a "
            "recording of overlapping talkers into one track per talker. Any sample rate, "
            "mono or stereo, up to 10 minutes (long files are separated window by window "
            "without swapping talkers)."
        )
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(
                    sources=["upload", "microphone"], type="filepath", label="Mixture",
                    elem_id="sep-input",
                )  # fmt: skip
                refs = gr.File(
                    file_count="multiple", file_types=["audio"],
                    label="Clean references (optional, for SI-SDRi)", elem_id="sep-refs",
                )  # fmt: skip
                run = gr.Button("Separate", variant="primary", elem_id="sep-run")
            with gr.Column():
                metrics = gr.Markdown(elem_id="sep-metrics")
                players = [
                    gr.Audio(
                        label=f"Track {k + 1}",
                        type="numpy",
                        visible=k < 2,
                        elem_id=f"sep-track{k + 1}",
                        interactive=False,
                    )  # fmt: skip
                    for k in range(MAX_TRACKS)
                ]
        plot = gr.Plot(label="Waveforms and spectrograms", elem_id="sep-plot")
        examples = _examples()
        if examples:
            gr.Examples(examples, inputs=[audio, refs], label="Examples")
        run.click(separate, [audio, refs], [*players, plot, metrics], api_name="separate")
    return demo


def write_examples(out: Path = EXAMPLES_DIR, seed: int = 123, count: int = 2) -> None:
    """Copy ``count`` test mixtures (and references) of a fresh synthetic world into ``out``."""
    import tempfile

    from tessera.datamodules.separation.formats import find_mixtures
    from tessera.datamodules.separation.synth import generate

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        world = generate(Path(tmp), seed, train=0, val=0, test=count)
        for i, m in enumerate(find_mixtures(world, "test")):
            shutil.copyfile(m.mix, out / f"example{i}_mix.wav")
            for k, s in enumerate(m.sources):
                shutil.copyfile(s, out / f"example{i}_s{k + 1}.wav")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tessera.demos.separation")
    parser.add_argument("--write-examples", action="store_true")
    parser.add_argument(
        "--checkpoint", default=CHECKPOINT,
        help="registry name, weight file or official MossFormer folder (encoder.bin, ...)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.write_examples:
        write_examples()
    else:
        from tessera.demos.hub import launch

        launch(build_demo(args.checkpoint))
