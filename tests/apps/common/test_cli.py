"""The app CLI scaffold: Lightning subcommands, synth and evaluate."""

import json

import pytest
import yaml

from helpers.toy_task import ToyDataModule, ToyModule
from tessera.apps.common.cli import AppCommands, EvaluateRequest, run_app

SYNTH_CALLS = []


def _evaluate(request: EvaluateRequest) -> dict:
    if request.checkpoint == "missing":
        raise FileNotFoundError("missing: no such checkpoint")
    return {"acc": 0.5, "split": request.split}


def _synth(argv):
    SYNTH_CALLS.append(argv)
    return 0


APP = AppCommands(
    task="toy",
    model_class=ToyModule,
    datamodule_class=ToyDataModule,
    synth=_synth,
    evaluate=_evaluate,
)


def test_help_lists_all_commands(capsys):
    assert run_app(APP, ["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("fit", "predict", "synth", "evaluate"):
        assert command in out


def test_synth_forwards_arguments():
    SYNTH_CALLS.clear()
    assert run_app(APP, ["synth", "--out", "w", "--seed", "3"]) == 0
    assert SYNTH_CALLS == [["--out", "w", "--seed", "3"]]


def test_evaluate_prints_json_last_and_writes_out(tmp_path, capsys):
    out = tmp_path / "m.json"
    assert run_app(APP, ["evaluate", "--checkpoint", "c", "--data", "d", "--out", str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == {"acc": 0.5, "split": "test"} == json.loads(out.read_text())


def test_evaluate_user_error_is_a_message_not_a_traceback(capsys):
    assert run_app(APP, ["evaluate", "--checkpoint", "missing", "--data", "d"]) == 2
    assert "error: missing: no such checkpoint" in capsys.readouterr().err


def test_app_specific_evaluate_options_reach_the_request(capsys):
    seen = []

    def evaluate(request):
        seen.append(request.options)
        return {"acc": 1.0}

    def arguments(parser):
        parser.add_argument("--chunk-seconds", type=float, default=None)

    app = AppCommands(
        "toy", ToyModule, ToyDataModule, _synth, evaluate, evaluate_arguments=arguments
    )
    argv = ["evaluate", "--checkpoint", "c", "--data", "d", "--chunk-seconds", "2.5"]
    assert run_app(app, argv) == 0
    assert seen == [{"chunk_seconds": 2.5}]  # only the app's own options, not --data etc.
    with pytest.raises(SystemExit):  # an app without the option rejects it
        run_app(APP, ["evaluate", "--checkpoint", "c", "--data", "d", "--chunk-seconds", "1"])


def test_fit_with_config_then_print_config(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["tessera-toy"])  # LightningCLI gets its args from args=
    config = {
        "model": {"lr": 0.2},
        "data": {"n": 8},
        "trainer": {
            "max_epochs": 2,
            "logger": False,
            "enable_checkpointing": False,
            "default_root_dir": str(tmp_path),
            "enable_progress_bar": False,
        },
    }
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(config))
    assert run_app(APP, ["fit", "-c", str(cfg)]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit):
        run_app(APP, ["fit", "-c", str(cfg), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["lr"] == 0.2 and printed["data"]["n"] == 8


def test_unknown_command_is_rejected(capsys):
    assert run_app(APP, ["train"]) == 2
    assert "unknown command 'train'" in capsys.readouterr().err


def test_only_fit_saves_its_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["tessera-toy"])
    trainer = ["--trainer.logger", "false", "--trainer.enable_progress_bar", "false"]
    run_app(APP, ["validate", "--data.n", "4", *trainer])
    assert not (tmp_path / "config.yaml").exists()
    run_app(APP, ["fit", "--data.n", "4", "--trainer.max_epochs", "1", *trainer])
    assert (tmp_path / "config.yaml").exists()
