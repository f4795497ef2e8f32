"""Browser test: the try-on tab runs the bundled back-view example and renders the result
and the side-by-side view (with a checkpoint the test trains for one step, until one is
shipped)."""

import pytest

from helpers.layouts import tryon as layouts
from tessera.apps.tryon.cli import main
from tessera.demos.tryon import build_demo

pytestmark = pytest.mark.e2e

NET = (
    '{"channels": [8, 16, 32], "context_dim": 16, "heads": 1, "dim_head": 8, '
    '"attention_levels": [1, 2], "pose_grid": [2, 2]}'
)


@pytest.fixture
def checkpoint(tmp_path, monkeypatch, request):
    monkeypatch.chdir(request.config.rootpath)
    data = layouts.write_mvg(tmp_path / "mvg", n_train=1, n_test=1)
    main(
        [
            "fit",
            "-c",
            "apps/tryon/configs/tiny.yaml",
            f"--data.data={data}",
            "--data.size=[32, 24]",
            f"--model.net={NET}",
            "--data.batch_size=2",
            "--model.val_ddim_steps=1",
            "--trainer.max_steps=1",
            "--data.val_split=test",
            "--trainer.limit_val_batches=1",
            "--trainer.check_val_every_n_epoch=1",
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp_path / 'run'}",
        ]
    )
    (ckpt,) = (tmp_path / "run").rglob("*.ckpt")
    return ckpt


def test_back_view_example_renders_result_and_side_by_side(serve_demo, checkpoint):
    page = serve_demo(build_demo(str(checkpoint)))
    page.locator("#tryon-examples tbody tr, #tryon-examples button").nth(1).click()
    page.locator("#tryon-front img").first.wait_for()
    page.locator("#tryon-run").click()
    for elem in ("#tryon-result img", "#tryon-side img"):
        image = page.locator(elem).first
        image.wait_for(timeout=120_000)
        assert image.get_attribute("src")
