"""Human pose demo: an image in, a skeleton out; a keypoint sequence or a video in, a 3-D
skeleton out.

- **Image**: upload a picture (optionally type a person box ``x, y, w, h``; default the
  whole image) → the COCO skeleton drawn over it with each joint coloured by its heatmap
  confidence, and a table of the joints. "Lift to 3-D" turns those keypoints into an
  interactive 3-D skeleton (plotly).
- **Sequence / video**: upload a short video (2-D keypoints per frame from the keypoint
  model, then temporal lifting), or a 2-D keypoint sequence as ``.npz`` / ``.json``
  (``keypoints_2d (T, 17, 2|3)`` pixels, ``image_size [w, h]``, optional ``layout``
  ``coco`` | ``h36m``) → an animated 3-D skeleton and the lifted joints as an ``.npz``.

Bundled examples (``demos/examples/pose/``) come from a fresh synthetic world:
``python -m tessera.demos.pose --write-examples``.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
from functools import cache
from pathlib import Path

import gradio as gr
import numpy as np

EXAMPLES_DIR = Path(__file__).parent / "examples" / "pose"
CHECKPOINT = "pose-psa-tiny"
LIFTER = "pose-lifter-tiny"
ACTIVE = {"checkpoint": CHECKPOINT, "lifter": LIFTER}
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".webm", ".mkv")
SEQUENCE_SUFFIXES = (".npz", ".json")
OVERLAY_SIDE = 384  # overlays are drawn at least this large (the world's images are 128 px)


@cache
def _load(checkpoint: str):
    from tessera.apps.pose import load

    return load(checkpoint)


def _available(checkpoint: str) -> bool:
    from tessera.apps.common.checkpoints import registry

    return Path(checkpoint).is_file() or checkpoint in registry()


def _model(kind: str):
    name = ACTIVE[kind]
    if not _available(name):
        what = "2-D keypoint" if kind == "checkpoint" else "3-D lifting"
        raise gr.Error(
            f"No {what} checkpoint {name!r}: run `python -m tessera.apps.pose.recipes` "
            "(see docs/apps/pose.md), or start the demo with --checkpoint/--lifter PATH."
        )
    return _load(name)


def parse_box(text: str, width: int, height: int) -> list[float] | None:
    """``"x, y, w, h"`` (pixels) → a box, or None for an empty text (the whole image)."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        box = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        box = []
    if len(box) != 4:
        raise gr.Error(f"The box must be four numbers 'x, y, w, h' in pixels, got {text!r}.")
    if box[2] <= 0 or box[3] <= 0:
        raise gr.Error(f"The box {box} has no area: width and height must be > 0.")
    if box[0] >= width or box[1] >= height or box[0] + box[2] <= 0 or box[1] + box[3] <= 0:
        raise gr.Error(f"The box {box} lies outside the {width}x{height} image.")
    return box


def estimate(image, box_text: str, progress=gr.Progress()):  # noqa: B008
    """2-D keypoints of one image → overlay, joint table, summary, state for lifting."""
    from tessera.apps.pose.draw import draw_skeletons
    from tessera.datamodules.pose.skeleton import COCO_KEYPOINTS

    if image is None:
        raise gr.Error("Upload an image of a person, or pick an example.")
    box = parse_box(box_text, image.width, image.height)
    progress(0.2, desc="loading the keypoint model")
    estimator = _model("checkpoint")
    progress(0.5, desc="estimating keypoints")
    try:
        result = estimator(image, boxes=None if box is None else [box])
    except ValueError as err:
        raise gr.Error(str(err)) from None
    kp = result.keypoints[0]
    rows = [
        [name, round(float(x), 1), round(float(y), 1), round(float(s), 3)]
        for name, (x, y, s) in zip(COCO_KEYPOINTS, kp, strict=True)
    ]
    where = "the whole image" if box is None else f"box {box}"
    summary = (
        f"**17 keypoints** in {where}; mean confidence {kp[:, 2].mean():.2f}, instance score "
        f"{result.scores[0]:.2f}. Joints are coloured red (low) → green (high confidence)."
    )
    state = {"keypoints": kp.tolist(), "image_size": [image.width, image.height]}
    boxes = None if box is None else [box]
    return draw_skeletons(image, kp, boxes, min_side=OVERLAY_SIDE), rows, summary, state


def lift_image(state):
    """The last estimated keypoints lifted to a 3-D skeleton (one frame)."""
    from tessera.apps.pose.video import skeleton_figure

    if not state:
        raise gr.Error("Estimate the 2-D keypoints of an image first.")
    joints = _model("lifter")(np.asarray(state["keypoints"]), image_size=state["image_size"])
    return skeleton_figure(joints[None])


def read_sequence(path: Path) -> tuple[np.ndarray, tuple[int, int], str]:
    """A 2-D keypoint sequence file → ``(keypoints (T, 17, 2), (w, h), layout)``."""
    import zipfile

    if path.suffix.lower() == ".npz" and not zipfile.is_zipfile(path):
        raise gr.Error(f"{path.name} is not an .npz archive (numpy.savez writes one).")
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                fields = {k: npz[k] for k in npz.files}
        else:
            fields = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise gr.Error(f"{path.name} is not a readable {path.suffix} file: {err}") from None
    missing = [k for k in ("keypoints_2d", "image_size") if k not in fields]
    if missing:
        raise gr.Error(
            f"{path.name} lacks {', '.join(missing)}: a sequence holds keypoints_2d "
            "(T, 17, 2|3) in pixels and image_size [width, height]."
        )
    kp = np.asarray(fields["keypoints_2d"], dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1] != 17 or kp.shape[2] not in (2, 3) or len(kp) == 0:
        raise gr.Error(f"{path.name}: keypoints_2d must be (T, 17, 2|3), got {kp.shape}.")
    size = np.asarray(fields["image_size"], dtype=np.float64).reshape(-1)
    if size.shape != (2,) or (size <= 0).any():
        raise gr.Error(f"{path.name}: image_size must be [width, height] > 0, got {size.tolist()}.")
    layout = str(np.asarray(fields.get("layout", "coco")))
    if layout not in ("coco", "h36m"):
        raise gr.Error(f"{path.name}: layout must be 'coco' or 'h36m', got {layout!r}.")
    return kp[..., :2], (int(size[0]), int(size[1])), layout


def lift_file(path, progress=gr.Progress()):  # noqa: B008
    """A video or a 2-D keypoint sequence → animated 3-D skeleton, npz, summary."""
    from tessera.apps.pose.video import lift_video, skeleton_figure
    from tessera.datamodules.common import DataError

    if not path:
        raise gr.Error("Upload a short video or a keypoint sequence (.npz / .json).")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES + SEQUENCE_SUFFIXES:
        raise gr.Error(
            f"{path.name}: expected a video ({', '.join(VIDEO_SUFFIXES)}) or a keypoint "
            "sequence (.npz, .json)."
        )
    lifter = _model("lifter")
    if suffix in VIDEO_SUFFIXES:
        progress(0.1, desc="2-D keypoints per frame")
        try:
            kp, joints, fps = lift_video(path, _model("checkpoint"), lifter, max_frames=300)
        except (DataError, ValueError) as err:
            raise gr.Error(str(err)) from None
        source = f"{len(kp)} video frames (keypoints from the 2-D model, whole frame)"
    else:
        kp2d, size, layout = read_sequence(path)
        progress(0.3, desc="lifting")
        joints, fps = lifter(kp2d, image_size=size, layout=layout), 25.0
        kp = kp2d
        source = f"{len(kp2d)} frames of {layout} keypoints ({size[0]}x{size[1]} image)"
    buf = io.BytesIO()
    np.savez_compressed(buf, keypoints_2d=np.asarray(kp, np.float32), joints_3d=joints, fps=fps)
    out = Path(tempfile.mkdtemp(prefix="pose-")) / f"{path.stem}-3d.npz"
    out.write_bytes(buf.getvalue())
    summary = (
        f"**Lifted {len(joints)} frames** from {source} with a {lifter.frames}-frame receptive "
        "field: root-relative joints in metres, Human3.6M order (press play)."
    )
    return skeleton_figure(joints, fps), str(out), summary


def _no_checkpoint_note(checkpoint: str, lifter: str) -> str | None:
    missing = [n for n in (checkpoint, lifter) if not _available(n)]
    if not missing:
        return None
    return (
        f"**No checkpoint is shipped yet** for {', '.join(f'`{m}`' for m in missing)}. Train "
        "them with `python -m tessera.apps.pose.recipes` (see docs/apps/pose.md), or start "
        "the demo with `python -m tessera.demos.pose --checkpoint PATH --lifter PATH`."
    )


def build_demo(checkpoint: str = CHECKPOINT, lifter: str = LIFTER) -> gr.Blocks:
    """The demo page with the 2-D ``checkpoint`` and the 3-D ``lifter`` (names or files)."""
    ACTIVE.update(checkpoint=str(checkpoint), lifter=str(lifter))
    with gr.Blocks(title="Tessera human pose") as demo:
        gr.Markdown(
            "### Human pose\nTop-down COCO keypoints from Polarized Self-Attention heatmaps, "
            "and 2-D→3-D lifting with skeleton-aware space-time attention. Runs on CPU."
        )
        note = _no_checkpoint_note(str(checkpoint), str(lifter))
        if note:
            gr.Markdown(note, elem_id="pose-no-checkpoint")
        with gr.Tab("Image"):
            state = gr.State(None)
            with gr.Row():
                with gr.Column(scale=1):
                    image = gr.Image(type="pil", label="Image", elem_id="pose-image")
                    box = gr.Textbox(
                        label="Person box x, y, w, h (pixels; empty = whole image)",
                        elem_id="pose-box",
                    )
                    run = gr.Button("Estimate keypoints", variant="primary", elem_id="pose-run")
                    summary = gr.Markdown(elem_id="pose-summary")
                with gr.Column(scale=1):
                    shown = gr.Image(
                        label="Skeleton", type="pil", interactive=False, elem_id="pose-overlay"
                    )
            table = gr.Dataframe(
                headers=["joint", "x", "y", "confidence"], label="Keypoints", elem_id="pose-table"
            )
            lift = gr.Button("Lift to 3-D", elem_id="pose-lift")
            lifted = gr.Plot(label="3-D skeleton", elem_id="pose-3d")
            images = sorted(str(p) for p in EXAMPLES_DIR.glob("*.jpg"))
            if images:
                gr.Examples([[p] for p in images], inputs=[image], label="Example images")
            run.click(estimate, [image, box], [shown, table, summary, state], api_name="estimate")
            lift.click(lift_image, [state], [lifted], api_name="lift")
        with gr.Tab("Sequence / video"):
            with gr.Row():
                with gr.Column(scale=1):
                    upload = gr.File(
                        file_types=list(VIDEO_SUFFIXES + SEQUENCE_SUFFIXES),
                        label="Video or keypoint sequence",
                        elem_id="pose-seq-input",
                    )
                    go = gr.Button("Lift to 3-D", variant="primary", elem_id="pose-seq-run")
                    seq_summary = gr.Markdown(elem_id="pose-seq-summary")
                    npz = gr.File(label="3-D joints (.npz)", elem_id="pose-seq-npz")
                with gr.Column(scale=2):
                    animated = gr.Plot(label="3-D sequence", elem_id="pose-seq-3d")
            files = sorted(
                str(p) for p in EXAMPLES_DIR.iterdir() if p.suffix in (".mp4", ".npz")
            ) if EXAMPLES_DIR.is_dir() else []  # fmt: skip
            if files:
                gr.Examples([[p] for p in files], inputs=[upload], label="Example sequences")
            go.click(lift_file, [upload], [animated, npz, seq_summary], api_name="lift_sequence")
    return demo


def write_examples(out: Path = EXAMPLES_DIR, seed: int = 404) -> None:
    """Two test images of a fresh synthetic world, and one rendered walk as a video and as
    its 2-D keypoint sequence, into ``out``."""
    import shutil

    from tessera.datamodules.common.video import write_video
    from tessera.datamodules.pose.synth import generate, render_clip

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        world = generate(Path(tmp), seed, train=0, val=0, test=2, clips=(0, 0, 0))
        for i, image in enumerate(sorted((world / "coco" / "test2017").glob("*.jpg"))):
            shutil.copy(image, out / f"person{i}.jpg")
    video, keypoints = render_clip(np.random.default_rng(seed), frames=40)
    write_video(out / "walk.mp4", video, fps=25)
    np.savez_compressed(
        out / "walk_keypoints.npz",
        keypoints_2d=keypoints,
        image_size=np.array([video.shape[2], video.shape[1]]),
        layout=np.array("coco"),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tessera.demos.pose")
    parser.add_argument("--write-examples", action="store_true")
    parser.add_argument("--checkpoint", default=CHECKPOINT, help="2-D model: name or file")
    parser.add_argument("--lifter", default=LIFTER, help="3-D lifter: name or file")
    args = parser.parse_args()
    if args.write_examples:
        write_examples()
    else:
        from tessera.demos.hub import launch

        launch(build_demo(args.checkpoint, args.lifter))
