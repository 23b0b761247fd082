"""End to end on configs/debug.yaml: train, checkpoint, resume exactly, distributed parity, LoRA, probe accuracy."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import train
from llark.config import load_config
from llark.distributed import DistEnv
from llark.inference import Answerer
from llark.model import LLark, build_lm
from llark.shards import write_shards
from llark.synthetic import probe_records
from tests.conftest import REPO, tiny_tokenizer

DEBUG = str(REPO / "configs" / "debug.yaml")
TEARDOWN_ABORT = "terminate called without an active exception"


def run_train(out_dir: Path, shards: Path, *overrides: str) -> list[dict]:
    train.main(["--config", DEBUG, f"train.out_dir={out_dir}", f"data.train_shards=[{shards}/train-*.tar]",
                "train.progress=false", *overrides])
    return [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines()]


def debug_model() -> LLark:
    """configs/debug.yaml's model, untrained, with the shared tiny BPE tokenizer (tests/conftest.py)."""
    cfg = load_config(DEBUG)
    tokenizer, ids = tiny_tokenizer()
    return LLark(cfg.model, build_lm(cfg.model.lm, ids.base_vocab_size), ids, len(tokenizer))


def torchrun(out_dir: Path, shards: Path, *overrides: str) -> list[dict]:
    # gloo on CPU on every machine: with CUDA visible each rank would claim cuda:LOCAL_RANK, and a one-GPU
    # machine has no second one.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(REPO / "train.py"), "--config", DEBUG, f"train.out_dir={out_dir}",
               f"data.train_shards=[{shards}/train-*.tar]", "train.progress=false", *overrides]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0 and TEARDOWN_ABORT in result.stdout + result.stderr and "[train] done" in result.stdout:
        # A rank aborted at interpreter exit after training finished and every file was written: with FSDP2,
        # torch 2.13 keeps the gloo group alive past destroy_process_group (DTensor holds references to
        # it), and its threads race the exit. Seen once in many CI runs (0 of 80 here); run it once more.
        shutil.rmtree(out_dir)
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines()]


def test_zero_steps_saves_the_model_as_built(tmp_path, probe_shards):
    # How a pretrained LM used without training (configs/chatmusician-7b.yaml) becomes a checkpoint.
    assert run_train(tmp_path / "zero", probe_shards, "train.steps=0") == []
    model = LLark.from_pretrained(tmp_path / "zero" / "checkpoints" / "step-000000")
    assert Answerer(model).answer(["Which instrument is loudest in this clip?"], [torch.randn(4, 16).numpy()])


def test_init_from_starts_a_curriculum_stage_from_the_weights_with_a_fresh_schedule(tmp_path, probe_shards):
    first = run_train(tmp_path / "listen", probe_shards, "train.steps=3", "data.families=[mir_qa]")
    listened = tmp_path / "listen" / "checkpoints" / "step-000003"
    assert [row["step"] for row in first] == [1, 2, 3]
    # Saved as loaded (steps=0): the same weights and tokenizer, under a new run.
    run_train(tmp_path / "as-is", probe_shards, "train.steps=0", f"train.init_from={listened}")
    carried = tmp_path / "as-is" / "checkpoints" / "step-000000"
    for name in ("projector.safetensors", "new_token_embeddings.safetensors", "lm/model.safetensors"):
        before, after = load_file(listened / name), load_file(carried / name)
        assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before), name
    assert (listened / "tokenizer" / "tokenizer.json").read_text() == (carried / "tokenizer" / "tokenizer.json").read_text()
    # Trained on: counted from step 1 again, the schedule starts over.
    second = run_train(tmp_path / "next", probe_shards, "train.steps=4", f"train.init_from={listened}")
    assert [row["step"] for row in second] == [1, 2, 3, 4] and second[0]["lr"] == first[0]["lr"] > second[-1]["lr"]
    with pytest.raises(ValueError, match=r"model config differs from this run's in \['audio_pool'\]"):
        run_train(tmp_path / "other", probe_shards, "train.steps=1", f"train.init_from={listened}", "model.audio_pool=2")


def test_label_loss_trains_the_heads_and_the_next_stage_goes_on_with_them(tmp_path):
    records = probe_records(40, audio_dim=16, seed=5)
    for index, record in enumerate(records):  # the probe clips, given the labels the heads read
        record.meta["labels"] |= {"key": ("C major", "A minor", "F# minor")[index % 3], "tempo": 80.0 + 20 * (index % 4),
                                  "meter": ("3/4", "6/8")[index % 2], "instruments": ["Flute", "Drums"][: 1 + index % 2]}
    write_shards(records, tmp_path / "shards" / "train")
    heads = "model.label_loss_weight=1.0"
    run_train(tmp_path / "built", tmp_path / "shards", "train.steps=0", heads)
    trained = run_train(tmp_path / "listen", tmp_path / "shards", "train.steps=3", heads, "data.pack_examples=true")
    plain = run_train(tmp_path / "plain", tmp_path / "shards", "train.steps=3", "data.pack_examples=true")
    assert trained[0]["loss"] > plain[0]["loss"] + 1.0  # the heads' losses (key alone: about ln 24) are added
    built = load_file(tmp_path / "built" / "checkpoints" / "step-000000" / "label_heads.safetensors")
    listened = tmp_path / "listen" / "checkpoints" / "step-000003"
    after = load_file(listened / "label_heads.safetensors")
    assert built.keys() == after.keys() and all(not torch.equal(built[k], after[k]) for k in built)
    assert not (tmp_path / "plain" / "checkpoints" / "step-000003" / "label_heads.safetensors").exists()
    run_train(tmp_path / "next", tmp_path / "shards", "train.steps=0", heads, f"train.init_from={listened}")
    carried = load_file(tmp_path / "next" / "checkpoints" / "step-000000" / "label_heads.safetensors")
    assert all(torch.equal(after[k], carried[k]) for k in after)


def test_packed_batches_train_like_padded_batches(tmp_path, probe_shards):
    """data.pack_examples reaches the model: the same steps, the same losses (the packing itself, with
    several examples per row, is checked against padded rows in tests/test_model.py)."""
    padded = run_train(tmp_path / "padded", probe_shards, "train.steps=4", "train.save_every=0")
    packed = run_train(tmp_path / "packed", probe_shards, "train.steps=4", "train.save_every=0", "data.pack_examples=true")
    for a, b in zip(padded, packed, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5), (a, b)


@pytest.mark.slow
@pytest.mark.parametrize("length_groups", [0, 4])  # resuming replays a length-grouped stream exactly too
def test_train_checkpoint_resume_and_answer(tmp_path, probe_shards, length_groups):
    grouping = f"data.length_group_batches={length_groups}"
    full = run_train(tmp_path / "full", probe_shards, "train.steps=6", "train.save_every=3", "train.keep_checkpoints=0",
                     grouping)
    assert [row["step"] for row in full] == [1, 2, 3, 4, 5, 6]
    assert all(row["tokens_per_s"] > 0 and row["lr"] > 0 for row in full)
    checkpoint = tmp_path / "full" / "checkpoints" / "step-000006"
    assert {p.name for p in checkpoint.iterdir()} == {
        "config.json", "projector.safetensors", "new_token_embeddings.safetensors", "lm", "tokenizer",
        "trainer_state.json", "optimizer.pt", "rng.pt"}
    assert json.loads((checkpoint / "trainer_state.json").read_text())["step"] == 6
    assert not list((tmp_path / "full" / "checkpoints").glob(".tmp-*"))
    with pytest.raises(ValueError, match="at step 6, past train.steps=4"):  # a shorter run in the same out_dir
        run_train(tmp_path / "full", probe_shards, "train.steps=4")
    # Another model in the same out_dir: resuming would write checkpoints whose config names a model they do not hold.
    with pytest.raises(ValueError, match=r"resuming from .*step-000006: its model config differs from this run's in "
                                         r"\['audio_pool'\]; train that model in another train.out_dir"):
        run_train(tmp_path / "full", probe_shards, "train.steps=8", "model.audio_pool=2")

    # Interrupted after step 3: keep only that checkpoint and the log up to it, then re-run the same command.
    shutil.copytree(tmp_path / "full", tmp_path / "resumed")
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "step-000006")
    log = tmp_path / "resumed" / "log.jsonl"
    log.write_text("".join(line + "\n" for line in log.read_text().splitlines()[:3]))
    resumed = run_train(tmp_path / "resumed", probe_shards, "train.steps=6", "train.save_every=3", grouping)
    # Exactly, not approximately: at one thread (tests/conftest.py) the CPU kernels round alike in both runs.
    # At two they did not now and then (1e-7 apart at step 6 in 2 of 10 runs).
    assert [row["loss"] for row in resumed] == [row["loss"] for row in full]

    model = LLark.from_pretrained(tmp_path / "resumed" / "checkpoints" / "step-000006")
    answer = Answerer(model).answer(["Which instrument is loudest in this clip?"],
                                    [torch.randn(12, 16).numpy()])[0]
    assert isinstance(answer, str) and answer


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["fsdp2", "ddp"])
def test_two_processes_match_one_process(tmp_path, probe_shards, strategy):
    """2 ranks x batch 4 (gloo) vs 1 process x 2 micro-batches of 4 (2 loader workers): same data, same losses."""
    common = ["train.steps=5", "train.batch_size=4", "train.save_every=0"]
    single = run_train(tmp_path / "single", probe_shards, *common, "train.grad_accum=2", "data.num_workers=2")
    sharded = torchrun(tmp_path / strategy, probe_shards, *common, f"train.strategy={strategy}", "train.grad_accum=1")
    for a, b in zip(single, sharded, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5), (a, b)
    # The sharded run gathered and wrote a full checkpoint that matches the single-process one.
    one = load_file(tmp_path / "single" / "checkpoints" / "step-000005" / "projector.safetensors")
    two = load_file(tmp_path / strategy / "checkpoints" / "step-000005" / "projector.safetensors")
    for key in one:
        torch.testing.assert_close(one[key], two[key], rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_lora_trains_and_saves_only_adapter_and_projector(tmp_path, probe_shards):
    from transformers import LlamaConfig, LlamaForCausalLM
    from llark.data import iter_qa_texts
    from llark.tokenizer import train_bpe_tokenizer

    base_dir = tmp_path / "base-lm"  # stands in for a local Llama-2 directory
    tokenizer = train_bpe_tokenizer(list(iter_qa_texts([f"{probe_shards}/train-*.tar"], 1000)), vocab_size=320)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=4, intermediate_size=172)).save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    log = run_train(tmp_path / "lora", probe_shards, "train.steps=60", "train.save_every=0",
                    "model.lm.source=pretrained", f"model.lm.path={base_dir}", "model.lm.tokenizer=pretrained",
                    "model.trainable.lm=lora", "model.trainable.lm_embeddings=false", "optim.lr=1e-2")
    assert log[-1]["loss"] < 0.9 * log[0]["loss"], (log[0], log[-1])  # a frozen random base learns slowly
    checkpoint = tmp_path / "lora" / "checkpoints" / "step-000060"
    assert not (checkpoint / "lm").exists()
    adapter = load_file(checkpoint / "lm_adapter.safetensors")
    assert adapter and all("lora_A" in k or "lora_B" in k for k in adapter)
    assert any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)  # trained away from zero init
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["model"]["lm"]["path"] == str(base_dir)
    base = load_file(base_dir / "model.safetensors")
    loaded = LLark.from_pretrained(checkpoint)
    torch.testing.assert_close(loaded.base_lm().model.layers[0].mlp.up_proj.weight, base["model.layers.0.mlp.up_proj.weight"])


@pytest.mark.slow
def test_the_audio_path_is_wired(trained_probe_checkpoint, tmp_path):
    """Loudest-channel probe: >= 95 % on held-out clips with their features, ~chance when shuffled."""
    import evaluate

    data, checkpoint = trained_probe_checkpoint
    evaluate.main(["--checkpoint", str(checkpoint), "--manifest", str(data / "test.jsonl"), "--out", str(tmp_path),
                   "--ablations", "zeroed,shuffled"])
    task = json.loads((tmp_path / "results.json").read_text())["tasks"]["contains"]
    accuracy = {system: metrics["accuracy"]["value"] for system, metrics in task["systems"].items()}
    assert task["n"] == 200
    assert accuracy["llark"] >= 0.95
    assert accuracy["llark, features shuffled"] <= 0.30  # chance is 1/8
    assert accuracy["llark, features zeroed"] <= 0.30
    assert "| llark, features shuffled |" in (tmp_path / "report.md").read_text()


@pytest.mark.slow
def test_activation_checkpointing_gives_the_same_losses(tmp_path, probe_shards):
    plain = run_train(tmp_path / "plain", probe_shards, "train.steps=3", "train.save_every=0")
    checkpointed = run_train(tmp_path / "ckpt", probe_shards, "train.steps=3", "train.save_every=0",
                             "train.activation_checkpointing=true")
    assert [r["loss"] for r in checkpointed] == pytest.approx([r["loss"] for r in plain], rel=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which(os.environ.get("CXX") or "g++") is None, reason="torch.compile needs a C++ compiler on CPU")
def test_compiled_layers_train_like_eager_ones_and_save_the_same_checkpoint(tmp_path, probe_shards, capsys):
    eager = run_train(tmp_path / "eager", probe_shards, "train.steps=4", "data.pack_examples=true")
    assert "decoder layers compiled" not in capsys.readouterr().out
    compiled = run_train(tmp_path / "compiled", probe_shards, "train.steps=4", "data.pack_examples=true",
                         "train.compile=true")
    assert "decoder layers compiled" in capsys.readouterr().out
    assert [r["loss"] for r in compiled] == pytest.approx([r["loss"] for r in eager], rel=1e-3)
    weights = {name: LLark.from_pretrained(tmp_path / name / "checkpoints" / "step-000004").state_dict()
               for name in ("eager", "compiled")}
    assert list(weights["compiled"]) == list(weights["eager"])  # compiled in place: no wrapper in the names
    for name, tensor in weights["eager"].items():
        assert torch.allclose(weights["compiled"][name], tensor, rtol=1e-3, atol=1e-5), name


@pytest.mark.slow
@pytest.mark.skipif(shutil.which(os.environ.get("CXX") or "g++") is None, reason="torch.compile needs a C++ compiler on CPU")
def test_compiled_layers_compile_once_for_any_row_count():
    """A first batch of head_dim rows must not tie the graph to that row count (duck sizing would: the
    rotary tables are [rows, length, head_dim]), or the next batch of other rows compiles the layers again."""
    from torch._dynamo.utils import counters

    model = debug_model()
    head_dim = model.base_lm().config.head_dim
    torch._dynamo.reset()  # no graph of another test's layers
    assert train.compile_decoder_layers(model, DistEnv())
    counters.clear()
    with torch.no_grad():
        for rows in (head_dim, 5, 3):
            model.base_lm()(input_ids=torch.randint(0, model.ids.base_vocab_size, (rows, 12)), use_cache=False)  # as in training
    assert counters["stats"]["unique_graphs"] == 1


def test_compile_without_a_cpp_compiler_says_so_and_trains_eagerly(tmp_path, probe_shards, monkeypatch, capsys):
    model = debug_model()
    monkeypatch.setenv("CXX", "no-such-compiler-for-llark")
    assert not train.compile_decoder_layers(model, DistEnv())
    assert "no C++ compiler ('no-such-compiler-for-llark' is not on PATH)" in capsys.readouterr().out
    assert not any(getattr(layer, "_compiled_call_impl", None) for layer in model.base_lm().get_decoder().layers)
    log = run_train(tmp_path / "run", probe_shards, "train.steps=2", "train.save_every=0", "train.compile=true")
    assert len(log) == 2 and "training without compiling" in capsys.readouterr().out


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    from llark.config import load_config

    cfg = load_config(None, ["train.steps=100", "optim.lr=1.0", "optim.warmup_fraction=0.1", "optim.min_lr_fraction=0.1"])
    lrs = [train.lr_at(step, cfg) for step in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] == pytest.approx(0.1, abs=1e-3)


def test_llark_command_mirrors_the_entry_points():
    for command in ("train", "evaluate", "ask"):
        result = subprocess.run([sys.executable, "-m", "llark.cli", command, "--help"], capture_output=True, text=True,
                                cwd=REPO, timeout=120)
        assert result.returncode == 0 and "usage" in result.stdout.lower(), result.stderr
    assert "--manifest" in result.stdout
    result = subprocess.run([sys.executable, "-m", "llark.cli"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2 and "llark ask" in result.stderr


def test_a_rank_without_a_gpu_is_named(monkeypatch):
    # Two processes on a one-GPU machine: rank 1 would die inside CUDA with a bare "invalid device ordinal".
    from llark.distributed import init_distributed

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(RuntimeError, match="LOCAL_RANK 1 has no GPU: 1 visible"):
        init_distributed()


AMD_EPYC_FLAGS = "fpu vme sse2 avx2 avx512f avx512_bf16 avx512_vnni"
INTEL_XEON_FLAGS = "fpu vme sse2 avx2 avx512f avx512_vnni avx512_vbmi2"  # AVX-512, but bf16 only emulated


def cpuinfo(*flag_lines: str) -> str:
    return "".join(f"processor\t: {i}\nmodel name\t: a CPU\nflags\t\t: {flags}\n\n" for i, flags in enumerate(flag_lines))


def test_precision_auto_takes_bf16_only_where_the_hardware_computes_it():
    from llark.distributed import cpu_computes_bf16, uses_bf16

    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert cpu_computes_bf16(cpuinfo(AMD_EPYC_FLAGS, AMD_EPYC_FLAGS))
    assert cpu_computes_bf16(cpuinfo("fpu avx512f amx_bf16 amx_tile"))
    assert not cpu_computes_bf16(cpuinfo(INTEL_XEON_FLAGS, INTEL_XEON_FLAGS))
    assert not cpu_computes_bf16("processor\t: 0\nFeatures\t: fp asimd\n")  # no x86 flags line: fp32
    assert not cpu_computes_bf16("model name\t: avx512_bf16 in a name is not a flag\n")
    assert uses_bf16("auto", cpu, cpuinfo(AMD_EPYC_FLAGS)) and not uses_bf16("auto", cpu, cpuinfo(INTEL_XEON_FLAGS))
    assert uses_bf16("auto", gpu, cpuinfo(INTEL_XEON_FLAGS))
    assert uses_bf16("bf16", cpu, cpuinfo(INTEL_XEON_FLAGS)) and not uses_bf16("fp32", cpu, cpuinfo(AMD_EPYC_FLAGS))
    with pytest.raises(ValueError, match="unknown train.precision 'fp16'"):
        uses_bf16("fp16", cpu, cpuinfo(AMD_EPYC_FLAGS))


def test_the_shards_encoder_must_be_the_configs(tmp_path):
    # Features recorded before a setting existed match a config that leaves it out (both mean its default,
    # as configs/tiny.yaml leaves out clip_tempo_bins); another value is refused, naming the setting.
    from llark.config import Config
    from llark.encoders.mir import MIRFeatureEncoder

    settings = MIRFeatureEncoder(rhythm=True).settings()
    record = {"name": "mir", "settings": settings, "dim": 342, "frame_rate": 25.0}
    (tmp_path / "manifest.json").write_text(json.dumps({"encoder": record}))
    shards = [str(tmp_path / "train-000000.tar")]
    cfg = Config()
    cfg.encoder.name, cfg.model.audio_dim = "mir", 342
    cfg.encoder.settings = {key: value for key, value in settings.items() if key != "clip_tempo_bins"}
    train.check_encoder(cfg, shards)
    cfg.encoder.settings = {**settings, "clip_tempo_bins": 156}
    with pytest.raises(ValueError, match=r"manifest.json: features come from encoder mir .*changed: clip_tempo_bins"):
        train.check_encoder(cfg, shards)
    cfg.encoder.settings, cfg.model.audio_dim = settings, 402
    with pytest.raises(ValueError, match="features have 342 dims, model.audio_dim is 402"):
        train.check_encoder(cfg, shards)
    # the same settings with the beat level, encoded with another fit of it than this code ships
    levelled = MIRFeatureEncoder(rhythm=True, beat_level=True).settings()
    cfg.encoder.settings, cfg.model.audio_dim = levelled, 342
    (tmp_path / "manifest.json").write_text(json.dumps({"encoder": {**record, "settings": levelled,
                                                                     "fitted": MIRFeatureEncoder.fitted(levelled)}}))
    assert train.check_encoder(cfg, shards) == MIRFeatureEncoder.fitted(levelled)  # this fit: accepted, kept
    (tmp_path / "manifest.json").write_text(json.dumps({"encoder": {**record, "settings": levelled,
                                                                     "fitted": {"beat_level": "0123456789abcdef"}}}))
    with pytest.raises(ValueError, match=r"manifest.json: features come from the fitted models \{'beat_level': "
                                         r"'0123456789abcdef'\}, but this code's encoder uses "
                                         r"\{'beat_level': '[0-9a-f]{16}'\}"):
        train.check_encoder(cfg, shards)


def test_gains_without_standardization_are_refused(tmp_path, probe_shards):
    with pytest.raises(ValueError, match="audio_group_gains scales standardized channels"):
        run_train(tmp_path / "run", probe_shards, "train.steps=1", "model.audio_group_gains.chroma=3.0")
