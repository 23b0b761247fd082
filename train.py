"""Train LLark: projector (+ LM, LoRA or new-token embeddings, as the config says) on shards.

    python train.py --config configs/debug.yaml                        # one CPU process
    python train.py --config configs/tiny.yaml train.steps=2000 optim.lr=5e-4
    torchrun --nproc_per_node 2 train.py --config configs/debug.yaml train.strategy=fsdp2
    torchrun --nnodes 4 --nproc_per_node 8 ... train.py --config configs/llark-7b.yaml   # GPU cluster

Re-running the same command resumes from the newest checkpoint in train.out_dir (train.resume=auto);
a second process training into the same train.out_dir at the same time is refused.
`train.steps=0` saves the model as it is built as step-000000 (a pretrained LM used without training,
e.g. configs/chatmusician-7b.yaml, for evaluate.py and llark ask).
Writes out_dir/log.jsonl (step, loss, lr, tokens/s) and out_dir/checkpoints/step-NNNNNN/.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import shutil
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.fx.experimental._config  # use_duck_shape (compile_decoder_layers)
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from llark.checkpoint import (
    atomic_checkpoint_dir,
    claim_run_dir,
    load_training_state,
    prune_checkpoints,
    resolve_resume,
    save_training_state,
)
from llark.config import Config, ModelConfig, load_config
from llark.data import ExampleBuilder, ShardDataset, collate, expand_shard_patterns, feature_statistics, iter_qa_texts
from llark.distributed import DistEnv, barrier, init_distributed, mean_across_ranks, shutdown, uses_bf16
from llark.encoders import changed_settings, channel_gains, fitted_models
from llark.model import LLark, build_lm, projector_channel_families
from llark.templates import get_template
from llark.tokenizer import add_llark_tokens, load_pretrained_tokenizer, train_bpe_tokenizer


def lr_at(step: int, cfg: Config) -> float:
    """Linear warmup over warmup_fraction of the steps, then cosine down to lr * min_lr_fraction."""
    warmup = max(1, round(cfg.optim.warmup_fraction * cfg.train.steps))
    if step < warmup:
        return cfg.optim.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, cfg.train.steps - warmup)
    floor = cfg.optim.min_lr_fraction
    return cfg.optim.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def build_tokenizer(cfg: Config):
    if cfg.model.lm.tokenizer == "pretrained":
        tokenizer = load_pretrained_tokenizer(cfg.model.lm.path)
    elif cfg.model.lm.tokenizer == "bpe":
        template = get_template(cfg.model.template)
        fixed_text = [segment.content for segment in template.render("?", "!") if isinstance(segment.content, str)]
        texts = iter_qa_texts(cfg.data.train_shards, cfg.data.bpe_training_examples)
        tokenizer = train_bpe_tokenizer([*fixed_text, *texts], cfg.model.lm.bpe_vocab_size,
                                        cfg.model.lm.bpe_isolate_spaces)
    else:
        raise ValueError(f"unknown model.lm.tokenizer {cfg.model.lm.tokenizer!r}; use 'bpe' or 'pretrained'")
    return tokenizer, add_llark_tokens(tokenizer)


def audio_gains(cfg: Config) -> np.ndarray:
    """model.audio_group_gains as one gain per channel, checked before any data is read."""
    if cfg.model.audio_group_gains and not cfg.model.standardize_audio:
        raise ValueError("model.audio_group_gains scales standardized channels: set model.standardize_audio=true")
    return channel_gains(cfg.encoder, cfg.model.audio_group_gains, cfg.model.audio_dim)


def check_encoder(cfg: Config, shard_paths: list[str]) -> dict[str, str] | None:
    """The checkpoint will encode new audio with cfg.encoder: it must be what made the shards' features.
    Returns the fitted models those features were made with (the record's `fitted`, which the checkpoints
    keep), or None where the shards carry no encoder record."""
    manifest = Path(shard_paths[0]).parent / "manifest.json"
    if not manifest.is_file():
        return None  # shards written without make_shards.py (tests, probes) carry no encoder record
    record = json.loads(manifest.read_text()).get("encoder")
    if record and record["name"] != cfg.encoder.name:
        raise ValueError(f"{manifest}: features come from encoder {record['name']}, but the config says "
                         f"{cfg.encoder.name}; set encoder.* to match")
    changed = changed_settings(cfg.encoder.name, record["settings"], cfg.encoder.settings) if record else []
    if changed:
        raise ValueError(f"{manifest}: features come from encoder {record['name']} {record['settings']}, but the "
                         f"config says {cfg.encoder.settings} (changed: {', '.join(changed)}); set encoder.* to match")
    if record and record["dim"] != cfg.model.audio_dim:
        raise ValueError(f"{manifest}: features have {record['dim']} dims, model.audio_dim is {cfg.model.audio_dim}")
    if not record:
        return None
    fitted = fitted_models(cfg.encoder.name, cfg.encoder.settings)
    if record.get("fitted", {}) != fitted:  # a refit (beat_level.json) with the settings unchanged
        made_with = record.get("fitted") or "(none recorded)"
        raise ValueError(f"{manifest}: features come from the fitted models {made_with}, "
                         f"but this code's encoder uses {fitted}: a checkpoint trained on them would hear other "
                         "features when it encodes audio; encode the clips again into a new folder and make the "
                         "shards from it")
    return fitted


def wrap_for_parallelism(model: LLark, cfg: Config, env: DistEnv, bf16: bool) -> torch.nn.Module:
    if not env.is_distributed:
        return model
    if cfg.train.strategy == "fsdp2":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = init_device_mesh(env.device.type, (env.world_size,))
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if bf16 else None, reduce_dtype=torch.float32)
        for layer in model.base_lm().get_decoder().layers:  # one all-gather per transformer block
            fully_shard(layer, mesh=mesh, mp_policy=policy)
        fully_shard(model, mesh=mesh, mp_policy=policy)
        return model
    if cfg.train.strategy == "ddp":
        return DistributedDataParallel(model, device_ids=[env.local_rank] if env.device.type == "cuda" else None)
    raise ValueError(f"unknown train.strategy {cfg.train.strategy!r}; use 'ddp' or 'fsdp2'")


def compile_decoder_layers(model: LLark, env: DistEnv) -> bool:
    """train.compile: torch.compile each decoder layer in place (nn.Module.compile), with dynamic shapes,
    since packed batches vary in rows and length. In place, the parameter names (checkpoints) stay as
    they are and the modules DDP or FSDP2 wrap are the same. The layers are alike, so one graph serves
    them all: 19 s of compiling for the tiny config against 38 s for the whole decoder at once
    (benchmarks/train_step.py --compare compile). Returns whether it compiled: inductor's CPU code needs
    a C++ compiler, and without one training goes on eagerly."""
    if env.device.type == "cpu":
        compiler = os.environ.get("CXX") or "g++"  # what inductor looks for (torch._inductor.config.cpp.cxx)
        if shutil.which(compiler) is None:
            if env.is_main:
                print(f"[train] train.compile: no C++ compiler ({compiler!r} is not on PATH), which torch.compile "
                      "needs on CPU; training without compiling (install g++ or set CXX, or pass "
                      "train.compile=false)", flush=True)
            return False
    # Dynamic shapes give input sizes that are equal one symbol ("duck sizing"). A layer reads the rotary
    # tables as [rows, length, head_dim], so a first batch of head_dim rows (32 in configs/tiny.yaml, which
    # packs 32 examples) ties the row count to head_dim: the graph holds for 32 rows only, and the first
    # batch of another count compiles the layers again, 22 s on a 2-core Zen 3 (the guard failure names
    # this setting). The setting is the process's, read when a graph is traced.
    torch.fx.experimental._config.use_duck_shape = False
    for layer in model.base_lm().get_decoder().layers:
        layer.compile(dynamic=True)
    if env.is_main:
        print("[train] train.compile: decoder layers compiled by torch.compile; the first step compiles them "
              "(tens of seconds, then cached on disk)", flush=True)
    return True


def check_same_model(built: ModelConfig, wanted: ModelConfig, source: str, remedy: str) -> None:
    """A checkpoint trained on (train.init_from, or a resumed run's newest) is the model as it is: its `model`
    section must be this config's, or the checkpoints written next would describe another model."""
    built_fields, wanted_fields = dataclasses.asdict(built), dataclasses.asdict(wanted)
    differing = sorted(name for name in wanted_fields if built_fields[name] != wanted_fields[name])
    if differing:
        raise ValueError(f"{source}: its model config differs from this run's in {differing}; {remedy}")


def gradient_sync(model: torch.nn.Module, sync: bool):
    """Skip the gradient all-reduce on all but the last micro-batch of an accumulation."""
    if isinstance(model, DistributedDataParallel):
        return contextlib.nullcontext() if sync else model.no_sync()
    if isinstance(model, FSDPModule):
        model.set_requires_gradient_sync(sync)
    return contextlib.nullcontext()


def save_checkpoint(model, raw_model: LLark, optimizer, tokenizer, cfg: Config, env: DistEnv, state: dict,
                    encoder_fitted: dict[str, str] | None) -> None:
    # Every rank takes part in gathering full (unsharded) state dicts; rank 0 writes them.
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state = get_model_state_dict(model, options=options)
    optimizer_state = get_optimizer_state_dict(model, optimizer, options=options)
    if env.is_main:
        with atomic_checkpoint_dir(cfg.train.out_dir, state["step"]) as directory:
            raw_model.save_pretrained(directory, cfg, tokenizer, state_dict=model_state, encoder_fitted=encoder_fitted)
            save_training_state(directory, state, optimizer_state, torch.get_rng_state())
        prune_checkpoints(cfg.train.out_dir, cfg.train.keep_checkpoints)
    barrier(env)


def main(argv: list[str] | None = None) -> None:
    # --- args -> config ------------------------------------------------------------------------
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML file under configs/")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.steps=10 optim.lr=1e-4")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    if not cfg.data.train_shards:
        parser.error("data.train_shards is empty: point it at webdataset shards (see preprocessing/)")
    gain = audio_gains(cfg)
    families = projector_channel_families(cfg)  # checked before any data is read, as the gains

    # --- distributed init and seeds ------------------------------------------------------------
    env = init_distributed()
    torch.manual_seed(cfg.train.seed)
    out_dir = Path(cfg.train.out_dir)
    # Held until training ends, before resuming: a second training into out_dir would resume from the same
    # checkpoint and interleave its steps with this one's (claim_run_dir).
    run_lock = claim_run_dir(out_dir) if env.is_main else None
    resume_from = resolve_resume(cfg.train.resume, out_dir)

    # --- tokenizer and model -------------------------------------------------------------------
    if resume_from is not None:
        raw_model = LLark.from_pretrained(resume_from)
        check_same_model(raw_model.run_config.model, cfg.model, f"resuming from {resume_from}",
                         "train that model in another train.out_dir, or resume with the config it was trained with")
        tokenizer, ids = raw_model.tokenizer, raw_model.ids
    elif cfg.train.init_from:  # a curriculum's next stage: the weights go on, the optimizer and schedule restart
        raw_model = LLark.from_pretrained(cfg.train.init_from)
        check_same_model(raw_model.run_config.model, cfg.model, f"train.init_from={cfg.train.init_from}",
                         "a curriculum stage must keep the model section as it is")
        tokenizer, ids = raw_model.tokenizer, raw_model.ids
    else:
        tokenizer, ids = build_tokenizer(cfg)
        raw_model = LLark(cfg.model, build_lm(cfg.model.lm, ids.base_vocab_size), ids, len(tokenizer), families)
        if cfg.model.standardize_audio:
            mean, std = feature_statistics(cfg.data.train_shards, cfg.data.bpe_training_examples)
            raw_model.projector.set_feature_statistics(*map(torch.from_numpy, (mean, std, gain)))
    if cfg.train.activation_checkpointing:
        raw_model.base_lm().gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    raw_model.to(env.device)
    if cfg.train.compile:
        compile_decoder_layers(raw_model, env)
    bf16 = uses_bf16(cfg.train.precision, env.device)  # autocast below; FSDP2's parameter dtype
    model = wrap_for_parallelism(raw_model, cfg, env, bf16)

    # --- optimizer -----------------------------------------------------------------------------
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("nothing trains: enable model.trainable.projector, .lm, .lm_embeddings or .new_token_embeddings")
    optimizer = torch.optim.AdamW(
        trainable, lr=cfg.optim.lr, betas=(cfg.optim.beta1, cfg.optim.beta2), weight_decay=cfg.optim.weight_decay
    )
    step, micro_batches_done = 0, 0
    if resume_from is not None:
        state, optimizer_state, rng_state = load_training_state(resume_from)
        set_optimizer_state_dict(
            model, optimizer, optimizer_state, options=StateDictOptions(full_state_dict=True)
        )
        step, micro_batches_done = state["step"], state["micro_batches_done"]
        if step > cfg.train.steps:  # resuming would train nothing and leave no step-{train.steps} checkpoint
            raise ValueError(f"{resume_from}: the run in train.out_dir={cfg.train.out_dir} is at step {step}, past "
                             f"train.steps={cfg.train.steps}; use another train.out_dir, or train.resume=none to start "
                             "over in this one")
        if (state["world_size"], state["num_workers"]) != (env.world_size, cfg.data.num_workers):
            print(f"[train] warning: {resume_from} was written with world_size={state['world_size']}, "
                  f"num_workers={state['num_workers']}; the data stream will not continue exactly", flush=True)

    # --- data ----------------------------------------------------------------------------------
    builder = ExampleBuilder(
        tokenizer, ids, get_template(cfg.model.template), cfg.model.max_length,
        audio_position=cfg.data.audio_position, system=cfg.model.system_prompt, audio_pool=cfg.model.audio_pool,
    )
    encoder_fitted = check_encoder(cfg, expand_shard_patterns(cfg.data.train_shards))
    dataset = ShardDataset(cfg.data.train_shards, builder, seed=cfg.train.seed, shuffle_buffer=cfg.data.shuffle_buffer,
                           loop=True, dist=env, families=cfg.data.families, topics=cfg.data.topics,
                           batch_size=cfg.train.batch_size, length_group_batches=cfg.data.length_group_batches,
                           length_bucket_tokens=cfg.data.length_bucket_tokens,
                           label_targets=cfg.model.label_loss_weight > 0)
    loader = DataLoader(
        dataset, batch_size=cfg.train.batch_size, num_workers=cfg.data.num_workers,
        collate_fn=partial(collate, pad_id=ids.pad, pack=cfg.data.pack_examples), generator=torch.Generator().manual_seed(cfg.train.seed),
    )
    batches = iter(loader)
    for _ in range(micro_batches_done):  # resume: replay the stream up to where the checkpoint was taken
        next(batches)
    if resume_from is not None:
        torch.set_rng_state(rng_state)

    # --- loop ----------------------------------------------------------------------------------
    if env.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        print(f"[train] {sum(p.numel() for p in trainable):,} trainable of {sum(p.numel() for p in model.parameters()):,}"
              f" parameters; {env.world_size} process(es) on {env.device}, {'bf16 autocast' if bf16 else 'fp32'}"
              f" (train.precision={cfg.train.precision}); start at step {step}", flush=True)
    log_file = (out_dir / "log.jsonl").open("a") if env.is_main else None
    progress = tqdm(total=cfg.train.steps, initial=step, disable=not (env.is_main and cfg.train.progress),
                    desc="train", dynamic_ncols=True)
    if cfg.train.steps == 0 and step == 0:  # a model used as it is (e.g. ChatMusician's weights) as a checkpoint
        save_checkpoint(model, raw_model, optimizer, tokenizer, cfg, env, {"step": 0, "micro_batches_done": 0,
                                                                          "world_size": env.world_size,
                                                                          "num_workers": cfg.data.num_workers},
                        encoder_fitted)
    model.train()
    while step < cfg.train.steps:
        started = time.perf_counter()
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_loss = torch.zeros((), device=env.device)
        tokens = torch.zeros((), device=env.device)
        for micro in range(cfg.train.grad_accum):
            batch = {k: v.to(env.device) for k, v in next(batches).items()}
            micro_batches_done += 1
            tokens += batch["attention_mask"].sum()
            with gradient_sync(model, sync=micro == cfg.train.grad_accum - 1), torch.autocast(
                env.device.type, dtype=torch.bfloat16, enabled=bf16
            ):
                loss = model(**batch, label_only_logits=cfg.train.label_only_logits,
                             loss_per_example=cfg.train.loss_per_example) / cfg.train.grad_accum
                loss.backward()
            step_loss += loss.detach()
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(trainable, cfg.optim.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1

        step_loss = mean_across_ranks(step_loss, env).item()
        tokens_per_s = mean_across_ranks(tokens, env).item() * env.world_size / (time.perf_counter() - started)
        if env.is_main:
            log_file.write(json.dumps({"step": step, "loss": step_loss, "lr": lr, "tokens_per_s": tokens_per_s}) + "\n")
            log_file.flush()
            progress.update(1)
            if step % cfg.train.log_every == 0 or step == cfg.train.steps:
                progress.set_postfix(loss=f"{step_loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tokens_per_s:,.0f}")
        if (cfg.train.save_every and step % cfg.train.save_every == 0) or step == cfg.train.steps:
            state = {"step": step, "micro_batches_done": micro_batches_done, "world_size": env.world_size,
                     "num_workers": cfg.data.num_workers}
            save_checkpoint(model, raw_model, optimizer, tokenizer, cfg, env, state, encoder_fitted)

    # --- done ----------------------------------------------------------------------------------
    progress.close()
    if env.is_main:
        log_file.close()
        run_lock.close()
        print(f"[train] done: {out_dir / 'checkpoints'}", flush=True)
    shutdown(env)


if __name__ == "__main__":
    main()
