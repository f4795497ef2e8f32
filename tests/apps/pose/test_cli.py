"""fit / evaluate / predict on the exact COCO and Human3.6M layouts; API and bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import tessera.apps.pose
from tessera.apps.pose import export, load
from tessera.apps.pose.api import load_module
from tessera.apps.pose.cli import main
from tessera.apps.registry import get_app

CONFIGS = Path(tessera.apps.pose.__file__).parent / "configs"
QUIET = [
    "--trainer.enable_progress_bar=false",
    "--trainer.max_steps=2",
    "--trainer.val_check_interval=1",
    "--trainer.limit_val_batches=1",
]


def _fit(tmp_path, config, root, extra=()):
    argv = [
        "fit",
        "-c",
        str(CONFIGS / config),
        f"--data.init_args.data_root={root}",
        f"--trainer.default_root_dir={tmp_path}",
        *QUIET,
        *extra,
    ]
    assert main(argv) == 0
    return sorted(Path(tmp_path).rglob("*.ckpt"))[-1]


@pytest.fixture(scope="module")
def keypoint_ckpt(tmp_path_factory, coco_root):
    return _fit(
        tmp_path_factory.mktemp("fit2d"),
        "psa-tiny.yaml",
        coco_root,
        ["--data.init_args.batch_size=4", "--data.init_args.test_split=val"],
    )


@pytest.fixture(scope="module")
def lifter_ckpt(tmp_path_factory, h36m_root):
    return _fit(
        tmp_path_factory.mktemp("fit3d"),
        "lifter-tiny.yaml",
        h36m_root,
        [
            "--data.init_args.train_subjects=[S1,S5]",
            "--data.init_args.val_subjects=[S9]",
            "--data.init_args.batch_size=16",
        ],
    )


DETECTIONS = "person_detection_results/COCO_val2017_detections_AP_H_56_person.json"


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("psa-resnet50-coco.yaml", {"psa_placement": "blocks", "lr_schedule": "step"}),
        ("lifter-243-h36m.yaml", {"frames": 243, "lr_schedule": "exponential"}),
    ],
)
def test_spec_and_paper_configs_parse(config, expected, capsys):
    assert get_app("pose").cli == "tessera.apps.pose.cli:main"
    with pytest.raises(SystemExit):
        main(["fit", "-c", str(CONFIGS / config), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]
    assert {k: printed[k] for k in expected} == expected


def test_evaluate_coco_with_gt_boxes_and_detections(keypoint_ckpt, coco_root, capsys):
    assert main(["evaluate", "--checkpoint", str(keypoint_ckpt), "--data", str(coco_root)]) == 0
    gt = _last_json(capsys)
    assert gt["boxes"] == "ground truth" and {"oks_ap", "oks_ap50", "pck_0.05"} <= set(gt)
    assert 0 <= gt["oks_ap"] <= 1
    dets = DETECTIONS
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(keypoint_ckpt),
                "--data",
                str(coco_root),
                "--detections",
                dets,
                "--det-score-threshold",
                "0.3",
            ]
        )
        == 0
    )
    det = _last_json(capsys)
    assert det["boxes"].startswith("detections") and "pck_0.05" not in det
    assert det["n"] == gt["n"]  # one detection per person; the 0.05 false box filtered


def test_test_and_evaluate_agree(keypoint_ckpt, coco_root, capsys):
    import lightning as L

    from tessera.datamodules.pose.datamodule import CocoKeypointDataModule

    main(["evaluate", "--checkpoint", str(keypoint_ckpt), "--data", str(coco_root)])
    evaluated = _last_json(capsys)
    module = load_module(keypoint_ckpt)
    hp = module.hparams
    dm = CocoKeypointDataModule(
        str(coco_root),
        test_split="val",
        input_size=hp.input_size,
        heatmap_size=hp.heatmap_size,
        sigma=hp.sigma,
        unbiased=hp.unbiased,
    )
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    tested = trainer.test(module, dm, verbose=False)[0]
    for key in ("oks_ap", "oks_ap50", "pck_0.2", "epe"):
        assert tested[f"test/{key}"] == pytest.approx(evaluated[key], abs=1e-4)


def _predict_val(coco_root, ckpt, out, *extra) -> list[str]:
    """``predict`` of the COCO val split with the fixture's detections."""
    return [
        "predict",
        "-c",
        str(CONFIGS / "psa-tiny.yaml"),
        f"--data.init_args.data_root={coco_root}",
        "--data.init_args.predict_split=val",
        f"--model.init_args.weights={ckpt}",
        f"--model.init_args.predict_out={out}",
        "--trainer.enable_progress_bar=false",
        f"--data.init_args.detections={DETECTIONS}",
        *extra,
    ]


def test_predict_writes_coco_results_and_resumes(keypoint_ckpt, coco_root, tmp_path, capsys):
    out = tmp_path / "pred"
    argv = _predict_val(coco_root, keypoint_ckpt, out)
    assert main(argv) == 0
    results = json.loads((out / "person_keypoints_results.json").read_text())
    assert results and set(results[0]) == {"image_id", "category_id", "keypoints", "score"}
    assert len(results[0]["keypoints"]) == 51
    summary = json.loads((out / "summary.json").read_text())
    assert summary["boxes"].startswith("detections") and summary["written"] == 6
    first = sorted((out / "items").glob("*.json"))[0]
    first.unlink()  # an interrupted run: one box is missing
    assert main(argv) == 0  # re-run predicts only that box, the results cover all
    again = json.loads((out / "summary.json").read_text())
    assert again["written"] == 1 and again["already_done"] == 5, again
    assert len(json.loads((out / "person_keypoints_results.json").read_text())) == len(results)


def test_predict_image_folder_uses_whole_images(keypoint_ckpt, coco_root, tmp_path):
    out = tmp_path / "folder"
    argv = [
        "predict",
        "-c",
        str(CONFIGS / "psa-tiny.yaml"),
        f"--data.init_args.data_root={coco_root}",
        f"--data.init_args.predict_images={coco_root / 'val2017'}",
        f"--model.init_args.weights={keypoint_ckpt}",
        f"--model.init_args.predict_out={out}",
        "--trainer.enable_progress_bar=false",
    ]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["boxes"] == "whole image (no detections given)" and summary["written"] == 3


def test_predict_overlays_drawn_per_image_and_kept_on_rerun(keypoint_ckpt, coco_root, tmp_path):
    from PIL import Image

    from tessera.datamodules.pose.datasets import read_rgb

    out, vis = tmp_path / "pred", tmp_path / "vis"
    argv = _predict_val(coco_root, keypoint_ckpt, out, "--overlays", str(vis))
    assert main(argv) == 0
    images = sorted((coco_root / "val2017").glob("*.jpg"))
    assert sorted(p.name for p in vis.iterdir()) == sorted(f"{p.stem}.png" for p in images)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overlays"] == {
        "dir": str(vis),
        "written": len(images),
        "already_done": 0,
        "skipped": [],
    }
    ids = {
        im["file_name"]: im["id"]
        for im in json.loads((coco_root / "annotations/person_keypoints_val2017.json").read_text())[
            "images"
        ]
    }
    results = json.loads((out / "person_keypoints_results.json").read_text())
    for path in images:
        source = np.asarray(read_rgb(path), np.int16)  # (H, W, 3); any mode read as RGB
        drawn = np.asarray(Image.open(vis / f"{path.stem}.png").convert("RGB"), np.int16)
        assert drawn.shape == source.shape, path.name
        changed = np.abs(drawn - source).sum(-1) > 0  # (H, W)
        assert 0 < changed.mean() < 0.9, path.name  # drawn over the picture, not replacing it
        joints = [
            np.reshape(r["keypoints"], (17, 3))[:, :2]
            for r in results
            if r["image_id"] == ids[path.name]
        ]
        assert joints, path.name
        h, w = changed.shape
        for x, y in np.concatenate(joints).round().astype(int):
            if 0 <= x < w and 0 <= y < h:  # every joint's disc or ring is drawn around it
                assert changed[max(0, y - 4) : y + 5, max(0, x - 4) : x + 5].any(), (path, x, y)
    stamps = {p.name: p.stat().st_mtime_ns for p in vis.iterdir()}
    assert main(argv) == 0  # a re-run keeps the overlays (and every item)
    assert {p.name: p.stat().st_mtime_ns for p in vis.iterdir()} == stamps
    again = json.loads((out / "summary.json").read_text())["overlays"]
    assert again["written"] == 0 and again["already_done"] == len(images)
    (vis / f"{images[0].stem}.png").unlink()  # interrupted before this overlay was written
    assert main(argv) == 0
    again = json.loads((out / "summary.json").read_text())["overlays"]
    assert again["written"] == 1 and again["already_done"] == len(images) - 1
    assert (vis / f"{images[0].stem}.png").stat().st_mtime_ns != stamps[f"{images[0].stem}.png"]


def test_lifting_fit_evaluate_predict(lifter_ckpt, h36m_root, tmp_path, capsys):
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(lifter_ckpt),
                "--data",
                str(h36m_root),
                "--split",
                "test",
                "--keypoints",
                "cpn_ft_h36m_dbb",
            ]
        )
        == 0
    )
    values = _last_json(capsys)
    assert values["subjects"] == ["S9", "S11"] and values["frames"] == 2 * 2 * 4 * 24
    assert set(values["per_action"]) == {"Directions", "Walking"}
    assert values["p_mpjpe_mm"] <= values["mpjpe_mm"]
    out = tmp_path / "lifted"
    argv = [
        "predict",
        "-c",
        str(CONFIGS / "lifter-tiny.yaml"),
        f"--data.init_args.data_root={h36m_root}",
        f"--model.init_args.weights={lifter_ckpt}",
        f"--model.init_args.predict_out={out}",
        "--trainer.enable_progress_bar=false",
    ]
    assert main(argv) == 0
    with np.load(out / "S9" / "Walking" / "cam0.npz") as npz:
        assert npz["joints_3d"].shape == (24, 17, 3) and str(npz["action"]) == "Walking"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["written"] == 16 and "mpjpe_mm" in summary["metrics"]


def test_api_single_image_and_lifting(keypoint_ckpt, lifter_ckpt, coco_root, tmp_path):
    path = export(load_module(keypoint_ckpt), tmp_path / "kp.safetensors")
    estimator = load(path)
    image = sorted((coco_root / "val2017").glob("*.jpg"))[0]
    people = estimator(image, boxes=[[10, 5, 30, 50], [0, 0, 20, 20]])
    assert people.keypoints.shape == (2, 17, 3) and people.scores.shape == (2,)
    assert estimator(np.zeros((31, 47, 3), np.uint8)).keypoints.shape == (1, 17, 3)
    for bad, msg in (([[5, 5, 0, 10]], "no area"), ([[500, 5, 10, 10]], "outside")):
        with pytest.raises(ValueError, match=msg):
            estimator(image, boxes=bad)
    lifter = load(export(load_module(lifter_ckpt), tmp_path / "lift.safetensors"))
    joints = lifter(people.keypoints[:, :, :2], image_size=(80, 64))
    assert joints.shape == (2, 17, 3)
    with pytest.raises(ValueError, match="layout"):
        lifter(people.keypoints, image_size=(80, 64), layout="mpii")


def test_mismatched_model_and_data_options_are_refused(coco_root, tmp_path):
    with pytest.raises(ValueError, match="model.heatmap_size"):
        _fit(tmp_path, "psa-tiny.yaml", coco_root, ["--model.init_args.heatmap_size=[12,16]"])


def test_missing_checkpoint_is_a_clear_error(coco_root, capsys):
    assert main(["evaluate", "--checkpoint", "nope.safetensors", "--data", str(coco_root)]) == 2
    assert "neither a file nor a registered name" in capsys.readouterr().err


def test_predict_video(keypoint_ckpt, lifter_ckpt, tmp_path, capsys):
    from tessera.datamodules.common.video import write_video

    frames = np.random.default_rng(0).integers(0, 255, (6, 32, 48, 3)).astype(np.uint8)
    clip = write_video(tmp_path / "clip.mp4", frames, fps=10)
    argv = [
        "predict",
        "--video",
        str(clip),
        "--checkpoint",
        str(keypoint_ckpt),
        "--lifter",
        str(lifter_ckpt),
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(argv) == 0
    with np.load(tmp_path / "out" / "clip.npz") as npz:
        assert npz["keypoints_2d"].shape == (6, 17, 3) and npz["joints_3d"].shape == (6, 17, 3)
    assert "plotly" in (tmp_path / "out" / "clip.html").read_text()
