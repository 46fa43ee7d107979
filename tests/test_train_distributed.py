"""train-head --workers N relaunches itself through toolkit.distributed.launch with the same settings."""
import pytest

from train_fixtures import TINY, invoke, pretrained_ckpt, tiny_data  # noqa: F401


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
    assert args[3] == 0 and args[4] == str(out.resolve() / "logs")     # node rank, per-rank logs
    assert kwargs == {"join": True, "device": "cpu"}
    # The worker's command line resolves to the same configuration as the original one.
    relaunched = cmd.train_head.make_context("train-head", list(script_args[2:]))
    original = cmd.train_head.make_context(
        "train-head", [tiny_data, "--out", str(out), "--mode", "finetune", "--pretrained",
                       pretrained_ckpt, *TINY, "--workers", "2", "--save-fp16", "--lr-max", "0.02"])
    assert cmd._resolve(relaunched, relaunched.params) == cmd._resolve(original, original.params)
    assert not out.exists(), "the launcher itself writes nothing into the run folder"


def test_head_mode_with_workers_is_refused(tiny_data, tmp_path, monkeypatch):
    result = invoke("train-head", tiny_data, "--out", tmp_path / "r", *TINY, "--workers", "2")
    assert result.exit_code == 2 and "drop --workers" in result.output


def test_head_mode_with_workers_is_refused_inside_workers(tiny_data, tmp_path, monkeypatch):
    from toolkit.train.config import ConfigError, TrainConfig
    from toolkit.train.loop import train
    import toolkit.train.loop as loop
    monkeypatch.setattr(loop, "_distributed", lambda cfg: (0, 2, {"num_shards": 2, "shard_id": 0}))
    with pytest.raises(ConfigError, match="without --workers"):
        train(TrainConfig(data=tiny_data, out=str(tmp_path / "r"), mode="head", width=0.35,
                          image_size=32, workers=2))
