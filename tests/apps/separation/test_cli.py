"""The app through its CLI: fit, resume, print_config, predict (writer, resume, csv), evaluate,
the Python API and the app registration."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from helpers.separation_cli import TINY, csv_rows, tiny_model_config
from tessera.apps.registry import get_app
from tessera.apps.separation import load
from tessera.apps.separation.cli import main
from tessera.apps.separation.module import SeparationModule


@pytest.fixture
def in_repo(monkeypatch, request):
    monkeypatch.chdir(request.config.rootpath)


def test_registered_with_demo_and_recipe():
    app = get_app("separation")
    assert app.cli == "tessera.apps.separation.cli:main"
    assert app.demo == "tessera.demos.separation:build_demo"


def test_recipe_phases_end_on_a_saved_checkpoint(tmp_path):
    """Checkpoints are written at validations: a phase ending between two would hand the next
    phase (and the export) an older checkpoint, silently dropping steps."""
    from tessera.apps.separation import recipes

    interval = yaml.safe_load(recipes.CONFIG.read_text())["trainer"]["val_check_interval"]
    assert all(steps % interval == 0 for steps, *_ in recipes.PHASES)
    with pytest.raises(ValueError, match=f"lose its last {interval // 2} steps"):
        recipes.fit(
            tmp_path / "world", tmp_path / "run", ((interval + interval // 2, "constant", ()),)
        )
    assert not (tmp_path / "run").exists()


def test_print_config(in_repo, capsys):
    with pytest.raises(SystemExit):
        main(["fit", *TINY, "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["arch"] == "mossformer" and config["data"]["segment"] == 1.5


@pytest.mark.parametrize("config", ["tiny", "convtasnet_tiny"])
def test_fit_then_resume_from_checkpoint(in_repo, small_world, tmp_path, config):
    args = [
        "fit", *TINY, "-c", f"apps/separation/configs/{config}.yaml",
        "--trainer.val_check_interval", "1",
        "--data.data", str(small_world), "--trainer.max_steps", "2",
        "--trainer.default_root_dir", str(tmp_path), "--data.batch_size", "2",
        "--trainer.enable_checkpointing", "true",
        "--trainer.callbacks+=ModelCheckpoint", f"--trainer.callbacks.dirpath={tmp_path}/ckpt",
    ]  # fmt: skip
    main(args)
    (ckpt,) = (tmp_path / "ckpt").glob("*.ckpt")
    assert torch.load(ckpt, weights_only=True)["global_step"] == 2
    main([*args[:-6], "--trainer.max_steps", "3", "--ckpt_path", str(ckpt)])


def test_predict_writes_tracks_csv_and_resumes(in_repo, small_world, tmp_path, weights):
    out = tmp_path / "out"
    args = [
        "predict", *TINY, "--data.data", str(small_world), "--data.predict_split", "test",
        "--model.init_weights", str(weights), "--model.predict_out", str(out),
    ]  # fmt: skip
    main(args)
    ids = [r["mixture_ID"] for r in csv_rows(next(small_world.rglob("*test*.csv")))]
    for item_id in ids:
        for k in (1, 2):
            data, rate = sf.read(out / f"{item_id}_s{k}.wav")
            mix, _ = sf.read(next(small_world.rglob(f"mix_clean/{item_id}.wav")))
            assert rate == 8000 and data.shape == mix.shape
    rows = csv_rows(out / "metrics.csv")
    assert sorted(r["item_id"] for r in rows) == sorted(ids)
    assert set(rows[0]) == {"item_id", "si_sdr", "si_sdri", "sdr", "sdri"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["written"] == len(ids) and set(summary["metrics"]) >= {"si_sdri"}
    (out / f"{ids[0]}_s2.wav").unlink()
    main(args)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["written"] == 1 and summary["already_done"] == len(ids) - 1
    assert len(csv_rows(out / "metrics.csv")) == len(ids)


def test_predict_a_plain_folder_at_another_rate_and_a_corrupt_file(in_repo, tmp_path, weights):
    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(folder / "talk.wav", np.random.default_rng(0).standard_normal(16000) * 0.1, 16000)
    (folder / "broken.wav").write_bytes(b"RIFF nonsense")
    out = tmp_path / "out"
    main(["predict", *TINY, "--data.predict_data", str(folder), "--model.init_weights",
          str(weights), "--model.predict_out", str(out)])  # fmt: skip
    data, rate = sf.read(out / "talk_s1.wav")
    assert rate == 16000 and len(data) == 16000
    summary = json.loads((out / "summary.json").read_text())
    assert [s["item_id"] for s in summary["skipped"]] == ["broken"]
    assert "not a readable audio file" in summary["skipped"][0]["reason"]


def test_evaluate_prints_json_metrics(in_repo, small_world, weights, tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(weights), "--data", str(small_world),
                 "--out", str(tmp_path / "m.json")]) == 0  # fmt: skip
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"si_sdri", "sdri", "si_sdr", "sdr"} <= set(metrics) and metrics["n"] == 3
    assert json.loads((tmp_path / "m.json").read_text()) == metrics
    assert main(["evaluate", "--checkpoint", "no-such-ckpt", "--data", str(small_world)]) == 2


def test_python_api_loads_safetensors_and_lightning_ckpt(tmp_path, weights):
    separator = load(weights)
    audio = np.random.default_rng(0).standard_normal(12000).astype(np.float32) * 0.1
    a = separator(audio, sample_rate=8000).sources
    module = SeparationModule(net=tiny_model_config()["net"])
    module.model.load_state_dict(separator.model.state_dict())
    ckpt = tmp_path / "m.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, ckpt)
    np.testing.assert_allclose(load(ckpt)(audio, sample_rate=8000).sources, a, atol=1e-6)
