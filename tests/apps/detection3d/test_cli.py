"""fit / evaluate / predict on the real layouts (KITTI as released, OpenPCDet custom, a
folder of loose .bin/.npy/.pcd files), the API on single files, resumable writing."""

import json
from pathlib import Path

import numpy as np
import pytest

from helpers.layouts import detection3d as layouts
from tessera.apps.detection3d import load
from tessera.apps.detection3d.cli import main
from tessera.datamodules.detection3d.labels import parse_kitti_labels

TINY = [
    "-c", "apps/detection3d/configs/tiny.yaml", "--trainer.enable_progress_bar=false",
    "--trainer.logger=false", "--trainer.limit_val_batches=1", "--trainer.max_steps=2",
    "--trainer.enable_checkpointing=true",
]  # fmt: skip


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def fit(root: Path, work: Path, *extra: str) -> Path:
    assert (
        main(["fit", *TINY, f"--data.data={root}", f"--trainer.default_root_dir={work}", *extra])
        == 0
    )
    return next(work.rglob("*.ckpt"))


@pytest.fixture(scope="module")
def kitti_run(tmp_path_factory):
    root = layouts.write_kitti(tmp_path_factory.mktemp("kitti"), train=2, val=2, test=1)
    return root, fit(root, tmp_path_factory.mktemp("fit"))


def test_kitti_evaluate_and_predict(kitti_run, tmp_path, capsys):
    root, ckpt = kitti_run
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(root), "--split", "val"]) == 0
    metrics = last_json(capsys)
    assert metrics["n"] == 2
    keys = ("car_bev_ap_moderate", "car_3d_ap_easy", "pedestrian_bev_ap_hard",
            "cyclist_3d_ap_moderate", "car_bev_ap_r11_moderate")  # fmt: skip
    for key in keys:
        assert 0.0 <= metrics[key] <= 100.0
    out = tmp_path / "pred"
    args = ["predict", *TINY, f"--data.data={root}", f"--model.weights={ckpt}",
            f"--model.predict_out={out}"]  # fmt: skip
    assert main([*args, "--data.predict_split=val"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["written"] == 2 and "car_bev_ap_moderate" in summary["metrics"]
    for item in ("000002", "000003"):
        text = (out / "label_2" / f"{item}.txt").read_text()
        assert "  " not in text and "\t" not in text and "\n\n" not in text
        dets = parse_kitti_labels(out / "label_2" / f"{item}.txt", with_score=True)
        record = json.loads((out / "json" / f"{item}.json").read_text())
        assert len(record["detections"]) == len(dets) and record["frame"] == "camera+lidar"
        assert all(len(d["box_lidar"]) == 7 for d in record["detections"])
    # the result files score exactly like the model run (evaluate on result files)
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(out / "label_2"),
                "--data",
                str(root),
                "--split",
                "val",
            ]
        )
        == 0
    )
    from_files = last_json(capsys)
    assert from_files["car_bev_ap_moderate"] == pytest.approx(
        metrics["car_bev_ap_moderate"], abs=1e-3
    )
    # re-running skips finished frames; the test split lives under testing/ (no labels)
    stamp = (out / "label_2" / "000002.txt").stat().st_mtime_ns
    assert main([*args, "--data.predict_split=val"]) == 0
    assert json.loads((out / "summary.json").read_text())["already_done"] == 2
    assert (out / "label_2" / "000002.txt").stat().st_mtime_ns == stamp
    assert main([*args, "--data.predict_split=test"]) == 0
    assert (out / "label_2" / "000000.txt").is_file()


def test_folder_of_loose_files_and_api(kitti_run, tmp_path, capsys):
    root, ckpt = kitti_run
    scans = tmp_path / "scans"
    scans.mkdir()
    cloud = np.fromfile(root / "training" / "velodyne" / "000000.bin", np.float32).reshape(-1, 4)
    cloud.tofile(scans / "a.bin")
    np.save(scans / "b.npy", cloud[:, :3])
    loud = cloud.copy()
    loud[:, 3] *= 255
    header = (
        "VERSION 0.7\nFIELDS x y z intensity\nSIZE 4 4 4 4\nTYPE F F F F\nCOUNT 1 1 1 1\n"
        f"WIDTH {len(loud)}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {len(loud)}\n"
        "DATA binary\n"
    )
    (scans / "c.pcd").write_bytes(header.encode() + loud.astype("<f4").tobytes())
    (scans / "broken.bin").write_bytes(b"\0" * 18)
    (scans / "empty.bin").write_bytes(b"")
    out = tmp_path / "out"
    assert main(["predict", *TINY, f"--data.data={scans}", f"--model.weights={ckpt}",
                 f"--model.predict_out={out}"]) == 0  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["written"] == 4 and not (out / "label_2").exists()
    assert [s["item_id"] for s in summary["skipped"]] == ["broken"]
    assert "not a multiple of 16" in summary["skipped"][0]["reason"]
    record = json.loads((out / "json" / "c.json").read_text())
    assert record["frame"] == "lidar" and any("divided by 255" in n for n in record["notes"])
    assert json.loads((out / "json" / "empty.json").read_text())["detections"] == []
    detector = load(ckpt)
    result = detector(scans / "c.pcd", score_threshold=0.0)
    assert result["points"][:, 3].max() <= 1.0 and any("255" in n for n in result["notes"])
    assert result["boxes"].shape[1] == 7 and len(result["names"]) == len(result["scores"])
    nan_cloud = cloud.copy()
    nan_cloud[:10, 0] = np.nan
    assert any("NaN" in n for n in detector(nan_cloud)["notes"])
    assert len(detector(np.zeros((0, 4)))["boxes"]) == 0


def test_custom_layout_fit_evaluate_predict(tmp_path, capsys):
    root = layouts.write_custom(tmp_path / "custom", train=2, val=1)
    names = "[Vehicle,Pedestrian,Cyclist]"
    ckpt = fit(root, tmp_path / "fit", f"--model.class_names={names}",
               f"--data.class_names={names}", "--data.gt_sampling=null")  # fmt: skip
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(root), "--split", "val"]) == 0
    metrics = last_json(capsys)
    assert {"vehicle_bev_ap", "vehicle_3d_ap", "cyclist_bev_ap_r11"} <= set(metrics)
    out = tmp_path / "pred"
    args = [f"--data.data={root}", f"--model.weights={ckpt}", f"--model.predict_out={out}",
            f"--model.class_names={names}", f"--data.class_names={names}"]  # fmt: skip
    assert main(["predict", *TINY, *args]) == 0
    assert (out / "json" / "000002.json").is_file()


def test_mismatched_classes_are_refused(kitti_run, tmp_path):
    root, _ = kitti_run
    with pytest.raises(ValueError, match="data.class_names .* differ from model.class_names"):
        fit(root, tmp_path, "--data.class_names=[Car]")
