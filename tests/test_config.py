from pathlib import Path

import numpy as np
import pytest

from llark.config import Config, ConfigError, config_from_dict, config_to_dict, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_configs_exist():
    assert {p.name for p in CONFIGS} >= {"debug.yaml", "tiny.yaml", "llark-7b.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_yaml_loads_and_opens_with_its_command(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ") and ("train.py" in first or "evaluate.py" in first), first
    assert config_from_dict(config_to_dict(cfg)) == cfg  # what a checkpoint stores reads back the same
    if cfg.encoder.name == "mir":  # the projector's width and gains fit what the encoder makes
        from llark.encoders import build_encoder, channel_families, channel_gains

        assert build_encoder(cfg.encoder).dim == cfg.model.audio_dim
        gains, groups = channel_gains(cfg.encoder, cfg.model.audio_group_gains, cfg.model.audio_dim), build_encoder(cfg.encoder).groups()
        for name, gain in cfg.model.audio_group_gains.items():
            assert (gains[slice(*groups[name])] == gain).all()
        assert (gains == 1).sum() == cfg.model.audio_dim - sum(np.subtract(*groups[n][::-1]) for n in cfg.model.audio_group_gains)
        if cfg.model.projector == "grouped_mlp2":
            families = channel_families(cfg.encoder, cfg.model.projector_families, cfg.model.audio_dim)
            assert sorted(c for family in families for c in family) == list(range(cfg.model.audio_dim))


def test_llark_7b_follows_the_paper_recipe():
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "llark-7b.yaml")
    assert cfg.model.audio_dim == 4800 and cfg.model.projector == "linear"
    assert cfg.optim.lr == 5e-5 and cfg.optim.weight_decay == 0.0 and cfg.optim.warmup_fraction == 0.03
    assert cfg.train.batch_size * cfg.train.grad_accum * 4 == 32 and cfg.train.steps == 100_000
    assert cfg.model.max_length == 2048 and cfg.model.trainable.lm == "full" and not cfg.model.trainable.lm_embeddings


def test_dotted_overrides_are_typed(tmp_path):
    cfg = load_config(None, ["train.steps=7", "optim.lr=1e-4", "train.progress=false",
                             "data.train_shards=[a.tar,b.tar]", "model.lm.num_layers=3"])
    assert cfg.train.steps == 7 and cfg.optim.lr == 1e-4 and cfg.train.progress is False
    assert cfg.data.train_shards == ["a.tar", "b.tar"] and cfg.model.lm.num_layers == 3


@pytest.mark.parametrize("override, message", [
    ("train.stepz=3", "unknown field"),
    ("train.steps=abc", "expected int"),
    ("train.steps=1.5", "expected an integer"),
    ("train.progress=maybe", "expected true/false"),
    ("nonsense", "expected section.field=value"),
])
def test_bad_overrides_name_the_problem(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train: {steps: 3, colour: blue}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*colour"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
