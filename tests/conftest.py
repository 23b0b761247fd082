"""Shared fixtures: tiny probe shards, a tiny BPE tokenizer, and tiny LLark models.

Tests run in parallel (pytest -n 2 on 2 cores), so each process uses one torch thread.
Slow end-to-end tests carry @pytest.mark.slow: `make test-fast` (pytest -m "not slow") skips them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from llark.config import ModelConfig, LMConfig, TrainableConfig
from llark.model import LLark, build_lm
from llark.shards import write_shards
from llark.synthetic import PROBE_ANSWER, PROBE_QUESTIONS, PROBE_WORDS, probe_records
from llark.tokenizer import add_llark_tokens, train_bpe_tokenizer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # train.py and evaluate.py are top-level entry points

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test starts at one thread, whatever an earlier test's script set: a benchmark's main() sets
    2 (benchmarks/tempo_decoding.py), and at 2 threads two training runs in one process round apart now
    and then, which broke the exact resume test (tests/test_train.py) once in CI."""
    torch.set_num_threads(1)
    yield


def load_script(path: str):
    """A script (benchmarks/..., preprocessing/...) as a module, registered so worker processes can
    unpickle its functions."""
    import importlib.util

    name = Path(path).stem + "_script_under_test"
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end tests (skip with -m 'not slow')")


PROBE_TEXTS = [*PROBE_QUESTIONS, *(PROBE_ANSWER.format(word=w) for w in PROBE_WORDS), "[INST] [/INST] ### Human:"]


@pytest.fixture(scope="session")
def probe_shards(tmp_path_factory) -> Path:
    """4 shards of 40 probe clips (16-d features, 8-24 frames), 2 Q/A pairs each."""
    out = tmp_path_factory.mktemp("probe")
    write_shards(probe_records(160, audio_dim=16, seed=0), out / "train", max_bytes=60_000)
    return out


def tiny_tokenizer():
    tokenizer = train_bpe_tokenizer(PROBE_TEXTS, vocab_size=300)
    ids = add_llark_tokens(tokenizer)
    return tokenizer, ids


def tiny_model(template: str = "llama2", trainable: TrainableConfig | None = None, seed: int = 0,
               label_loss_weight: float = 0.0, attention: str = "sdpa") -> LLark:
    torch.manual_seed(seed)
    tokenizer, ids = tiny_tokenizer()
    config = ModelConfig(
        lm=LMConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64,
                    max_position_embeddings=256, attention=attention),
        audio_dim=16,
        template=template,
        max_length=128,
        trainable=trainable or TrainableConfig(lm="full", lm_embeddings=True),
        label_loss_weight=label_loss_weight,
    )
    model = LLark(config, build_lm(config.lm, ids.base_vocab_size), ids, len(tokenizer))
    model.tokenizer = tokenizer
    return model


@pytest.fixture(scope="session")
def trained_probe_checkpoint(tmp_path_factory):
    """configs/debug.yaml trained for 300 steps on the probe task (~15 s); (data dir, checkpoint dir)."""
    import subprocess

    root = tmp_path_factory.mktemp("trained")
    data = root / "probe"
    subprocess.run([sys.executable, str(REPO / "preprocessing" / "make_probe_data.py"), "--out", str(data)], check=True)
    import train

    train.main(["--config", str(REPO / "configs" / "debug.yaml"), f"train.out_dir={root / 'run'}",
                f"data.train_shards=[{data}/train-*.tar]", "train.steps=300", "train.progress=false"])
    return data, root / "run" / "checkpoints" / "step-000300"
