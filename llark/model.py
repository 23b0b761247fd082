"""LLark: frozen-encoder audio features -> a projector trained from scratch -> a causal LM.

Gardner et al., "LLark: A Multimodal Instruction-Following Language Model for Music" (ICML 2024).
The text of an example is `... <audio_start> <audio>xT <audio_end> ... question ... answer`; the T
placeholder embeddings are replaced by the projected encoder frames, T may differ per example.

    model = LLark.from_pretrained("runs/debug/checkpoints/step-000040")
    tokens = model.generate(input_ids, attention_mask, audio, audio_lengths, max_new_tokens=32)
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Callable

import peft
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from llark.config import Config, LMConfig, ModelConfig, config_from_dict, config_to_dict
from llark.label_targets import HEAD_SIZES, MULTI_LABEL_HEADS
from llark.tokenizer import IGNORE_INDEX, SpecialIds, special_ids

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
LABEL_ROWS_MULTIPLE = 64  # the LM head's rows in training, padded to a multiple of this (LLark.forward)


# ---------------------------------------------------------------------------------------------
# The projector: encoder frames [B, T, D] -> LM embedding space [B, T, H]
# ---------------------------------------------------------------------------------------------


class Projector(nn.Module):
    """LLark uses a single Linear(D -> H) trained from scratch; "mlp2" adds a GELU hidden layer;
    "grouped_mlp2" reads each family of channels with its own Linear-GELU-Linear (GroupedMLP).

    With `standardize`, each feature channel is first shifted and scaled by statistics of the
    training features (buffers set once by `set_feature_statistics`, saved with the projector):
    features whose clip-to-clip variation is small next to their offset otherwise all project alike.
    """

    def __init__(self, kind: str, audio_dim: int, hidden_size: int, standardize: bool = False,
                 families: list[list[int]] | None = None, family_dropout: float = 0.0):
        super().__init__()
        if not 0.0 <= family_dropout < 1.0:
            raise ValueError(f"model.projector_family_dropout must be in [0, 1), got {family_dropout}")
        if family_dropout > 0 and kind != "grouped_mlp2":
            raise ValueError(f"model.projector_family_dropout leaves out families of channels: it needs "
                             f"model.projector='grouped_mlp2', not {kind!r}")
        self.standardize = standardize
        if standardize:
            self.register_buffer("feature_mean", torch.zeros(audio_dim))
            self.register_buffer("feature_std", torch.ones(audio_dim))
        if kind == "grouped_mlp2" and families is None:
            raise ValueError("model.projector='grouped_mlp2' needs each family's channels: build LLark with "
                             "channel_families=projector_channel_families(run_config)")
        if kind != "grouped_mlp2" and families is not None:
            raise ValueError(f"model.projector={kind!r} reads every channel at once: channel families are for 'grouped_mlp2'")
        if kind == "linear":
            self.net = nn.Sequential(nn.Linear(audio_dim, hidden_size))
        elif kind == "mlp2":
            self.net = nn.Sequential(nn.Linear(audio_dim, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size))
        elif kind == "grouped_mlp2":
            self.net = GroupedMLP(families, audio_dim, hidden_size, family_dropout)
        else:
            raise ValueError(f"unknown projector {kind!r}; use 'linear', 'mlp2' or 'grouped_mlp2'")

    @property
    def dtype(self) -> torch.dtype:
        return next(self.net.parameters()).dtype

    def set_feature_statistics(self, mean: torch.Tensor, std: torch.Tensor, gain: torch.Tensor | None = None) -> None:
        """`gain` (per channel, default 1) multiplies the standardized channels; it is folded into the
        stored scale (feature_std holds std / gain), so a checkpoint's buffers stay as they were."""
        if not self.standardize:
            raise ValueError("this projector was built without standardize=True")
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std.clamp(min=1e-3) / (1.0 if gain is None else gain))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if self.standardize:
            frames = (frames - self.feature_mean) / self.feature_std
        return self.net(frames)


class GroupedMLP(nn.Module):
    """Σ_f MLP_f(x[channels of family f]): each family of feature channels (model.projector_families, e.g.
    the sound of the frame, its chroma, the clip's rhythm) through its own Linear-GELU-Linear, the outputs summed.

    Why: in one MLP every hidden unit mixes all channels, the frame-level sound (log-mel, timbre) with
    the clip's rhythm descriptors and chroma, and the small model fits the training clips through
    whatever mixture tells them apart; a hidden unit that reads one family generalises better.
    Trained alone with the four label heads on the demo corpus (benchmarks/projector_probe.py, val and
    test, 387 clips, three seeds), families of sound, chroma and rhythm read key 0.88-0.89 against
    0.82-0.85 and instruments micro-F1 0.60-0.62 against 0.52-0.54 for one MLP over all 402 channels,
    meter 0.72-0.75 against 0.70-0.75; trained in full, val meter 0.781 twice against 0.709
    (docs/demo-experiments.md, "How the recipe was chosen", rows 40-42).
    """

    def __init__(self, families: list[list[int]], audio_dim: int, hidden_size: int, family_dropout: float = 0.0):
        super().__init__()
        self.family_dropout = family_dropout
        if sorted(channel for family in families for channel in family) != list(range(audio_dim)):
            raise ValueError(f"the projector's channel families must hold each of the {audio_dim} channels once")
        for index, family in enumerate(families):  # saved, so a checkpoint says which channels its MLPs read
            self.register_buffer(f"channels_{index}", torch.tensor(family, dtype=torch.long))
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(len(family), hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size))
            for family in families
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: [B, T, D] (one example per row) -> [B, T, H]. In training with family_dropout, each family's
        output is left out of each example's tokens with that probability, the kept ones scaled by 1 / (1 - p)."""
        outputs = [mlp(frames.index_select(-1, getattr(self, f"channels_{index}"))) for index, mlp in enumerate(self.mlps)]
        if self.training and self.family_dropout > 0:
            keep = torch.rand(len(outputs), *frames.shape[:-2], 1, 1, device=frames.device) >= self.family_dropout
            scale = keep.to(outputs[0].dtype) / (1.0 - self.family_dropout)
            outputs = [output * family_scale for output, family_scale in zip(outputs, scale)]
        return sum(outputs)


def projector_channel_families(run_config: Config) -> list[list[int]] | None:
    """The grouped projector's channel indices per family, from the groups of the run's encoder (None for
    the other projectors): what LLark(..., channel_families=...) takes."""
    if run_config.model.projector != "grouped_mlp2":
        return None
    from llark.encoders import channel_families  # the encoders import librosa: only for this projector

    return channel_families(run_config.encoder, run_config.model.projector_families, run_config.model.audio_dim)


# ---------------------------------------------------------------------------------------------
# The language model: a random Llama (CPU sizes) or a local pretrained checkpoint (Llama-2-7b-chat)
# ---------------------------------------------------------------------------------------------


def build_lm(cfg: LMConfig, vocab_size: int) -> PreTrainedModel:
    """The base causal LM, before llark's tokens are added (its vocabulary is the tokenizer's base)."""
    dtype = getattr(torch, cfg.dtype)
    if cfg.source == "scratch":
        lm_config = LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            num_key_value_heads=cfg.num_kv_heads,
            intermediate_size=cfg.intermediate_size,
            max_position_embeddings=cfg.max_position_embeddings,
            tie_word_embeddings=False,
            attn_implementation=cfg.attention,
        )
        return LlamaForCausalLM(lm_config).to(dtype)
    if cfg.source == "pretrained":
        path = Path(cfg.path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: no Hugging Face model directory (config.json missing); set model.lm.path")
        return AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=dtype,
                                                    attn_implementation=cfg.attention)
    raise ValueError(f"unknown model.lm.source {cfg.source!r}; use 'scratch' or 'pretrained'")


# ---------------------------------------------------------------------------------------------
# LLark
# ---------------------------------------------------------------------------------------------


def mean_by_owner(values: torch.Tensor, owner: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Means of `values` ([N] or [N, H]) per group: owner[i] is the group of values[i]. Returns the
    [groups] or [groups, H] means (0 for an empty group) and the [groups] counts."""
    sums = values.new_zeros((groups, *values.shape[1:])).index_add_(0, owner, values)
    counts = torch.bincount(owner, minlength=groups)
    scale = counts.clamp(min=1).to(values.dtype)
    return sums / scale.view(-1, *([1] * (values.dim() - 1))), counts


def example_of_positions(input_ids: torch.Tensor, position_ids: torch.Tensor | None) -> torch.Tensor:
    """[B, L] the example each position belongs to: its row, or in packed rows (position_ids restart
    at 0 for each example, data.collate(pack=True)) a count of the examples started so far."""
    if position_ids is None:
        return torch.arange(len(input_ids), device=input_ids.device)[:, None].expand_as(input_ids)
    return ((position_ids == 0).flatten().cumsum(0) - 1).view_as(position_ids)


class LLark(nn.Module):
    def __init__(self, config: ModelConfig, lm: PreTrainedModel, ids: SpecialIds, num_tokens: int,
                 channel_families: list[list[int]] | None = None):
        """`num_tokens` is the tokenizer's full size; ids at or above `ids.base_vocab_size` are llark's.
        `channel_families`: the "grouped_mlp2" projector's channels per family (projector_channel_families)."""
        super().__init__()
        self.config = config
        self.ids = ids
        hidden_size = lm.get_input_embeddings().embedding_dim
        self.projector = Projector(config.projector, config.audio_dim, hidden_size, config.standardize_audio,
                                   channel_families, config.projector_family_dropout)
        # New tokens (<audio_start>, <audio>, <audio_end>, maybe <pad>) live in their own table, so the
        # LM's embedding matrix stays the pretrained one (a frozen base LM is referenced, not copied).
        # LLark initialises them to the mean of the existing embeddings.
        base_embeddings = lm.get_input_embeddings().weight.detach()
        mean = base_embeddings[: ids.base_vocab_size].float().mean(0)
        new = mean.expand(num_tokens - ids.base_vocab_size, hidden_size).clone()
        self.new_token_embeddings = nn.Parameter(new.to(base_embeddings.dtype))
        if config.trainable.lm == "lora":
            lora = config.lora
            lm = peft.get_peft_model(
                lm,
                peft.LoraConfig(
                    r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules
                ),
            )
        self.lm = lm
        # Training-time only (model.label_loss_weight): clip labels read from the audio positions.
        self.label_heads = nn.ModuleDict(
            {name: nn.Linear(hidden_size, size) for name, size in HEAD_SIZES.items()} if config.label_loss_weight else {}
        )
        self._set_trainable()

    # --- what trains, per component ----------------------------------------------------------

    def _set_trainable(self) -> None:
        trainable = self.config.trainable
        if trainable.lm not in ("none", "full", "lora"):
            raise ValueError(f"unknown model.trainable.lm {trainable.lm!r}; use none, full or lora")
        for name, param in self.lm.named_parameters():
            if trainable.lm == "full":
                param.requires_grad = True
            elif trainable.lm == "lora":
                param.requires_grad = "lora_" in name  # peft names its adapter tensors lora_A / lora_B
            else:
                param.requires_grad = False
        base = self.base_lm()
        for param in [*base.get_input_embeddings().parameters(), *base.get_output_embeddings().parameters()]:
            param.requires_grad = trainable.lm_embeddings
        self.projector.requires_grad_(trainable.projector)
        self.new_token_embeddings.requires_grad = trainable.new_token_embeddings

    def base_lm(self) -> PreTrainedModel:
        """The Hugging Face model under any peft wrapper (LoRA layers stay injected in it)."""
        return self.lm.get_base_model() if isinstance(self.lm, peft.PeftModel) else self.lm

    # --- embeddings ----------------------------------------------------------------------------

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        base_vocab = self.ids.base_vocab_size
        is_new = input_ids >= base_vocab
        base = self.base_lm().get_input_embeddings()(input_ids.clamp(max=base_vocab - 1))
        new = self.new_token_embeddings[(input_ids - base_vocab).clamp(min=0)]
        return torch.where(is_new.unsqueeze(-1), new.to(base.dtype), base)

    def embed(self, input_ids: torch.Tensor, audio: torch.Tensor, audio_lengths: torch.Tensor) -> torch.Tensor:
        """Token embeddings with each example's <audio> placeholders replaced by its projected frames.

        audio: [B, T_max, D] padded frames; audio_lengths: [B] true frame counts (placeholders per row).
        """
        embeds = self.embed_tokens(input_ids)
        placeholders = input_ids == self.ids.audio_patch
        counts = placeholders.sum(1)
        if not torch.equal(counts.cpu(), audio_lengths.cpu()):
            raise ValueError(f"audio placeholders per example {counts.tolist()} != frames {audio_lengths.tolist()}")
        if audio.shape[1] == 0:  # a batch of text-only examples (ABC tasks): nothing to project
            return embeds
        frames_present = torch.arange(audio.shape[1], device=audio.device)[None, :] < audio_lengths[:, None].to(audio.device)
        projected = self.projector(audio.to(self.projector.dtype))
        # Boolean indexing walks both masks row by row, left to right, so frame t of example b lands
        # on the t-th placeholder of row b.
        embeds = embeds.masked_scatter(placeholders.unsqueeze(-1), projected[frames_present].to(embeds.dtype))
        return embeds

    # --- training forward ----------------------------------------------------------------------

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        audio: torch.Tensor,
        audio_lengths: torch.Tensor,
        labels: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        label_only_logits: bool = True,
        loss_per_example: bool = False,
        frame_owner: torch.Tensor | None = None,
        target_key: torch.Tensor | None = None,
        target_tempo: torch.Tensor | None = None,
        target_meter: torch.Tensor | None = None,
        target_instruments: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean next-token cross-entropy over the answer tokens (plus the label loss, when the model
        has label heads and the batch carries targets: `frame_owner` and `target_*` from data.collate).
        With `loss_per_example` (train.loss_per_example), the mean over each example's answer tokens, then
        over the examples.

        With `label_only_logits` the LM head runs only on the positions that predict a label: with a
        long audio block and prompt, most positions have none, and the head is the largest matmul.
        `position_ids` come with packed rows (data.collate(pack=True)): they restart at 0 for each
        example, and given no 2-D mask and no KV cache, Hugging Face's LMs then attend only within each
        example (a cache, made by default when use_cache is on, turns that detection off).
        """
        embeds = self.embed(input_ids, audio, audio_lengths)
        base = self.base_lm()
        with_labels = bool(self.label_heads) and frame_owner is not None
        label_layer = self.label_layer() if with_labels else 0
        decoder_states = label_layer > 0  # layer 0, the projected audio tokens, is `embeds` itself
        if position_ids is None:
            out = base.get_decoder()(inputs_embeds=embeds, attention_mask=attention_mask, output_hidden_states=decoder_states)
        else:
            out = base.get_decoder()(inputs_embeds=embeds, position_ids=position_ids, use_cache=False,
                                     output_hidden_states=decoder_states)
        hidden = out.last_hidden_state
        label_loss = 0.0
        if with_labels:
            states = out.hidden_states[label_layer] if decoder_states else embeds
            at_audio = states[input_ids == self.ids.audio_patch]
            label_loss = self.label_loss(at_audio, frame_owner, len(target_key), {
                "key": target_key, "tempo": target_tempo, "meter": target_meter, "instruments": target_instruments})
        targets = labels[:, 1:]
        hidden = hidden[:, :-1]
        has_label = targets != IGNORE_INDEX
        head = base.get_output_embeddings()
        if label_only_logits:
            # The answer positions padded to a multiple of LABEL_ROWS_MULTIPLE rows: their count changes every step,
            # and on CPU oneDNN compiles a bf16 matmul kernel for every new shape (data.PACKED_LENGTH_MULTIPLE).
            at_labels = hidden[has_label]
            logits = head(F.pad(at_labels, (0, 0, 0, -len(at_labels) % LABEL_ROWS_MULTIPLE)))[: len(at_labels)]
        else:
            logits = head(hidden)[has_label]
        token_losses = F.cross_entropy(logits.float(), targets[has_label], reduction="none")
        if loss_per_example:
            owner = example_of_positions(input_ids, position_ids)[:, 1:][has_label]
            means, counts = mean_by_owner(token_losses, owner, int(owner.max()) + 1)
            answer_loss = means[counts > 0].mean()
        else:
            answer_loss = token_losses.mean()
        return answer_loss + self.config.label_loss_weight * label_loss

    def label_layer(self) -> int:
        layers = self.base_lm().config.num_hidden_layers
        layer = max(1, layers // 2) if self.config.label_layer == -1 else self.config.label_layer
        if not 0 <= layer <= layers:
            raise ValueError(f"model.label_layer={self.config.label_layer}: use 0 (the projector's output) or a decoder "
                             f"layer 1..{layers}")
        return layer

    def label_loss(self, at_audio: torch.Tensor, frame_owner: torch.Tensor, examples: int,
                   targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sum of the heads' losses on each example's hidden states averaged over its audio frames.

        at_audio: [F, H] the hidden states at the batch's audio placeholders, in order; frame_owner: [F]
        the example of each. Key, tempo and meter: cross-entropy; instruments: binary cross-entropy summed
        over the classes, times `label_instruments_weight` (the mean over 46 classes left the instruments
        unheard; the plain sum outweighed the other three heads: docs/demo-experiments.md, rows 15 and 23-24).
        Each is averaged over the examples that have the label; text-only examples and missing labels (-1) add
        nothing."""
        pooled, counts = mean_by_owner(at_audio, frame_owner, examples)
        pooled = pooled.float()
        loss = pooled.new_zeros(())
        for name, target in targets.items():
            multi_label = target.dim() == 2
            known = (counts > 0) & ((target[:, 0] if multi_label else target) >= 0)
            if not known.any():
                continue
            logits = self.label_heads[name](pooled[known])
            if multi_label:
                set_nll = F.binary_cross_entropy_with_logits(logits, target[known].float(), reduction="none").sum(1)
                loss = loss + self.config.label_instruments_weight * set_nll.mean()
            else:
                loss = loss + F.cross_entropy(logits, target[known])
        return loss

    @torch.no_grad()
    def label_probabilities(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, audio: torch.Tensor,
                            audio_lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the label heads read of each row's audio, as in training (the hidden states of `label_layer`
        averaged over the row's audio positions): {head: [B, classes]}, a softmax for key, tempo and meter, a
        sigmoid per class for instruments. One prompt per row, as data.collate gives them (any padding).
        MBR decoding weighs sampled answers against them (GenerationOptions.head_weight)."""
        if not self.label_heads:
            raise ValueError("this checkpoint has no label heads (trained with model.label_loss_weight 0)")
        hidden = self.embed(input_ids, audio, audio_lengths)
        if self.label_layer() > 0:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # left-padded prompts (generate)
            hidden = self.base_lm().get_decoder()(inputs_embeds=hidden, attention_mask=attention_mask, position_ids=position_ids,
                                                  use_cache=False, output_hidden_states=True).hidden_states[self.label_layer()]
        at_audio = input_ids == self.ids.audio_patch
        row_of = torch.arange(len(input_ids), device=input_ids.device)[:, None].expand_as(input_ids)
        pooled, _ = mean_by_owner(hidden[at_audio], row_of[at_audio], len(input_ids))
        logits = {name: head(pooled.float()) for name, head in self.label_heads.items()}
        return {name: torch.sigmoid(x) if name in MULTI_LABEL_HEADS else x.softmax(-1) for name, x in logits.items()}

    @torch.no_grad()
    def answer_logprobs(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, audio: torch.Tensor, audio_lengths: torch.Tensor,
        labels: torch.Tensor,
    ) -> torch.Tensor:
        """Mean log-probability per labelled token of each row ([B]); scores multiple-choice options."""
        embeds = self.embed(input_ids, audio, audio_lengths)
        base = self.base_lm()
        hidden = base.get_decoder()(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state
        targets = labels[:, 1:]
        has_label = targets != IGNORE_INDEX
        log_probs = base.get_output_embeddings()(hidden[:, :-1]).float().log_softmax(-1)
        picked = log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return (picked * has_label).sum(1) / has_label.sum(1).clamp(min=1)

    @torch.no_grad()
    def continuation_log_probs(
        self, prefix_ids: torch.Tensor, audio: torch.Tensor, audio_lengths: torch.Tensor,
        continuations: torch.Tensor, scored: torch.Tensor, chunk_size: int = 64,
    ) -> torch.Tensor:
        """Log-probability of each of n continuations of one shared prefix ([n], float64), as answer_logprobs
        scores tokens (the full softmax of the LM head) but summed over each row's `scored` positions.

        prefix_ids: [1, L] without padding (the prompt and the answer's shared start); audio: [1, T, D];
        continuations: [n, C], right-padded; scored: [n, C] bool, the tokens whose log-probabilities count.
        The prefix is read once and its KV cache copied to `chunk_size` continuations at a time: scoring
        every tempo from 30 to 300 BPM costs one prompt and 271 short rows, not 271 prompts.
        """
        prefix = self.lm(inputs_embeds=self.embed(prefix_ids, audio, audio_lengths), use_cache=True, logits_to_keep=1)
        first_logits = prefix.logits[:, -1:].float()  # predicts each continuation's first token
        length = prefix_ids.shape[1]
        vocab = first_logits.shape[-1]
        totals = []
        for start in range(0, len(continuations), chunk_size):
            tokens, keep = continuations[start : start + chunk_size], scored[start : start + chunk_size]
            rows, width = tokens.shape
            cache = copy.deepcopy(prefix.past_key_values)
            cache.batch_repeat_interleave(rows)
            out = self.lm(
                inputs_embeds=self.embed_tokens(tokens),
                attention_mask=torch.ones(rows, length + width, dtype=torch.long, device=tokens.device),
                position_ids=torch.arange(length, length + width, device=tokens.device).expand(rows, -1),
                past_key_values=cache,
                use_cache=True,
            )
            logits = torch.cat([first_logits.expand(rows, -1, -1), out.logits[:, :-1].float()], dim=1)
            targets = torch.where(keep, tokens, 0).clamp(max=vocab - 1)  # padding may lie beyond the head
            picked = logits.log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            totals.append((picked.double() * keep).sum(1))
        return torch.cat(totals)

    # --- generation ----------------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        audio: torch.Tensor,
        audio_lengths: torch.Tensor,
        max_new_tokens: int = 64,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        repetition_penalty: float = 1.0,
        generator: torch.Generator | None = None,
        on_tokens: Callable[[torch.Tensor], None] | None = None,
        is_done: Callable[[int, list[int]], bool] | None = None,
        samples_per_prompt: int = 1,
        log_probs: list[float] | None = None,
    ) -> list[list[int]]:
        """Batched decoding with a KV cache. Prompts must be LEFT-padded (attention_mask 0 on the left).

        Greedy by default; `do_sample` draws with temperature / top-k / top-p. `repetition_penalty` > 1
        makes every token already in the row (prompt or answer) less likely: its logit is divided by
        the penalty when positive, multiplied when negative (CTRL; ChatMusician decodes with 1.1).
        Each row stops at EOS (not included in the result), when `is_done(row, tokens)` says so, or when
        it fills the LM's `max_position_embeddings` (positions past it were never trained; a warning
        says so). `on_tokens` receives the new token of every row after each step, the pad id for a row
        already finished (for streaming). A finished row leaves the batch, KV cache included.

        `samples_per_prompt` > 1 decodes that many answers for each prompt (rows p*k .. p*k+k-1 of the
        result are prompt p's): each prompt is read once and its KV cache copied to its answers' rows,
        which is what copies of the prompt would give, for a k-th of the prompt's cost (MBR decoding
        samples 16 answers per question: llark/mbr.py).

        Given a `log_probs` list, it is filled with each row's log-probability under the model itself
        (temperature 1, no repetition penalty, llark's own tokens excluded), the stopping EOS included:
        how likely the model finds the answer, whatever the sampling settings that drew it (MBR decoding
        weighs distinct answers by it, `choose_answer(log_probs=...)`).
        """
        embeds = self.embed(input_ids, audio, audio_lengths)
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.lm(
            inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids, use_cache=True, logits_to_keep=1
        )
        if samples_per_prompt > 1:
            out.past_key_values.batch_repeat_interleave(samples_per_prompt)
            out.logits = out.logits.repeat_interleave(samples_per_prompt, dim=0)
            input_ids, attention_mask, position_ids = (
                x.repeat_interleave(samples_per_prompt, dim=0) for x in (input_ids, attention_mask, position_ids))
        batch = input_ids.shape[0]
        results: list[list[int]] = [[] for _ in range(batch)]
        finished = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        vocab = out.logits.shape[-1]  # the prompt also holds llark's own ids, which may lie beyond the head
        # Finished rows are reported with the pad id, which may lie beyond both the head and every prompt.
        width = max(vocab, int(input_ids.max()) + 1, self.ids.pad + 1)
        seen = torch.zeros(batch, width, dtype=torch.bool, device=input_ids.device)
        seen.scatter_(1, input_ids, torch.ones_like(input_ids, dtype=torch.bool))
        positions = self.base_lm().config.max_position_embeddings
        room = (positions - attention_mask.sum(1)).tolist()  # new tokens each row has before the last position
        cut_rows = 0
        # Rows still decoding (indices into the batch). A finished row leaves the batch and its KV cache,
        # so rows that stop early cost nothing more (many sampled answers per question, llark/mbr.py).
        active = torch.arange(batch, device=input_ids.device)
        row_log_probs = torch.zeros(batch, dtype=torch.float64, device=input_ids.device)
        for _ in range(max_new_tokens):
            logits = out.logits[:, -1].float()
            logits[:, self.ids.base_vocab_size :] = float("-inf")  # llark's own tokens are never generated
            model_logits = logits
            if repetition_penalty != 1.0:
                penalised = torch.where(logits > 0, logits / repetition_penalty, logits * repetition_penalty)
                logits = torch.where(seen[:, :vocab], penalised, logits)
            next_tokens = _pick_tokens(logits, do_sample, temperature, top_k, top_p, generator)
            if log_probs is not None:
                chosen = torch.log_softmax(model_logits, dim=-1).gather(1, next_tokens[:, None]).squeeze(1)
                row_log_probs.index_add_(0, active, chosen.double())
            seen[torch.arange(len(active), device=seen.device), next_tokens] = True
            if on_tokens is not None:
                on_tokens(torch.full((batch,), self.ids.pad, dtype=next_tokens.dtype,
                                     device=next_tokens.device).index_copy(0, active, next_tokens))
            for row, token in zip(active.tolist(), next_tokens.tolist()):
                if token == self.ids.eos:
                    finished[row] = True
                    continue
                results[row].append(token)
                if is_done is not None and is_done(row, results[row]):
                    finished[row] = True
                elif len(results[row]) >= room[row]:
                    finished[row], cut_rows = True, cut_rows + 1
            going = ~finished[active]
            if not bool(going.any()):
                break
            if not bool(going.all()):
                keep = going.nonzero().squeeze(1)
                active, next_tokens, seen = active[keep], next_tokens[keep], seen[keep]
                attention_mask, position_ids = attention_mask[keep], position_ids[keep]
                out.past_key_values.batch_select_indices(keep)
            attention_mask = torch.cat([attention_mask, torch.ones_like(attention_mask[:, :1])], dim=1)
            position_ids = position_ids[:, -1:] + 1
            out = self.lm(
                inputs_embeds=self.embed_tokens(next_tokens[:, None]),
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=out.past_key_values,
                use_cache=True,
            )
        if cut_rows:
            log.warning("%d of %d answers stopped at the LM's last position (%d), before EOS and max_new_tokens %d",
                        cut_rows, batch, positions, max_new_tokens)
        if log_probs is not None:
            log_probs[:] = row_log_probs.tolist()
        return results

    # --- checkpoints (DESIGN §3) ---------------------------------------------------------------

    def lm_weights_are_saved(self) -> bool:
        """A frozen (or LoRA-adapted) pretrained LM is referenced by path; anything else is written out."""
        trainable = self.config.trainable
        return self.config.lm.source == "scratch" or trainable.lm == "full" or trainable.lm_embeddings

    def save_pretrained(
        self, directory: str | Path, run_config: Config, tokenizer, state_dict: dict[str, torch.Tensor] | None = None,
        encoder_fitted: dict[str, str] | None = None,
    ) -> None:
        """Write config.json, projector, new-token embeddings, LM weights or adapter, tokenizer.

        `state_dict` lets a sharded (FSDP2) run pass the gathered full state dict; by default the
        module's own. `encoder_fitted`: the fitted models (the beat-level fit) the training features were
        made with (their encoder record's, train.py), kept in config.json so audio is never encoded for it
        with another fit (llark/inference.py: check_encoder_fit); None where unknown. The caller makes the
        write atomic (see llark/checkpoint.py).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in (state_dict or self.state_dict()).items()}
        save_file(_with_prefix(tensors, "projector."), directory / "projector.safetensors")
        save_file({"weight": tensors["new_token_embeddings"]}, directory / "new_token_embeddings.safetensors")
        if self.label_heads:
            save_file(_with_prefix(tensors, "label_heads."), directory / "label_heads.safetensors")
        lm_tensors = _with_prefix(tensors, "lm.")
        if self.config.trainable.lm == "lora":
            save_file({k: v for k, v in lm_tensors.items() if "lora_" in k}, directory / "lm_adapter.safetensors")
        if self.lm_weights_are_saved():
            (directory / "lm").mkdir(exist_ok=True)
            self.base_lm().config.save_pretrained(directory / "lm")
            base = {_hf_name(k): v for k, v in lm_tensors.items() if "lora_" not in k}
            save_file(base, directory / "lm" / "model.safetensors", metadata={"format": "pt"})
        tokenizer.save_pretrained(directory / "tokenizer")
        meta = {"format": CHECKPOINT_FORMAT, "base_vocab_size": self.ids.base_vocab_size, "num_tokens": len(tokenizer)}
        if encoder_fitted is not None:
            meta["encoder_fitted"] = encoder_fitted
        (directory / "config.json").write_text(json.dumps({**config_to_dict(run_config), "llark": meta}, indent=2))

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> "LLark":
        """Load a checkpoint written by `save_pretrained`; `.run_config` and `.tokenizer` are attached."""
        from transformers import AutoTokenizer

        directory = Path(directory)
        config_path = directory / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"{directory}: not an llark checkpoint (config.json missing)")
        raw = json.loads(config_path.read_text())
        meta = raw.pop("llark", None)
        if meta is None or meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{config_path}: not an llark checkpoint config of format {CHECKPOINT_FORMAT}")
        run_config = config_from_dict(raw, where=str(config_path))
        tokenizer = AutoTokenizer.from_pretrained(str(directory / "tokenizer"), local_files_only=True)
        ids = special_ids(tokenizer, meta["base_vocab_size"])
        if (directory / "lm").is_dir():
            lm_dtype = getattr(torch, run_config.model.lm.dtype)
            # With the attention kernels the config names, as build_lm gives a new LM: Hugging Face's default
            # (sdpa) would train a curriculum's later stage with other kernels than its first (model.lm.attention).
            lm = AutoModelForCausalLM.from_pretrained(str(directory / "lm"), local_files_only=True, dtype=lm_dtype,
                                                      attn_implementation=run_config.model.lm.attention)
        else:
            lm = build_lm(run_config.model.lm, meta["base_vocab_size"])
        model = cls(run_config.model, lm, ids, meta["num_tokens"], projector_channel_families(run_config))
        # The grouped projector's channels from the config, unless the checkpoint saved them (all but the first
        # grouped checkpoints did): then they must be the same.
        from_config = {name: channels for name, channels in model.projector.state_dict().items() if name.startswith("net.channels_")}
        projector = {**from_config, **load_file(directory / "projector.safetensors")}
        moved = [name for name, channels in from_config.items() if not torch.equal(projector[name], channels)]
        if moved:
            raise ValueError(f"{directory}: its grouped projector's families read other channels ({', '.join(moved)}) than "
                             f"model.projector_families name in the encoder's groups now: the encoder's channel layout "
                             f"changed since it was trained")
        model.projector.load_state_dict(projector)
        new_embeddings = load_file(directory / "new_token_embeddings.safetensors")["weight"]
        model.new_token_embeddings.data.copy_(new_embeddings)
        if model.label_heads:  # training-time heads: a later curriculum stage goes on with them
            model.label_heads.load_state_dict(load_file(directory / "label_heads.safetensors"))
        if run_config.model.trainable.lm == "lora":
            adapter = {"lm." + k: v for k, v in load_file(directory / "lm_adapter.safetensors").items()}
            missing = [k for k, _ in model.named_parameters() if "lora_" in k and k not in adapter]
            if missing:
                raise ValueError(f"{directory}/lm_adapter.safetensors lacks {len(missing)} LoRA tensors, e.g. {missing[0]}")
            model.load_state_dict(adapter, strict=False)
        model.run_config = run_config
        model.tokenizer = tokenizer
        model.encoder_fitted = meta.get("encoder_fitted")  # None: unknown (no encoder record, or saved before)
        return model.to(device).eval()


def _pick_tokens(
    logits: torch.Tensor, do_sample: bool, temperature: float, top_k: int, top_p: float, generator
) -> torch.Tensor:
    if not do_sample:
        return logits.argmax(-1)
    logits = logits / max(temperature, 1e-5)
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) > top_p  # keep the smallest set reaching top_p
        logits = logits.scatter(1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1)


def _with_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _hf_name(name: str) -> str:
    """Key of a (possibly peft-wrapped) LM tensor as the plain Hugging Face model names it."""
    name = name.removeprefix("base_model.model.")
    return name.replace(".base_layer.", ".")
