"""The app through its CLI on every real layout (VITON-HD, DressCode, MVG): fit a few steps,
evaluate the checkpoint, predict ``<person>___<cloth>.png`` (paired/unpaired, resumable);
the baselines through the same commands; print_config; the Python API."""

import json

import pytest
import torch
import yaml
from PIL import Image

from helpers.layouts import tryon as layouts
from tessera.apps.registry import get_app
from tessera.apps.tryon import load
from tessera.apps.tryon.cli import main

from .conftest import tiny_args

WRITERS = {
    "vitonhd": layouts.write_vitonhd,
    "dresscode": layouts.write_dresscode,
    "mvg": layouts.write_mvg,
}


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_registered():
    assert get_app("tryon").cli == "tessera.apps.tryon.cli:main"


def test_print_config(in_repo, capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["fit", *tiny_args(tmp_path, tmp_path), "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["method"] == "diffusion" and config["data"]["size"] == [32, 24]


@pytest.mark.parametrize("layout", ["vitonhd", "dresscode", "mvg"])
def test_fit_evaluate_predict_on_real_layout(layout, in_repo, tmp_path, capsys):
    data = WRITERS[layout](tmp_path / layout)
    run = tmp_path / "run"
    args = tiny_args(data, run)
    main(
        [
            "fit",
            *args,
            "--trainer.max_steps=2",
            "--data.val_split=test",
            "--trainer.limit_val_batches=1",
            "--trainer.check_val_every_n_epoch=1",
        ]
    )
    (ckpt,) = run.rglob("*.ckpt")
    assert torch.load(ckpt, weights_only=True)["global_step"] == 2
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(data)]) == 0
    metrics = last_json(capsys)
    assert {"ssim", "psnr", "masked_l1", "n"} <= set(metrics) and 0 < metrics["ssim"] <= 1
    if layout == "mvg":
        assert metrics["n_back_view"] == 2 and "back_view_ncc_accuracy" in metrics
        assert "back_view_accuracy" not in metrics  # MVG has no counterfactual renderings
    out = tmp_path / "out"
    predict = ["predict", *args, f"--model.weights={ckpt}", f"--model.predict_out={out}"]
    main(predict)
    summary = json.loads((out / "summary.json").read_text())
    names = sorted(p.name for p in out.glob("*.png"))
    assert summary["written"] == len(names) == metrics["n"] and summary["skipped"] == []
    assert all("___" in n for n in names) and "ssim" in summary["metrics"]
    assert Image.open(out / names[0]).size == (24, 32)
    main(predict)  # resumable: nothing left to do
    assert json.loads((out / "summary.json").read_text())["already_done"] == len(names)


def test_unpaired_predict_names_and_api(in_repo, tmp_path, capsys):
    data = layouts.write_vitonhd(tmp_path / "v", n_train=1, n_test=2)
    run = tmp_path / "run"
    main(
        [
            "fit",
            *tiny_args(data, run),
            "--model.ema_decay=0.99",  # a .ckpt with an EMA copy: predict and load() use it
            "--trainer.max_steps=1",
            "--data.val_split=test",
            "--trainer.limit_val_batches=1",
            "--trainer.check_val_every_n_epoch=1",
        ]
    )
    (ckpt,) = run.rglob("*.ckpt")
    out = tmp_path / "out"
    main(
        [
            "predict",
            *tiny_args(data, run),
            f"--model.weights={ckpt}",
            "--data.pairs=unpaired",
            f"--model.predict_out={out}",
        ]
    )
    assert sorted(p.name for p in out.glob("*.png")) == [
        "00001_00___00002_00.png",
        "00002_00___00001_00.png",
    ]
    tryon = load(ckpt)
    root = data / "test"
    person = Image.open(root / "image" / "00001_00.jpg")
    mask = Image.open(root / "cloth-mask" / "00001_00.jpg").resize(person.size)
    a = tryon(person, root / "cloth" / "00002_00.jpg", mask=mask, steps=2, seed=5)
    b = tryon(person, root / "cloth" / "00002_00.jpg", mask=mask, steps=2, seed=5)
    assert a.size == (24, 32) and list(a.getdata()) == list(b.getdata())
    with pytest.raises(ValueError, match="paint the garment region"):
        tryon(person, root / "cloth" / "00002_00.jpg")


def test_baselines_in_the_same_cli(in_repo, tmp_path, capsys):
    data = layouts.write_mvg(tmp_path / "mvg", n_train=1, n_test=1)
    for extra in (["--model.method=regressor"], ["--model.front_only=true"]):
        root = tmp_path / extra[0].split("=")[0].rsplit(".", 1)[1]
        main(
            [
                "fit",
                *tiny_args(data, root),
                *extra,
                "--trainer.max_steps=1",
                "--data.val_split=test",
                "--trainer.limit_val_batches=1",
                "--trainer.check_val_every_n_epoch=1",
            ]
        )
        assert len(list(root.rglob("*.ckpt"))) == 1
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", "paste", "--data", str(data)]) == 0
    paste = last_json(capsys)
    assert paste["n"] == 3 and paste["n_back_view"] == 1
    assert 0.0 <= paste["back_view_ncc_accuracy"] <= 1.0


def test_evaluate_at_the_dataset_resolution_paired_and_unpaired(in_repo, tmp_path, capsys):
    """A 32×24 model on a 64×48 dataset is scored at 64×48 (results upsampled, the unmasked
    region the full-size person's own pixels); FID/KID over the test pairs with a local
    feature network injected (Inception weights are not available offline); ``--size``
    overrides; unpaired reports only FID/KID and the view score."""
    from tessera.apps.common.cli import EvaluateRequest
    from tessera.apps.tryon.api import save_weights
    from tessera.apps.tryon.cli import at_scoring_size, evaluate
    from tessera.apps.tryon.module import TryOnModule

    from .conftest import TINY_NET
    from .test_metrics import Features

    data = layouts.write_vitonhd(tmp_path / "v", n_train=1, n_test=3)
    torch.manual_seed(0)
    weights = save_weights(tmp_path / "w.safetensors", TryOnModule(net=TINY_NET), (32, 24))

    def run(split, **options):
        request = EvaluateRequest(str(weights), str(data), split, batch_size=2, options=options)
        return evaluate(request)

    paired = run("test", features=Features(), steps=2)
    assert paired["score_size"] == [64, 48] and paired["n"] == 3
    assert {"ssim", "psnr", "masked_l1", "fid", "kid"} <= set(paired)
    assert run("test", features=Features(), steps=2, size=[32, 24])["score_size"] == [32, 24]
    unpaired = run("test@unpaired", features=Features(), steps=2)
    assert {"fid", "kid"} <= set(unpaired) and "ssim" not in unpaired and "lpips" not in unpaired

    mask = torch.zeros(1, 1, 64, 48)
    mask[..., 10:40, 8:30] = 1
    ref = {"mask": mask, "agnostic": torch.rand(1, 3, 64, 48)}
    out, _ = at_scoring_size(torch.rand(1, 3, 32, 24), {"score": ref})
    assert out.shape == (1, 3, 64, 48)
    keep = mask.expand_as(out) == 0
    assert torch.equal(out[keep], ref["agnostic"][keep])
