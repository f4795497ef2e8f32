"""The app on the corpora as they ship (LibriMix, WSJ0-2mix, LibriSpeech for dynamic mixing):
fit a few steps, evaluate and predict on each; full-utterance scoring that agrees with
``test``; full-size defaults; one sample rate; speakers never mixed with themselves; inputs
too short to read are skipped, any other length works."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from lightning import Trainer

from helpers.layouts import separation as layouts
from helpers.separation_cli import TINY, csv_rows, tiny_model_config
from tessera.apps.common.cli import EvaluateRequest
from tessera.apps.separation import load, save_weights
from tessera.apps.separation.cli import evaluate, main
from tessera.apps.separation.metrics import (
    pairwise_si_sdr,
    separation_metrics,
    si_sdr,
)
from tessera.apps.separation.module import SeparationModule
from tessera.datamodules.separation.datamodule import SeparationDataModule
from tessera.datamodules.separation.dataset import (
    AudioCache,
    DynamicMixingDataset,
    folder_speakers,
    source_speakers,
)
from tessera.datamodules.separation.formats import Mixture, find_mixtures


@pytest.fixture(scope="module")
def librimix(tmp_path_factory):
    root = tmp_path_factory.mktemp("librimix")
    layouts.write_librimix(root, per_split=2)
    return root


@pytest.fixture(scope="module")
def wsj0(tmp_path_factory):
    root = tmp_path_factory.mktemp("wsj0")
    return layouts.write_wsj0_2mix(root, per_split=2)


@pytest.fixture
def in_repo(monkeypatch, request):
    monkeypatch.chdir(request.config.rootpath)


def fit_args(data, tmp_path, train_split, val_split, *extra):
    return [
        "fit", *TINY, "--data.data", str(data), "--data.train_split", train_split,
        "--data.val_split", val_split, "--data.segment", "0.25", "--data.batch_size", "2",
        "--trainer.max_steps", "2", "--trainer.default_root_dir", str(tmp_path),
        "--trainer.enable_checkpointing", "true", *extra,
    ]  # fmt: skip


def last_ckpt(tmp_path):
    return max(tmp_path.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)


@pytest.mark.parametrize(
    "layout, train, val, test, mode, mix_type",
    [
        ("librimix", "train-360", "dev", "test", "min", "mix_clean"),
        ("librimix", "train-100", "dev", "test", "min", "mix_both"),
        ("wsj0", "tr", "cv", "tt", "max", "mix_clean"),
    ],
)
def test_fit_evaluate_predict_on_the_published_layout(
    in_repo, request, tmp_path, capsys, layout, train, val, test, mode, mix_type
):
    data = request.getfixturevalue(layout)
    extra = ["--data.mode", mode, "--data.mix_type", mix_type]
    main(fit_args(data, tmp_path, train, val, *extra))
    ckpt = last_ckpt(tmp_path)
    assert torch.load(ckpt, weights_only=True)["global_step"] == 2
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--split", test,
                 "--mode", mode, "--mix_type", mix_type]) == 0  # fmt: skip
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    mixtures = find_mixtures(data, test, mode=mode, mix_type=mix_type)
    assert metrics["n"] == len(mixtures) == 2 and np.isfinite(metrics["si_sdri"])
    assert all(mix_type in str(m.mix) or layout == "wsj0" for m in mixtures)
    out = tmp_path / "separated"
    main(["predict", *TINY, "--data.data", str(data), "--data.predict_split", val, *extra,
          "--model.init_weights", str(ckpt), "--model.predict_out", str(out)])  # fmt: skip
    ids = [m.item_id for m in find_mixtures(data, val, mode=mode, mix_type=mix_type)]
    for item_id in ids:
        assert (out / f"{item_id}_s1.wav").is_file() and (out / f"{item_id}_s2.wav").is_file()
    assert sorted(r["item_id"] for r in csv_rows(out / "metrics.csv")) == sorted(ids)


def test_evaluate_scores_full_utterances_and_agrees_with_test(librimix, weights):
    separator = load(weights, chunk_seconds=None)
    data = SeparationDataModule(str(librimix), eval_batch_size=2)
    items = [data.eval_dataset("test")[i] for i in range(2)]
    expected = {}
    for item in items:  # one forward per utterance, by hand
        est = separator.model(item["mix"][None])
        one = separation_metrics(est.double(), item["sources"][None].double(),
                                 item["mix"][None].double())  # fmt: skip
        for key, value in one.items():
            expected[key] = expected.get(key, 0.0) + float(value[0]) / len(items)
    metrics = evaluate(EvaluateRequest(str(weights), str(librimix), "test"))
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-3)
    chunked = evaluate(
        EvaluateRequest(str(weights), str(librimix), "test",
                        options={"chunk_seconds": 0.3, "overlap_seconds": 0.1})
    )  # fmt: skip
    assert abs(chunked["si_sdr"] - metrics["si_sdr"]) > 1e-3  # the option changes the path
    module = SeparationModule(net=tiny_model_config()["net"])
    module.model.load_state_dict(separator.model.state_dict())
    trainer = Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    (tested,) = trainer.test(module, datamodule=data, verbose=False)  # padded batches of 2
    for key in ("si_sdri", "sdri", "si_sdr", "sdr"):
        assert tested[f"test/{key}"] == pytest.approx(metrics[key], abs=1e-3)


def test_scoring_memory_is_linear_in_speakers_times_length():
    g = torch.Generator().manual_seed(0)
    est, ref = torch.randn(2, 3, 3, 4000, generator=g, dtype=torch.float64)
    brute = si_sdr(est.unsqueeze(2).expand(-1, -1, 3, -1), ref.unsqueeze(1).expand(-1, 3, -1, -1))
    torch.testing.assert_close(pairwise_si_sdr(est, ref), brute)
    k, t = 3, 8000 * 60  # one minute, three talkers
    est, ref = torch.randn(2, 1, k, t, generator=g, dtype=torch.float64)
    mix = ref.sum(1)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                profile_memory=True) as prof:  # fmt: skip
        separation_metrics(est, ref, mix)
    largest = max(e.cpu_memory_usage for e in prof.events())
    assert largest < k * k * t * 8 / 2  # no (B, K, K, T) float64 tensor was allocated


def test_no_audio_cache_by_default_and_a_bounded_one(librimix):
    data = SeparationDataModule(str(librimix), train_split="train-360", segment=0.25)
    data.setup("fit")
    train = data.datasets["train"]
    train[0], train[1]
    assert train.read.max_bytes == 0 and not train.read._store
    files = [s for m in find_mixtures(librimix, "train-360") for s in m.sources]
    one_file = AudioCache(8000)(files[0]).numel() * 4
    cache = AudioCache(8000, max_mb=1.5 * one_file / 2**20)
    for f in files:
        cache(f)
    assert 0 < len(cache._store) < len(files) and cache._bytes <= cache.max_bytes


def test_validation_runs_within_max_steps_or_the_run_is_refused(in_repo, librimix, tmp_path):
    args = fit_args(librimix, tmp_path, "train-360", "dev", "--data.batch_size", "1")
    monitor = [
        "--trainer.callbacks+=ModelCheckpoint",
        "--trainer.callbacks.monitor=val/si_sdri",
        "--trainer.callbacks.mode=max",
        f"--trainer.callbacks.dirpath={tmp_path}/best",
    ]
    main([*args, *monitor])  # tiny.yaml validates by steps (TINY: every step)
    (state,) = [v for k, v in torch.load(last_ckpt(tmp_path / "best"), weights_only=True)[
        "callbacks"].items() if "val/si_sdri" in k]  # fmt: skip
    assert torch.isfinite(torch.as_tensor(state["best_model_score"]))
    with pytest.raises(ValueError, match="validation would never run"):
        main([*args, "--trainer.val_check_interval", "1.0", "--trainer.check_val_every_n_epoch",
              "1", "--trainer.max_steps", "1"])  # fmt: skip


def test_model_and_data_sample_rates_cannot_disagree(in_repo, librimix, tmp_path):
    with pytest.raises(ValueError, match="data.sample_rate=16000 but model.sample_rate=8000"):
        main(fit_args(librimix, tmp_path, "train-360", "dev", "--data.sample_rate", "16000"))


def test_checkpoint_records_its_rate_and_inputs_are_resampled_to_it(librimix, tmp_path):
    module = SeparationModule(sample_rate=16000, net=tiny_model_config()["net"])
    path = save_weights(tmp_path / "16k.safetensors", module)
    separator = load(path)
    assert separator.sample_rate == 16000
    metrics = evaluate(EvaluateRequest(str(path), str(librimix), "test"))  # wav8k tree only
    assert metrics["n"] == 2 and np.isfinite(metrics["si_sdri"])
    result = separator(str(next((librimix / "Libri2Mix").rglob("mix_clean/*.wav"))))
    assert result.sample_rate == 8000
    with pytest.raises(ValueError, match="trained at 16000 Hz but the model is set to 8000"):
        SeparationModule(net=tiny_model_config()["net"], init_weights=str(path))


def test_dynamic_mixing_reads_speakers_from_published_names(librimix, wsj0, tmp_path):
    pairs = source_speakers(find_mixtures(librimix, "train-360"))
    ids = {spk for _, spk in pairs}
    assert ids <= {str(s) for s, _ in layouts.LIBRISPEECH_CHAPTERS["train-360"]}
    for path, spk in pairs:  # LibriMix: s{k} holds the k-th utterance of the mixture id
        k = int(path.parent.name[1:])
        assert path.stem.split("_")[k - 1].split("-")[0] == spk
    wsj = source_speakers(find_mixtures(wsj0, "tr"))
    assert {spk for _, spk in wsj} <= set(layouts.WSJ0_SPEAKERS["tr"])
    libri = layouts.write_librispeech(tmp_path)
    files = sorted(libri.rglob("*.flac"))
    speakers = folder_speakers(files, libri)
    assert {s for _, s in speakers} == {
        str(s) for s, _ in layouts.LIBRISPEECH_CHAPTERS["train-100"]
    }
    regex = folder_speakers(files, libri, speaker_regex=r"^\d+-(\d+)-")  # chapters as speakers
    assert {s for _, s in regex} == {str(c) for _, c in layouts.LIBRISPEECH_CHAPTERS["train-100"]}
    # Two speakers with two files each: every mixture pairs the two speakers, never one twice.
    two = [(f, s) for f, s in speakers if s in ("103", "1034")]
    dm = DynamicMixingDataset(two, 16000, 2, segment=0.2, epoch_size=30)
    assert all(sorted(dm[i]["speakers"]) == ["103", "1034"] for i in range(30))
    data = SeparationDataModule(str(librimix), sample_rate=16000, dynamic_mixing=True,
                                dm_folder=str(libri), segment=0.2, dm_epoch_size=4)  # fmt: skip
    data.setup("fit")
    assert data.datasets["train"].speakers == sorted(s for s in {s for _, s in speakers})
    with pytest.warns(UserWarning, match="name no speakers"):  # anonymous ids are flagged
        source_speakers([Mixture("meeting-a", files[0], (files[0], files[1]))])


def test_predict_skips_unreadable_inputs_and_pads_short_ones(in_repo, tmp_path, weights):
    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(folder / "empty.wav", np.zeros(0, np.float32), 8000)
    sf.write(folder / "one.wav", np.array([0.2], np.float32), 8000)
    sf.write(folder / "short.wav", np.full(10, 0.1, np.float32), 16000)
    sf.write(folder / "talk.wav", np.random.default_rng(0).standard_normal(4000) * 0.1, 8000)
    out = tmp_path / "out"
    main(["predict", *TINY, "--data.predict_data", str(folder), "--model.init_weights",
          str(weights), "--model.predict_out", str(out)])  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["written"] == 3
    assert sorted(p.stem[:-3] for p in out.glob("*_s1.wav")) == ["one", "short", "talk"]
    (skipped,) = summary["skipped"]
    assert skipped["item_id"] == "empty" and "no samples" in skipped["reason"]
    assert sf.read(out / "one_s1.wav")[0].shape == (1,)
    assert sf.info(out / "short_s2.wav").samplerate == 16000
