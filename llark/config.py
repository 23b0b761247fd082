"""Typed configuration in three layers: dataclass defaults -> YAML file -> dotted CLI overrides.

    cfg = load_config("configs/debug.yaml", ["train.steps=20", "optim.lr=1e-4"])

Every field lives in one dataclass below; the whole `Config` is written into each checkpoint's
`config.json`, so a checkpoint says exactly how it was made.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class LMConfig:
    """The causal language model: a random Llama built from the sizes below, or a local HF directory."""

    source: str = "scratch"  # "scratch": random Llama of the sizes below | "pretrained": load `path`
    path: str = ""  # local Hugging Face directory (source=pretrained); nothing is downloaded
    tokenizer: str = "bpe"  # "bpe": small byte-level BPE trained on the data | "pretrained": from `path`
    bpe_vocab_size: int = 512
    # BPE only: every space its own token, so a word is the same token after a space as after "K:" or a
    # quote (the prompt's "Key D" and the tune's "K:D" share the "D"; otherwise " D" and "D" are two
    # tokens). Costs ~20 % more tokens. abc-tiny uses it; that it is needed is not shown (README).
    bpe_isolate_spaces: bool = False
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 4
    intermediate_size: int = 172
    max_position_embeddings: int = 1024
    dtype: str = "float32"  # dtype the LM weights are loaded in (bfloat16 for 7B on GPU)
    # How attention is computed (Hugging Face's attn_implementation): "sdpa", PyTorch's fused kernels (flash
    # attention on GPU), or "eager", plain matmuls and a softmax. The same function, other kernels: on CPU the
    # flash kernel's backward pass is slow on short rows, and eager trains configs/tiny.yaml 1.2-1.7x faster.
    attention: str = "sdpa"


@dataclass
class LoraConfig:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


@dataclass
class TrainableConfig:
    """What trains, per component. Nothing else is inferred from other flags."""

    projector: bool = True
    lm: str = "none"  # "none" | "full" (transformer blocks + final norm) | "lora" (peft adapters)
    lm_embeddings: bool = False  # the LM's own input embedding matrix and output head
    new_token_embeddings: bool = True  # embeddings of <audio_start>, <audio_end>, added <pad>


@dataclass
class ModelConfig:
    lm: LMConfig = field(default_factory=LMConfig)
    audio_dim: int = 64  # D of the encoder features [T, D]
    projector: str = "linear"  # "linear" (LLark) | "mlp2" (Linear-GELU-Linear) | "grouped_mlp2" (below)
    # For "grouped_mlp2": families of the encoder's channel groups (e.g. [[log_mel, timbre], [chroma], [onset, rms,
    # rhythm, clip_tempogram]]), each read by its own Linear-GELU-Linear; the audio token is the sum of their outputs.
    projector_families: list[list[str]] = field(default_factory=list)
    standardize_audio: bool = False  # per-channel mean/std of the training features applied before the projector
    # With standardize_audio: the standardized channels of these encoder groups (names: the encoder's groups(),
    # e.g. {chroma: 3.0}) multiplied by the gain, so a narrow group is not drowned among wide ones (README).
    audio_group_gains: dict[str, float] = field(default_factory=dict)
    # For "grouped_mlp2", in training only: each example's audio tokens leave out each family's output with this
    # probability (the others scaled by 1 / (1 - p), as dropout does), drawn once per example and family, so no
    # reading can rest on one family alone (modality dropout; 0: off). README, "The demo".
    projector_family_dropout: float = 0.0
    template: str = "llama2"  # conversation template name, see llark/templates.py
    system_prompt: str = ""  # "" keeps the template's default system sentence
    max_length: int = 512  # tokens per example, audio placeholders included; longer examples are cut
    audio_pool: int = 1  # average every k encoder frames into one audio token (1: 25 per second; LLark ~10 Hz)
    # Label loss (not in LLark; 0: off): heads on one layer's hidden states at the audio positions,
    # averaged per example, predict the clip's key, tempo class, meter and instruments (label_targets.py).
    # Every example then trains all four readings at once, whatever its question; the heads are unused
    # when answering. The loss added is this weight times the sum of the four heads' losses, each averaged
    # over the examples: cross-entropy for key, tempo and meter; for instruments, the binary cross-entropy
    # summed over the classes (the whole set's negative log-likelihood) times label_instruments_weight.
    label_loss_weight: float = 0.0
    label_instruments_weight: float = 1.0
    # The layer the heads read: 0 the projector's output (the audio tokens the LM gets), 1..L a decoder
    # layer's output, -1 the middle decoder layer.
    label_layer: int = -1
    trainable: TrainableConfig = field(default_factory=TrainableConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass
class EncoderConfig:
    """Which encoder produced the features; `llark ask --audio` encodes new audio the same way."""

    name: str = "none"  # "none": features must be given as .npy files
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    train_shards: list[str] = field(default_factory=list)  # tar paths or globs
    val_shards: list[str] = field(default_factory=list)
    audio_position: str = "random"  # "random" (LLark: before or after the question, p=1/2) | "before" | "after"
    shuffle_buffer: int = 256  # examples; 0 keeps shard order
    # Length grouping: sort each pool of this many batches into buckets of `length_bucket_tokens` token
    # counts, cut it into batches and shuffle their order, so a batch pads to its own length and not to a
    # caption's (0: off). Within a bucket the order stays random: sorted by exact length, a batch would hold
    # one question phrasing and one answer form, and such one-topic steps made training unstable. A batch
    # still holds mostly one family, and the token-mean loss weighs short answers more; the demo leaves
    # grouping off, as 2 of its 3 grouped runs answered worse (README, "Length grouping"); it packs instead.
    length_group_batches: int = 0
    length_bucket_tokens: int = 32
    # Packing: the examples of a batch share rows up to its longest example's length, each attending only
    # to itself (position ids restart per example). The same examples and the same loss as padded rows,
    # on fewer positions: no effect on what is learned, unlike length grouping.
    pack_examples: bool = False
    num_workers: int = 0
    bpe_training_examples: int = 20000  # examples read to train the BPE tokenizer (tokenizer=bpe)
    # Which Q/A pairs of the shards train (empty: all). A curriculum's first stage, e.g. families=[mir_qa]
    # topics=[key,mode,chords]: a pair is kept when its family and its topic (MIR pairs only) are listed.
    families: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    warmup_fraction: float = 0.03
    min_lr_fraction: float = 0.0  # cosine decays to lr * min_lr_fraction
    grad_clip: float = 1.0  # 0 disables clipping


@dataclass
class TrainConfig:
    out_dir: str = "runs/debug"
    steps: int = 100
    batch_size: int = 8  # per process, per micro-batch
    grad_accum: int = 1
    seed: int = 0
    strategy: str = "ddp"  # "ddp" | "fsdp2" (torch.distributed.fsdp.fully_shard); ignored with one process
    # "auto": bf16 autocast on a GPU and on a CPU with bf16 in hardware (avx512_bf16 or amx_bf16), fp32 elsewhere,
    # where bf16 is emulated and 3x slower (llark.distributed.uses_bf16) | "fp32" | "bf16"
    precision: str = "auto"
    activation_checkpointing: bool = False
    # torch.compile (inductor) each decoder layer in place, for dynamic shapes (packed rows vary in count and
    # length): 1.18x the tokens/s of configs/tiny.yaml on a 2-core CPU, for ~20 s of compiling at the first
    # step (cached on disk for the next run). On CPU it needs a C++ compiler (g++, or $CXX); without one,
    # train.py says so and trains eagerly.
    compile: bool = False
    label_only_logits: bool = True  # compute the LM head only where labels exist
    # The answer loss: the mean over all answer tokens of a batch (False, LLark), or over each example's
    # answer tokens and then over the examples (True), so that a long caption counts as much as "3/4."
    loss_per_example: bool = False
    log_every: int = 10
    save_every: int = 0  # 0: only at the end
    keep_checkpoints: int = 2  # newest step directories kept (0 keeps all)
    resume: str = "auto"  # "auto": newest checkpoint in out_dir, if any | "none" | a checkpoint path
    # Start from this checkpoint's weights and tokenizer with a fresh optimizer and schedule (a curriculum's
    # next stage); "" builds a new model. Resuming a run of this out_dir takes precedence.
    init_from: str = ""
    progress: bool = True


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


class ConfigError(ValueError):
    """A config file or override names an unknown field or gives a value of the wrong type."""


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """Check and convert a YAML/CLI value to the annotated type of a dataclass field."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _build(annotation, value, where)
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        if isinstance(value, str):  # CLI: a,b,c
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_convert(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if annotation is Any:
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if annotation in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            converted = annotation(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}") from None
        if annotation is int and isinstance(value, float) and value != converted:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return converted
    if annotation is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{where}: unsupported field type {annotation!r}")


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown field(s) {unknown}; known: {sorted(known)}")
    kwargs = {name: _convert(v, hints[name], f"{where}.{name}" if where else name) for name, v in values.items()}
    return cls(**kwargs)


def _set_dotted(tree: dict[str, Any], dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {key} is not a section")
    node[keys[-1]] = yaml.safe_load(raw) if raw != "" else ""


def config_to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def config_from_dict(values: dict[str, Any], where: str = "") -> Config:
    return _build(Config, values, where)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then the YAML file (if any), then `section.field=value` overrides, type-checked."""
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        with path.open() as f:
            loaded = yaml.safe_load(f) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a YAML mapping at the top level")
        tree = loaded
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected section.field=value")
        dotted, raw = item.split("=", 1)
        _set_dotted(tree, dotted.strip(), raw.strip())
    try:
        return config_from_dict(tree)
    except ConfigError as err:
        raise ConfigError(f"{path or 'defaults'}: {err}") from None
