"""LiDAR 3-D detection demo: a point cloud in, boxes out.

Upload a ``.bin`` (KITTI float32 x, y, z, intensity), ``.npy`` (N x 4 / N x 3) or ``.pcd``
(ASCII or binary), or pick a bundled example -> a bird's-eye-view image of the points with
the predicted boxes (and, for examples, the ground truth), an interactive plotly 3-D view, and
a table of detections; a slider sets the score threshold.

Bundled examples (``demos/examples/detection3d/``) are test frames of a fresh synthetic world:
``python -m tessera.demos.detection3d --write-examples``.
"""

from __future__ import annotations

import argparse
import json
from functools import cache
from pathlib import Path

import gradio as gr
import numpy as np

EXAMPLES_DIR = Path(__file__).parent / "examples" / "detection3d"
CHECKPOINT = "detection3d-dsvt-tiny"
COLOURS = {"Car": (230, 80, 60), "Pedestrian": (60, 140, 230), "Cyclist": (240, 190, 40)}
GT_COLOUR = (40, 200, 90)
ACTIVE = {"checkpoint": CHECKPOINT}


@cache
def _load(checkpoint: str):
    from tessera.apps.detection3d import load

    return load(checkpoint)


def _checkpoint_available(checkpoint: str) -> bool:
    from tessera.apps.common.checkpoints import registry

    return Path(checkpoint).is_file() or checkpoint in registry()


def _ground_truth(path: Path) -> list[dict]:
    """The ground truth of a bundled example (Gradio hands over a copy of the file, so it is
    recognised by name and content)."""
    example = EXAMPLES_DIR / path.name
    side = example.with_suffix(".json")
    if not (example.is_file() and side.is_file()) or example.read_bytes() != path.read_bytes():
        return []
    return json.loads(side.read_text())["ground_truth"]


def bev_image(points: np.ndarray, boxes, names, gt: list[dict], pc_range, scale: int = 12):
    """Top view (x up, y left) of the points, predicted boxes (class colours) and ground
    truth (green), ``scale`` pixels per metre."""
    from PIL import Image, ImageDraw

    from tessera.apps.detection3d.iou import bev_corners

    x0, y0, _, x1, y1, _ = pc_range
    w, h = int((y1 - y0) * scale), int((x1 - x0) * scale)
    img = Image.new("RGB", (w, h), (18, 18, 24))
    draw = ImageDraw.Draw(img)

    def px(xy: np.ndarray) -> list[tuple[float, float]]:
        return [((y1 - y) * scale, (x1 - x) * scale) for x, y in xy]

    inside = (points[:, 0] >= x0) & (points[:, 0] < x1) & (points[:, 1] >= y0) & (points[:, 1] < y1)
    shade = (80 + 175 * np.clip(points[inside, 3], 0, 1)).astype(int)
    for (x, y), s in zip(px(points[inside, :2]), shade, strict=True):
        draw.point((x, y), fill=(s, s, s))
    for box in gt:
        corners = bev_corners(np.array([box["box_lidar"]])[:, [0, 1, 3, 4, 6]])[0]
        draw.polygon(px(corners), outline=GT_COLOUR, width=2)
    for box, name in zip(boxes, names, strict=True):
        corners = bev_corners(box[None, [0, 1, 3, 4, 6]])[0]
        colour = COLOURS.get(name, (220, 220, 220))
        draw.polygon(px(corners), outline=colour, width=2)
        front = corners[[0, 3]].mean(0)  # heading marker: centre -> front edge
        draw.line(px(np.stack([box[:2], front])), fill=colour, width=2)
    return img


def scene_figure(points: np.ndarray, boxes, names, gt: list[dict], max_points: int = 30000):
    """Interactive 3-D view: points coloured by height, boxes as wireframes."""
    import plotly.graph_objects as go

    from tessera.datamodules.detection3d.calibration import box_corners_lidar

    if len(points) > max_points:
        points = points[np.random.default_rng(0).choice(len(points), max_points, replace=False)]
    fig = go.Figure(go.Scatter3d(
        x=points[:, 0], y=points[:, 1], z=points[:, 2], mode="markers", name="points",
        marker={"size": 1.2, "color": points[:, 2], "colorscale": "Viridis"},
    ))  # fmt: skip
    edges = [
        (0, 1),
        (1, 2),
        (2, 3),
        (3, 0),
        (4, 5),
        (5, 6),
        (6, 7),
        (7, 4),
        (0, 4),
        (1, 5),
        (2, 6),
        (3, 7),
    ]

    def wire(box, colour, label):
        c = box_corners_lidar(np.asarray(box, dtype=float)[None])[0]
        xs, ys, zs = [], [], []
        for a, b in edges:
            xs += [c[a, 0], c[b, 0], None]
            ys += [c[a, 1], c[b, 1], None]
            zs += [c[a, 2], c[b, 2], None]
        fig.add_trace(
            go.Scatter3d(
                x=xs,
                y=ys,
                z=zs,
                mode="lines",
                name=label,
                line={"color": f"rgb{colour}", "width": 4},
                showlegend=False,
            )
        )

    for box in gt:
        wire(box["box_lidar"], GT_COLOUR, f"ground truth {box['name']}")
    for box, name in zip(boxes, names, strict=True):
        wire(box, COLOURS.get(name, (220, 220, 220)), name)
    fig.update_layout(
        scene={"aspectmode": "data"}, margin={"l": 0, "r": 0, "t": 0, "b": 0}, height=520
    )
    return fig


def detect(path, score: float, intensity: str, progress=gr.Progress()):  # noqa: B008
    """Run the active checkpoint on one uploaded file."""
    from tessera.datamodules.common import DataError

    if not path:
        raise gr.Error("Upload a .bin, .npy or .pcd point cloud, or pick an example.")
    checkpoint = ACTIVE["checkpoint"]
    if not _checkpoint_available(checkpoint):
        raise gr.Error(
            f"No checkpoint {checkpoint!r}: train one (see docs/apps/detection3d.md) "
            "and "
            "start the demo with --checkpoint PATH."
        )
    progress(0.1, desc="loading the model")
    detector = _load(checkpoint)
    progress(0.3, desc="detecting")
    try:
        result = detector(path, score_threshold=score, intensity=intensity)
    except (DataError, ValueError) as err:
        raise gr.Error(str(err)) from None
    gt = _ground_truth(Path(path))
    progress(0.8, desc="drawing")
    image = bev_image(
        result["points"], result["boxes"], result["names"], gt, detector.point_cloud_range
    )
    figure = scene_figure(result["points"], result["boxes"], result["names"], gt)
    rows = [
        [n, round(float(s), 3), *[round(float(v), 2) for v in b]]
        for n, s, b in zip(result["names"], result["scores"], result["boxes"], strict=True)
    ]
    notes = "; ".join(result["notes"]) or "input used as it is"
    summary = (
        f"**{len(rows)} detections** at score >= {score:.2f} from {len(result['points'])} "
        f"points. Input: {notes}." + (f" Ground truth (green): {len(gt)} objects." if gt else "")
    )
    return image, figure, rows, summary


def build_demo(checkpoint: str = CHECKPOINT) -> gr.Blocks:
    """The demo page, detecting with ``checkpoint`` (registry name or weight file)."""
    ACTIVE["checkpoint"] = str(checkpoint)
    with gr.Blocks(title="Tessera LiDAR 3-D detection") as demo:
        gr.Markdown(
            "### LiDAR 3-D detection\nPillars with a DSVT (dynamic sparse voxel transformer) "
            "backbone and a CenterPoint head find cars, pedestrians and cyclists in a point "
            "cloud on CPU. Frame: x forward, y left, z up (KITTI velodyne)."
        )
        if not _checkpoint_available(str(checkpoint)):
            gr.Markdown(
                f"**No checkpoint is shipped yet** (`{checkpoint}` is not in the registry). Train "
                "one with `tessera detection3d fit -c apps/detection3d/configs/tiny.yaml` on a "
                "world from `tessera detection3d synth`, then run "
                "`python -m tessera.demos.detection3d --checkpoint PATH`.",
                elem_id="det-no-checkpoint",
            )
        with gr.Row():
            with gr.Column(scale=1):
                cloud = gr.File(
                    file_types=[".bin", ".npy", ".pcd"], label="Point cloud", elem_id="det-input"
                )
                score = gr.Slider(
                    0.05, 0.95, value=0.3, step=0.05, label="Score threshold", elem_id="det-score"
                )
                intensity = gr.Radio(["auto", "keep", "divide255", "zero"], value="auto",
                                     label="Intensity (auto: 0..255 -> [0, 1])")  # fmt: skip
                run = gr.Button("Detect", variant="primary", elem_id="det-run")
                summary = gr.Markdown(elem_id="det-summary")
            with gr.Column(scale=2):
                bev = gr.Image(
                    label="Bird's-eye view", type="pil", elem_id="det-bev", interactive=False
                )
        view = gr.Plot(label="3-D view", elem_id="det-3d")
        table = gr.Dataframe(headers=["class", "score", "x", "y", "z", "dx", "dy", "dz", "heading"],
                             label="Detections (LiDAR frame)", elem_id="det-table")  # fmt: skip
        examples = sorted(str(p) for p in EXAMPLES_DIR.glob("*.bin"))
        if examples:
            gr.Examples([[e] for e in examples], inputs=[cloud], label="Examples")
        outputs = [bev, view, table, summary]
        run.click(detect, [cloud, score, intensity], outputs, api_name="detect")
        score.release(detect, [cloud, score, intensity], outputs)
    return demo


def write_examples(out: Path = EXAMPLES_DIR, seed: int = 321, count: int = 2) -> None:
    """Write ``count`` FOV-cropped test frames of a fresh synthetic world (``.bin`` + ground
    truth ``.json``) into ``out``."""
    import tempfile

    from tessera.datamodules.detection3d.layouts import kitti_refs, load_frame
    from tessera.datamodules.detection3d.synth import write_world

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        world = write_world(Path(tmp), seed, train=0, val=0, test=count, progress=False)
        for i, ref in enumerate(kitti_refs(world, "test")):
            frame = load_frame(ref, "kitti", ("Car", "Pedestrian", "Cyclist"))
            frame.points.astype(np.float32).tofile(out / f"example{i}.bin")
            gt = [{"name": n, "box_lidar": [round(float(v), 3) for v in b]}
                  for n, b in zip(frame.gt_names, frame.gt_boxes, strict=True)]  # fmt: skip
            (out / f"example{i}.json").write_text(json.dumps({"ground_truth": gt}, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tessera.demos.detection3d")
    parser.add_argument("--write-examples", action="store_true")
    parser.add_argument("--checkpoint", default=CHECKPOINT, help="registry name or weight file")
    args = parser.parse_args()
    if args.write_examples:
        write_examples()
    else:
        from tessera.demos.hub import launch

        launch(build_demo(args.checkpoint))
