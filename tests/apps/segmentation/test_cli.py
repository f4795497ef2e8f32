"""CLI round trips on a tiny world: fit (and resume), predict through the writer, evaluate,
export/load, --print_config, the registry spec."""

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from tessera.apps.registry import get_app
from tessera.apps.segmentation import export, load
from tessera.apps.segmentation.api import load_module
from tessera.apps.segmentation.cli import main

CONFIGS = {"semantic": "semantic-tiny.yaml", "grounding": "grounding-tiny.yaml"}


def _fit(tmp_path, world, mode, extra=()):
    from tessera.apps.segmentation.recipes import CONFIGS as DIR

    root = world if mode == "semantic" else world / "grounding"
    argv = [
        "fit",
        "-c",
        str(DIR / CONFIGS[mode]),
        f"--data.init_args.data_root={root}",
        "--data.init_args.batch_size=4",
        f"--trainer.default_root_dir={tmp_path / mode}",
        "--trainer.max_steps=2",
        "--trainer.enable_progress_bar=false",
        "--trainer.limit_val_batches=1",
        "--trainer.limit_train_batches=2",
        *extra,
    ]
    assert main(argv) == 0
    return sorted((tmp_path / mode).rglob("*.ckpt"))[-1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, world):
    tmp = tmp_path_factory.mktemp("fit")
    return {mode: _fit(tmp, world, mode) for mode in CONFIGS}


def test_spec_registers_the_app():
    app = get_app("segmentation")
    assert app.cli == "tessera.apps.segmentation.cli:main"
    assert app.demo_builder() is not None


def test_print_config(capsys):
    from tessera.apps.segmentation.recipes import CONFIGS as DIR

    with pytest.raises(SystemExit):
        main(["fit", "-c", str(DIR / "grounding-tiny.yaml"), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["init_args"]["text_encoder"]["class_path"].endswith("TinyTextEncoder")


def test_resume_from_ckpt(trained, world, tmp_path):
    ckpt = _fit(
        tmp_path, world, "semantic", ["--trainer.max_steps=3", f"--ckpt_path={trained['semantic']}"]
    )
    import torch

    assert torch.load(ckpt, weights_only=True)["global_step"] == 3


def test_semantic_predict_writes_palette_pngs_and_resumes(trained, world, tmp_path, capsys):
    out = tmp_path / "pred"
    config = tmp_path / "predict.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "trainer": {
                    "callbacks": [
                        {
                            "class_path": "tessera.apps.segmentation.writer.SegmentationWriter",
                            "init_args": {"output_dir": str(out), "overlays": True},
                        }
                    ],
                    "enable_progress_bar": False,
                    "logger": False,
                },
            }
        )
    )
    from tessera.apps.segmentation.recipes import CONFIGS as DIR

    argv = [
        "predict",
        "-c",
        str(DIR / "semantic-tiny.yaml"),
        "-c",
        str(config),
        f"--data.init_args.data_root={world}",
        f"--ckpt_path={trained['semantic']}",
    ]
    assert main(argv) == 0
    preds = sorted((out / "pred").glob("*.png"))
    assert [p.stem for p in preds] == [f"test_{i:05d}" for i in range(4)]
    assert Image.open(preds[0]).mode == "P" and Image.open(preds[0]).size == (64, 64)
    assert len(list((out / "vis").glob("*.png"))) == 4
    summary = json.loads((out / "summary.json").read_text())
    assert summary["written"] == 4 and 0 <= summary["metrics"]["miou"] <= 1
    preds[0].unlink()
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["written"] == 1 and summary["already_done"] == 3


def test_grounding_predict_from_pairs_json_skips_bad_items(trained, world, tmp_path):
    pairs = [
        {
            "image": str(world / "img_dir/test/test_00000.png"),
            "question": "where is the red circle?",
        },
        {"image": str(tmp_path / "missing.png"), "question": "where?", "id": "gone"},
    ]
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    out = tmp_path / "gpred"
    config = tmp_path / "predict.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "trainer": {
                    "callbacks": [
                        {
                            "class_path": "tessera.apps.segmentation.writer.SegmentationWriter",
                            "init_args": {"output_dir": str(out)},
                        }
                    ],
                    "enable_progress_bar": False,
                    "logger": False,
                },
            }
        )
    )
    from tessera.apps.segmentation.recipes import CONFIGS as DIR

    assert (
        main(
            [
                "predict",
                "-c",
                str(DIR / "grounding-tiny.yaml"),
                "-c",
                str(config),
                f"--data.init_args.data_root={world / 'grounding'}",
                f"--data.init_args.predict_json={tmp_path / 'pairs.json'}",
                f"--ckpt_path={trained['grounding']}",
            ]
        )
        == 0
    )
    mask = np.array(Image.open(out / "pred" / "00000_test_00000.png"))
    assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 255}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["written"] == 1
    assert summary["skipped"][0]["item_id"] == "gone"
    assert "image file not found" in summary["skipped"][0]["reason"]


@pytest.mark.parametrize("mode", ["semantic", "grounding"])
def test_export_load_and_evaluate(trained, world, tmp_path, capsys, mode):
    module, _ = load_module(trained[mode])
    data = {"size": 64, "num_classes": 4} if mode == "semantic" else {"size": 64}
    path = export(module, tmp_path / f"{mode}.safetensors", data)
    predictor = load(path)
    image = world / "img_dir" / "test" / "test_00001.png"
    result = predictor(image, "where is the small red circle?" if mode == "grounding" else None)
    assert result.mask.shape == (64, 64) and result.overlay(0.5).shape == (64, 64, 3)
    assert sum(result.areas().values()) == pytest.approx(1.0)
    if mode == "grounding":
        assert [g.shape[0] for g in result.gates] == [16, 24, 32, 48, 64]
        with pytest.raises(ValueError, match="non-empty question"):
            predictor(image, " ")
    assert main(["evaluate", "--checkpoint", str(path), "--data", str(world)]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    keys = {"miou", "mdice"} if mode == "semantic" else {"giou", "ciou", "prec_at_0.5"}
    assert keys <= set(metrics) and all(0 <= metrics[k] <= 1 for k in keys)


def test_calibration_picks_threshold_and_min_area_on_val(trained, world):
    from tessera.apps.segmentation.cli import calibrate_grounding
    from tessera.datamodules.segmentation import GroundingDataModule

    module, _ = load_module(trained["grounding"])
    dm = GroundingDataModule(str(world / "grounding"), batch_size=8)
    best = calibrate_grounding(module, dm, thresholds=(0.4, 0.6), min_areas=(0, 10**6))
    assert module.threshold == best["threshold"] == module.hparams.threshold
    assert module.min_area == best["min_area"] == module.hparams.min_area
    # min_area 10**6 empties every mask: gIoU = fraction of no-target questions
    module.threshold, module.min_area = 0.5, 10**6
    from tessera.apps.segmentation.cli import evaluate_grounding

    empty_score = evaluate_grounding(module, dm, "val")["giou"]
    assert best["giou"] >= empty_score


def test_evaluate_unknown_checkpoint_is_a_message(capsys, world):
    assert main(["evaluate", "--checkpoint", "nope", "--data", str(world)]) == 2
    assert "registered segmentation checkpoints" in capsys.readouterr().err


def test_synth_command_writes_all_layouts(tmp_path):
    out = tmp_path / "w"
    assert (
        main(
            ["synth", "--out", str(out), "--seed", "2", "--train", "2", "--val", "0", "--test", "1"]
        )
        == 0
    )
    assert len(list((out / "img_dir" / "train").glob("*.png"))) == 2
    assert (out / "grounding" / "test_grounding.json").is_file()
    assert (out / "refcoco" / "refcoco" / "refs(unc).p").is_file()
    assert not (out / "grounding" / "val_grounding.json").exists()


@pytest.mark.parametrize(
    "name", ["segmentation-semantic-tiny.safetensors", "segmentation-grounding-tiny.safetensors"]
)
def test_shipped_first_release_files_still_load(name):
    """The shipped files predate apps.common.weights and the axial positional embeddings:
    they load strictly, and the semantic one records that it has no embeddings."""
    from tessera.apps.common.checkpoints import checkpoints_dir

    module, data = load_module(checkpoints_dir() / name)
    assert data["size"] == 64
    if module.mode == "semantic":
        assert module.hparams.axial_positional is False
        assert not module.net.bottleneck.positional
