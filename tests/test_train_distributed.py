"""train-head --workers N relaunches itself through toolkit.distributed.launch with the same settings."""
import numpy as np
import pytest

from train_fixtures import TINY, invoke


def test_workers_relaunch_the_same_command_through_msrun(tiny_data, pretrained_ckpt, tmp_path,
                                                         monkeypatch):
    import toolkit.distributed.launch as launch_mod
    from toolkit.commands import train_head as cmd
    calls = []
    monkeypatch.delenv("MS_ROLE", raising=False)
    monkeypatch.setattr(launch_mod, "launch", lambda script_args, workers, *a, **k:
                        calls.append((script_args, workers, a, k)) or 0)
    out = tmp_path / "dist"
    result = invoke("train-head", tiny_data, "--out", out, "--mode", "finetune", "--pretrained",
                    pretrained_ckpt, *TINY, "--workers", "2", "--save-fp16", "--lr-max", "0.02")
    assert result.exit_code == 0, result.output
    (script_args, workers, args, kwargs), = calls
    assert workers == 2 and script_args[0] == launch_mod.worker_script_path()
    assert args[2] is None, "no --master-port: launch() picks a free one, so two runs never clash"
    assert args[3] == 0 and args[4] == str(out.resolve() / "logs")     # node rank, per-rank logs
    assert kwargs == {"join": True, "device": "cpu", "timeout": None}
    # The worker's command line resolves to the same configuration as the original one.
    relaunched = cmd.train_head.make_context("train-head", list(script_args[2:]))
    original = cmd.train_head.make_context(
        "train-head", [tiny_data, "--out", str(out), "--mode", "finetune", "--pretrained",
                       pretrained_ckpt, *TINY, "--workers", "2", "--save-fp16", "--lr-max", "0.02"])
    assert cmd._resolve(relaunched, relaunched.params) == cmd._resolve(original, original.params)
    assert not out.exists(), "the launcher itself writes nothing into the run folder"


@pytest.fixture
def launched(monkeypatch):
    """The arguments of launch() calls, which start nothing."""
    import toolkit.distributed.launch as launch_mod
    calls = []
    monkeypatch.delenv("MS_ROLE", raising=False)
    monkeypatch.setattr(launch_mod, "launch", lambda *a, **k: calls.append((a, k)) or 0)
    return calls


def test_head_mode_relaunches_with_a_timeout_and_a_given_port(tiny_data, tmp_path, launched):
    result = invoke("train-head", tiny_data, "--out", tmp_path / "r", *TINY, "--workers", "2",
                    "--master-port", "29123", "--timeout", "90")
    assert result.exit_code == 0, result.output
    (args, kwargs), = launched
    assert args[4] == 29123 and kwargs["timeout"] == 90
    assert "--mode" in args[0] and args[0][args[0].index("--mode") + 1] == "head"


@pytest.mark.parametrize("options", [["--node-rank", "1", "--local-workers", "2"],
                                     ["--local-workers", "2"]])
def test_a_multi_host_run_must_name_its_master_port(tiny_data, tmp_path, launched, options):
    result = invoke("train-head", tiny_data, "--out", tmp_path / "r", *TINY, "--mode", "scratch",
                    "--workers", "4", *options)
    assert result.exit_code == 2 and "needs --master-port" in result.output
    assert not launched


def test_head_mode_refuses_learning_rate_scaling(tiny_data, tmp_path, launched):
    result = invoke("train-head", tiny_data, "--out", tmp_path / "r", *TINY, "--workers", "2",
                    "--lr-scaling", "linear")
    assert result.exit_code == 2 and "--lr-scaling" in result.output
    from toolkit.train.config import ConfigError, TrainConfig
    from toolkit.train.loop import train
    with pytest.raises(ConfigError, match="lr-scaling none"):
        train(TrainConfig(data=tiny_data, out=str(tmp_path / "r"), width=0.35, image_size=32,
                          lr_scaling="linear"))


@pytest.mark.mindspore
@pytest.mark.parametrize("rule, factor", [("none", 1.0), ("linear", 4.0)])
def test_lr_scaling_multiplies_the_schedule_by_the_worker_count(tiny_data, tmp_path, rule, factor):
    """--batch-size is per device, so 4 workers take global batches 4x larger; 'linear' scales the
    whole schedule (lr-max and lr-end) by 4, 'none' keeps it. Tolerance: float32 rounding."""
    from toolkit.data.folder import scan_dataset
    from toolkit.train.config import TrainConfig
    from toolkit.train.modes import MODES
    from toolkit.train.schedule import cosine_with_warmup
    from toolkit.train.setup import build_network
    from toolkit.train.tasks import TASKS
    cfg = TrainConfig(data=tiny_data, out=str(tmp_path), mode="scratch", width=0.35, image_size=32,
                      batch_size=2, epochs=2, lr_max=0.05, lr_end=0.01, workers=4, lr_scaling=rule).resolved()
    index = scan_dataset(cfg.data, val_fraction=cfg.val_fraction, seed=cfg.seed)
    net, _ = build_network(cfg, index.num_classes, MODES["scratch"])
    task = TASKS["network"](cfg, net, index, MODES["scratch"])
    plain = cosine_with_warmup(0.05, 0.01, 0.0, 2, task.steps_per_epoch)
    np.testing.assert_allclose(task.lrs, plain * factor, rtol=1e-6)
