"""``tessera pose predict --video CLIP --checkpoint 2D --lifter 3D --out DIR``: 2-D keypoints
per frame (one person: the given box or the whole frame), temporal lifting over the clip,
written as ``<stem>.npz`` (``keypoints_2d (T, 17, 3)`` pixels + score, COCO order;
``joints_3d (T, 17, 3)`` metres, root-relative, H36M order; ``fps``) and an animated plotly
``<stem>.html``. Frames are decoded with :mod:`tessera.datamodules.common.video`.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tessera.datamodules.common import atomic_write_bytes, atomic_write_text
from tessera.datamodules.pose.skeleton import H36M_PARENTS


def skeleton_figure(joints: np.ndarray, fps: float = 25.0):
    """Animated 3-D skeleton ``(T, 17, 3)`` (camera frame, y down) as a plotly figure."""
    import plotly.graph_objects as go

    def traces(p):
        xs, ys, zs = [], [], []
        for j, parent in enumerate(H36M_PARENTS):
            if parent >= 0:  # plot x, depth, -y so the figure stands upright
                xs += [p[parent, 0], p[j, 0], None]
                ys += [p[parent, 2], p[j, 2], None]
                zs += [-p[parent, 1], -p[j, 1], None]
        return [go.Scatter3d(x=xs, y=ys, z=zs, mode="lines+markers", marker={"size": 3})]

    frames = [go.Frame(data=traces(p), name=str(t)) for t, p in enumerate(joints)]
    fig = go.Figure(data=traces(joints[0]), frames=frames if len(joints) > 1 else None)
    span = float(np.abs(joints).max()) or 1.0
    axis = {"range": [-span, span]}
    fig.update_layout(
        scene={"xaxis": axis, "yaxis": axis, "zaxis": axis, "aspectmode": "cube"},
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        showlegend=False,
    )
    if len(joints) > 1:
        step = {"frame": {"duration": 1000 / fps}, "fromcurrent": True}
        fig.update_layout(
            updatemenus=[
                {
                    "type": "buttons",
                    "buttons": [{"label": "play", "method": "animate", "args": [None, step]}],
                }
            ]
        )
    return fig


def lift_video(path, estimator, lifter, box=None, max_frames: int = 600):
    """→ ``(keypoints_2d (T, 17, 3), joints_3d (T, 17, 3), fps)``."""
    from tessera.datamodules.common.video import probe, read_frames

    info = probe(path)
    count = min(info.num_frames, max_frames)
    frames = read_frames(path, list(range(count)))
    kp = np.stack(
        [
            estimator(f, boxes=None if box is None else [box]).keypoints[0]
            for f in tqdm(frames, desc="keypoints", leave=False)
        ]
    )
    joints = lifter(kp[..., :2], image_size=(frames.shape[2], frames.shape[1]), layout="coco")
    return kp, joints, info.fps


def main(argv: list[str]) -> int:
    from tessera.apps.pose import load

    parser = argparse.ArgumentParser(prog="tessera pose predict --video")
    parser.add_argument("--video", required=True)
    parser.add_argument("--checkpoint", required=True, help="2-D keypoint model")
    parser.add_argument("--lifter", required=True, help="3-D lifting model")
    parser.add_argument("--out", required=True)
    parser.add_argument("--box", type=float, nargs=4, default=None, metavar=("X", "Y", "W", "H"))
    parser.add_argument("--max-frames", type=int, default=600)
    args = parser.parse_args(argv)
    kp, joints, fps = lift_video(
        args.video, load(args.checkpoint), load(args.lifter), args.box, args.max_frames
    )
    out, stem = Path(args.out), Path(args.video).stem
    buf = io.BytesIO()
    np.savez_compressed(
        buf, keypoints_2d=kp.astype(np.float32), joints_3d=joints.astype(np.float32), fps=fps
    )
    atomic_write_bytes(out / f"{stem}.npz", buf.getvalue())
    atomic_write_text(
        out / f"{stem}.html", skeleton_figure(joints, fps).to_html(include_plotlyjs="cdn")
    )
    print(
        json.dumps(
            {
                "video": args.video,
                "frames": len(kp),
                "npz": str(out / f"{stem}.npz"),
                "html": str(out / f"{stem}.html"),
            }
        ),
        flush=True,
    )
    return 0
