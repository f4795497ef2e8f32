"""The umbrella CLI dispatches to registered apps and serves demos."""

import pytest

from helpers import fake_app as fake
from tessera import cli
from tessera.apps import registry
from tessera.apps.registry import AppSpec


@pytest.fixture
def fake_app(monkeypatch):
    spec = AppSpec(
        name="toy",
        title="Toy",
        summary="a registered app for tests",
        cli="helpers.fake_app:main",
        demo="helpers.fake_app:build_demo",
        checkpoints="helpers.fake_app:train_checkpoints",
    )
    monkeypatch.setattr(registry, "_discover", lambda: {"toy": spec})
    monkeypatch.setattr(cli, "list_apps", lambda: [spec])
    fake.CALLS.clear()
    return spec


def test_help_lists_registered_tasks(fake_app, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "toy" in out and "a registered app for tests" in out


def test_task_arguments_are_forwarded_verbatim(fake_app):
    assert cli.main(["toy", "fit", "-c", "configs/tiny.yaml", "--trainer.max_steps", "3"]) == 0
    assert fake.CALLS == [["fit", "-c", "configs/tiny.yaml", "--trainer.max_steps", "3"]]


def test_unknown_task_is_an_error(fake_app, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["nosuchtask", "fit"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_get_app_names_the_registered_tasks(fake_app):
    with pytest.raises(KeyError, match="registered: toy"):
        registry.get_app("missing")


def test_demo_share_flag_parses_booleans(monkeypatch, fake_app):
    launched = {}

    def fake_launch(demo, host, port, share):
        launched.update(host=host, port=port, share=share, demo=demo)

    monkeypatch.setattr("tessera.demos.hub.launch", fake_launch)
    cli.main(["demo", "--port", "7999", "--share", "false"])
    assert launched["host"] == "127.0.0.1"
    assert launched["port"] == 7999 and launched["share"] is False


def test_real_registry_discovers_only_packages_with_a_spec():
    registry._discover.cache_clear()
    for app in registry.list_apps():
        assert app.name and app.cli


def test_make_checkpoints_runs_every_recipe(fake_app, monkeypatch):
    from tessera.apps import checkpoints

    monkeypatch.setattr(checkpoints, "list_apps", lambda: [fake_app])
    fake.TRAINED.clear()
    assert checkpoints.main([]) == 0
    assert fake.TRAINED == ["toy-tiny"]
