"""Jukebox-5B as a frozen music encoder (Dhariwal et al. 2020; used by LLark and jukemir).

The audio goes through the top level of the VQ-VAE (hop 128: 344.53 tokens per second at 44.1 kHz)
to discrete codes; the `5b` top-level prior, a 72-block sparse transformer over 8192-token windows,
reads those codes with "unknown" artist and genre, and the residual stream after block L (36, the
middle) is the feature: 4800 values per token, pooled to 25 frames per second.

Parameter names mirror the official checkpoint files (`encoders.2.*`, `bottleneck.level_blocks.2.k`
in `vqvae.pth.tar`; `y_emb.*`, `prior.*` in `prior_level_2.pth.tar`), so they load as they are
(`llark/encoders/jukebox_weights.py`). Written from the architecture description; no OpenAI code.

    encoder = JukeboxEncoder(weights="jukebox-5b-L36.safetensors")          # after convert_jukebox.py
    encoder = JukeboxEncoder(vqvae="5b/vqvae.pth.tar", prior="5b/prior_level_2.pth.tar", layer=36)
    features = encoder.encode(wave)       # mono peak-normalised 44.1 kHz -> [round(25 * seconds), 4800]
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llark.encoders import FRAME_RATE, frames_for

# ---------------------------------------------------------------------------------------------------
# Configuration: the `5b` values; every size can be changed (the parity fixture is a tiny random model).


@dataclass
class JukeboxConfig:
    sample_rate: int = 44100
    # VQ-VAE encoder of the top level: three conv stacks that halve the rate 3, 2 and 2 times.
    downs_t: tuple[int, ...] = (3, 2, 2)
    stride_t: int = 2
    vqvae_width: int = 32  # width 32 x hvqvae multiplier 1 at level 2
    vqvae_depth: int = 4
    dilation_growth_rate: int = 3
    emb_width: int = 64
    codebook_size: int = 2048
    # Top-level prior.
    width: int = 4800  # the official file holds 72 blocks; the encoder runs `layer` of them
    heads: int = 8
    n_ctx: int = 8192
    blocks: int = 128  # n_ctx / blocks = 64-token blocks for row / column / previous-block attention
    attn_width: int = 1200  # m_attn 0.25 x width
    mlp_width: int = 4800  # m_mlp 1.0 x width
    # Label conditioner (artist / genre / timing), as the `5b` prior was trained.
    genre_vocab: int = 120
    artist_vocab: int = 4111
    t_bins: int = 128
    min_duration: float = 60.0
    max_duration: float = 600.0
    genre_slots: int = 5
    # LLark / jukemir conditioning: artist and genre "unknown", a 62 s song, the window at offset 0.
    artist: int = 0
    genres: tuple[int, ...] = (0, -1, -1, -1, -1)  # -1: empty slot, masked out
    total_length: int = 2734080  # 62 s x 44100 rounded down to a multiple of 128

    @property
    def hop_length(self) -> int:
        return self.stride_t ** sum(self.downs_t)

    @property
    def block_ctx(self) -> int:
        return self.n_ctx // self.blocks

    @property
    def sample_length(self) -> int:
        return self.n_ctx * self.hop_length

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "JukeboxConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown Jukebox config fields {unknown}; known: {sorted(known)}")
        tuples = {name: tuple(values[name]) for name in ("downs_t", "genres") if name in values}
        return cls(**{**values, **tuples})

    @classmethod
    def from_official_hparams(cls, vqvae: dict[str, Any], prior: dict[str, Any], **rest: Any) -> "JukeboxConfig":
        """From Jukebox's own hyperparameter names (`width`, `hvqvae_multipliers`, `prior_width`,
        `m_attn`, `y_bins` ...), e.g. the `vqvae` and `prior` entries of a model's hps."""
        level = len(vqvae["downs_t"]) - 1
        multiplier = (vqvae.get("hvqvae_multipliers") or [1] * (level + 1))[level]
        if len(set(vqvae["strides_t"])) != 1:
            raise ValueError(f"strides_t {vqvae['strides_t']}: only equal strides per level are supported")
        genre_vocab, artist_vocab = prior["y_bins"]
        return cls(sample_rate=vqvae["sr"], downs_t=tuple(vqvae["downs_t"]), stride_t=vqvae["strides_t"][0],
                   vqvae_width=vqvae["width"] * multiplier, vqvae_depth=vqvae["depth"] * multiplier,
                   dilation_growth_rate=vqvae["dilation_growth_rate"], emb_width=vqvae["emb_width"],
                   codebook_size=vqvae["l_bins"], width=prior["prior_width"], heads=prior["heads"],
                   n_ctx=prior["n_ctx"], blocks=prior["blocks"], attn_width=int(prior["m_attn"] * prior["prior_width"]),
                   mlp_width=int(prior["m_mlp"] * prior["prior_width"]), genre_vocab=genre_vocab,
                   artist_vocab=artist_vocab, t_bins=prior["t_bins"], min_duration=prior["min_duration"],
                   max_duration=prior["max_duration"], genre_slots=prior["max_bow_genre_size"], **rest)

    @classmethod
    def from_hparams_file(cls, path: str | Path) -> "JukeboxConfig":
        """From a JSON file with `vqvae` and `prior` (or `prior_level_2`, plus an optional `conditioner`)
        entries in Jukebox's names, like the files under `../shared/reference/jukebox/`."""
        hparams = json.loads(Path(path).read_text())
        prior = hparams.get("prior") or hparams.get("prior_level_2")
        if "vqvae" not in hparams or prior is None:
            raise ValueError(f"{path}: needs a 'vqvae' and a 'prior' (or 'prior_level_2') entry")
        return cls.from_official_hparams(hparams["vqvae"], {**hparams.get("conditioner", {}), **prior})

    def to_dict(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


# ---------------------------------------------------------------------------------------------------
# VQ-VAE: the level-2 encoder and its codebook.


class ResConv1DBlock(nn.Module):
    """x + Conv1d_1x1(ReLU(Conv1d_3(ReLU(x)))), the 3-tap conv dilated."""

    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.model = nn.Sequential(nn.ReLU(), nn.Conv1d(width, width, 3, 1, dilation, dilation), nn.ReLU(),
                                   nn.Conv1d(width, width, 1, 1, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.model(x)


class Resnet1D(nn.Module):
    def __init__(self, width: int, depth: int, growth: int):
        super().__init__()
        self.model = nn.Sequential(*(ResConv1DBlock(width, growth ** j) for j in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class EncoderConvBlock(nn.Module):
    """`down_t` x (strided conv that halves the rate -> dilated resnet), then a 3-tap conv to emb_width."""

    def __init__(self, channels_in: int, config: JukeboxConfig, down_t: int):
        super().__init__()
        kernel, stride, pad = config.stride_t * 2, config.stride_t, config.stride_t // 2
        width = config.vqvae_width
        stages = [nn.Sequential(nn.Conv1d(channels_in if i == 0 else width, width, kernel, stride, pad),
                                Resnet1D(width, config.vqvae_depth, config.dilation_growth_rate))
                  for i in range(down_t)]
        self.model = nn.Sequential(*stages, nn.Conv1d(width, config.emb_width, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LevelEncoder(nn.Module):
    def __init__(self, config: JukeboxConfig):
        super().__init__()
        self.level_blocks = nn.ModuleList(
            EncoderConvBlock(1 if i == 0 else config.emb_width, config, down_t) for i, down_t in enumerate(config.downs_t))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.level_blocks:
            x = block(x)
        return x


class Codebook(nn.Module):
    def __init__(self, config: JukeboxConfig):
        super().__init__()
        self.register_buffer("k", torch.empty(config.codebook_size, config.emb_width))

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """[N, emb_width] -> codes [N]: nearest row by squared distance ||x||^2 - 2 x.k + ||k||^2."""
        distances = (latents.pow(2).sum(-1, keepdim=True) - 2 * latents @ self.k.T + self.k.pow(2).sum(-1))
        return distances.argmin(-1)


class TopLevelVQVAE(nn.Module):
    """The parts of `vqvae.pth.tar` that encoding needs; ModuleDict keys reproduce the official names."""

    level = "2"

    def __init__(self, config: JukeboxConfig):
        super().__init__()
        self.encoders = nn.ModuleDict({self.level: LevelEncoder(config)})
        self.bottleneck = nn.Module()
        self.bottleneck.level_blocks = nn.ModuleDict({self.level: Codebook(config)})

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """audio [B, samples] -> codes [B, samples // hop]."""
        latents = self.encoders[self.level](audio[:, None, :])  # [B, emb_width, tokens]
        batch, width, tokens = latents.shape
        codes = self.bottleneck.level_blocks[self.level](latents.transpose(1, 2).reshape(-1, width))
        return codes.view(batch, tokens)


# ---------------------------------------------------------------------------------------------------
# The top-level prior: conditioning, embeddings, and a sparse transformer.


class Embedding(nn.Module):
    """A table under the name `emb` (official key `y_emb.artist_emb.emb.weight`)."""

    def __init__(self, rows: int, width: int):
        super().__init__()
        self.emb = nn.Embedding(rows, width)


class LabelConditioner(nn.Module):
    """Start embedding (artist + genres) and per-position timing embeddings (x_cond)."""

    def __init__(self, config: JukeboxConfig):
        super().__init__()
        self.config = config
        self.bow_genre_emb = Embedding(config.genre_vocab, config.width)
        self.artist_emb = Embedding(config.artist_vocab, config.width)
        self.total_length_emb = Embedding(config.t_bins, config.width)
        self.absolute_pos_emb = Embedding(config.t_bins, config.width)
        self.relative_pos_emb = Embedding(config.t_bins, config.width)

    def start_embedding(self) -> torch.Tensor:
        """[width]: artist + the sum of the filled genre slots (empty slots, -1, are masked out)."""
        device = self.artist_emb.emb.weight.device
        genres = torch.tensor(self.config.genres, device=device)
        filled = (genres >= 0).to(self.artist_emb.emb.weight.dtype)[:, None]
        genre = (self.bow_genre_emb.emb(genres.clamp(min=0)) * filled).sum(0)
        return self.artist_emb.emb(torch.tensor(self.config.artist, device=device)) + genre

    def _bins(self, start: float, end: float, n_time: int, low: float, high: float, clamp: bool) -> torch.Tensor:
        # In float32 like the training code: position i of n_time lies at start + (end - start) * i / n_time.
        device = self.artist_emb.emb.weight.device
        position = start + (end - start) * (torch.arange(n_time, dtype=torch.float32, device=device) / n_time)
        if clamp:
            position = position.clamp(low, high)
        bins = torch.floor(self.config.t_bins * (position - low) / (high - low)).long()
        if bins.min() < 0 or bins.max() >= self.config.t_bins:
            raise ValueError(f"timing conditioning out of range: position {start}..{end} in [{low}, {high})")
        return bins

    def x_cond(self) -> torch.Tensor:
        """[n_ctx, width]: total-length + absolute-position + relative-position embeddings of the window."""
        c = self.config
        total = torch.tensor(float(c.total_length), dtype=torch.float32)
        start, end = torch.tensor(0.0), torch.tensor(float(c.sample_length))  # the window at offset 0
        total_bin = self._bins(total, total, 1, c.min_duration * c.sample_rate, c.max_duration * c.sample_rate, False)
        absolute = self._bins(start, end, c.n_ctx, 0.0, c.max_duration * c.sample_rate, False)
        relative = self._bins(start / total, end / total, c.n_ctx, 0.0, 1.0, True)
        return (self.total_length_emb.emb(total_bin) + self.absolute_pos_emb.emb(absolute)
                + self.relative_pos_emb.emb(relative))


class Conv1D(nn.Module):
    """x @ w + b with w stored (in, out), the official layout (the transpose of nn.Linear's)."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.w = nn.Parameter(torch.empty(n_in, n_out))
        self.b = nn.Parameter(torch.empty(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The matmul runs in the weight's dtype (bfloat16 on GPU if asked); the residual stream keeps its own.
        flat = x.reshape(-1, x.shape[-1]).to(self.w.dtype)
        return torch.addmm(self.b.to(self.w.dtype), flat, self.w).view(*x.shape[:-1], -1).to(x.dtype)


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the activation dtype (the `5b` prior trains in fp16)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps).type_as(x)


ROW, COLUMN, PREVIOUS_BLOCK = 0, 1, 2  # layer i attends with type i % 3 (attn_order 2)


class FactoredAttention(nn.Module):
    """Sparse attention over 64-token blocks: row (causal, within the block), column (causal, the same
    offset in this and earlier blocks) or previous block (all 64 positions of the block before; block 0
    sees zero keys and values, so its output is only the c_proj bias)."""

    def __init__(self, config: JukeboxConfig, kind: int):
        super().__init__()
        self.kind, self.heads, self.block_ctx = kind, config.heads, config.block_ctx
        self.c_attn = Conv1D(config.width, 3 * config.attn_width)
        self.c_proj = Conv1D(config.attn_width, config.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape  # length is a multiple of block_ctx
        blocks = length // self.block_ctx
        # [B, T, 3A] -> three [B, blocks, heads, block_ctx, head_dim]
        q, k, v = (t.reshape(batch, blocks, self.block_ctx, self.heads, -1).transpose(2, 3)
                   for t in self.c_attn(x).chunk(3, dim=-1))
        if self.kind == ROW:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif self.kind == COLUMN:  # attend along the block axis: [B, heads, block_ctx, blocks, head_dim]
            q, k, v = (t.permute(0, 2, 3, 1, 4) for t in (q, k, v))
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True).permute(0, 3, 1, 2, 4)
        else:
            k, v = (torch.cat([torch.zeros_like(t[:, :1]), t[:, :-1]], dim=1) for t in (k, v))
            out = F.scaled_dot_product_attention(q, k, v)
        return self.c_proj(out.transpose(2, 3).reshape(batch, length, -1))


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


class MLP(nn.Module):
    def __init__(self, config: JukeboxConfig):
        super().__init__()
        self.c_fc = Conv1D(config.width, config.mlp_width)
        self.c_proj = Conv1D(config.mlp_width, config.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(quick_gelu(self.c_fc(x)))


class ResAttnBlock(nn.Module):
    """h = x + a + m, a = attn(ln_0(x)), m = mlp(ln_1(x + a)); no final LayerNorm."""

    def __init__(self, config: JukeboxConfig, index: int):
        super().__init__()
        self.ln_0 = LayerNorm(config.width, eps=1e-5)
        self.attn = FactoredAttention(config, kind=index % 3)
        self.ln_1 = LayerNorm(config.width, eps=1e-5)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attn(self.ln_0(x))
        return x + a + self.mlp(self.ln_1(x + a))


class Transformer(nn.Module):
    def __init__(self, config: JukeboxConfig, layers: int):
        super().__init__()
        self._attn_mods = nn.ModuleList(ResAttnBlock(config, i) for i in range(layers))


class PositionEmbedding(nn.Module):
    def __init__(self, config: JukeboxConfig):
        super().__init__()
        self.pos_emb = nn.Parameter(torch.empty(config.n_ctx, config.width))


class PriorCore(nn.Module):
    def __init__(self, config: JukeboxConfig, layers: int):
        super().__init__()
        self.x_emb = nn.Embedding(config.codebook_size, config.width)
        self.pos_emb = PositionEmbedding(config)
        self.transformer = Transformer(config, layers)


class TopLevelPrior(nn.Module):
    """The parts of `prior_level_2.pth.tar` that encoding needs, with `layers` of its blocks."""

    def __init__(self, config: JukeboxConfig, layers: int):
        super().__init__()
        if layers < 1:
            raise ValueError(f"layer {layers}: the encoder runs at least one prior block")
        self.config = config
        self.y_emb = LabelConditioner(config)
        self.prior = PriorCore(config, layers)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, T] -> the residual stream entering block 1: the start embedding, then the codes
        shifted right by one, plus position and timing embeddings."""
        batch, length = codes.shape
        if length > self.config.n_ctx:
            raise ValueError(f"{length} tokens exceed the {self.config.n_ctx}-token context")
        tokens = self.prior.x_emb(codes)
        start = self.y_emb.start_embedding().to(tokens.dtype).expand(batch, 1, -1)
        x = torch.cat([start, tokens[:, :-1]], dim=1)  # row t sees only the codes before t
        return x + self.prior.pos_emb.pos_emb[:length] + self.y_emb.x_cond()[:length].to(x.dtype)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, T] (T <= n_ctx) -> the residual stream after the last block, [B, T, width].

        Exact causal forward without padding the audio: every attention type only looks at the same or
        earlier blocks, so the tokens are padded internally to whole 64-token blocks and the extra rows
        are dropped; they cannot change the rows kept.
        """
        length = codes.shape[1]
        x = self.embed(codes)
        padded = -(-length // self.config.block_ctx) * self.config.block_ctx
        x = F.pad(x, (0, 0, 0, padded - length))
        for block in self.prior.transformer._attn_mods:
            x = block(x)
        return x[:, :length]


# ---------------------------------------------------------------------------------------------------
# Windows: a clip longer than the context is covered by overlapping windows, stitched.


def token_windows(tokens: int, context: int, hop: int) -> list[tuple[int, int, int]]:
    """(window start, first row kept, end row kept) per window, in global token positions.

    One window when the clip fits. Otherwise windows start every `hop` tokens, the last one ends with
    the clip, and each keeps the rows after its predecessor's end, so every row is computed once,
    with at least `context - hop` tokens of left context beyond the first window (a 25 s clip: rows
    0..8191 from the window at 0, rows 8192..8612 from the window at 421, with 7771 tokens before).
    """
    if tokens <= context:
        return [(0, 0, tokens)]
    starts = list(range(0, tokens - context, hop)) + [tokens - context]
    return [(start, 0 if i == 0 else starts[i - 1] + context, start + context) for i, start in enumerate(starts)]


class Jukebox(nn.Module):
    """VQ-VAE + prior up to block L as one feature extractor: windows, batching, stitching, pooling."""

    def __init__(self, vqvae: TopLevelVQVAE, prior: TopLevelPrior, tf32: bool = False, batch_size: int = 4,
                 window_hop: int = 4096):
        super().__init__()
        self.vqvae, self.prior = vqvae, prior
        self.config: JukeboxConfig = prior.config
        self.tf32, self.batch_size, self.window_hop = tf32, batch_size, window_hop

    @property
    def device(self) -> torch.device:
        return self.prior.prior.pos_emb.pos_emb.device

    @torch.no_grad()
    def codes(self, wave: np.ndarray) -> torch.Tensor:
        """VQ-VAE codes [len(wave) // hop] of one waveform, in float32 with TF32 off (exact codes)."""
        audio = torch.as_tensor(np.asarray(wave, dtype=np.float32), device=self.device)[None]
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            return self.vqvae(audio)[0]

    @torch.no_grad()
    def activations(self, windows: list[torch.Tensor]) -> list[torch.Tensor]:
        """Code windows (each <= n_ctx, any mix of lengths) -> residual streams, batched by length."""
        results: list[torch.Tensor | None] = [None] * len(windows)
        by_length: dict[int, list[int]] = {}
        for index, window in enumerate(windows):
            by_length.setdefault(len(window), []).append(index)
        matmul_tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = self.tf32  # restored below: no setting leaks out
        try:
            for indices in by_length.values():
                for first in range(0, len(indices), self.batch_size):
                    chunk = indices[first:first + self.batch_size]
                    rows = self.prior(torch.stack([windows[i] for i in chunk]))
                    for index, row in zip(chunk, rows):
                        results[index] = row.float()
        finally:
            torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
        return results

    def token_activations(self, waves: list[np.ndarray]) -> list[torch.Tensor]:
        """Block-L activations [len(wave) // hop, width] per waveform, windows stitched."""
        hop, context = self.config.hop_length, self.config.n_ctx
        plans, windows = [], []
        for wave in waves:
            tokens = len(wave) // hop
            if tokens < 1 or frames_for(len(wave), self.config.sample_rate) < 1:
                raise ValueError(f"{len(wave)} samples is shorter than one {hop}-sample token and one 25 fps frame")
            spans = token_windows(tokens, context, self.window_hop)
            plans.append((spans, len(windows)))
            for start, _, end in spans:
                # Each window's audio is encoded on its own, so a window is exactly a single-window run;
                # the last keeps the samples after its last whole token, as a single run would.
                audio_end = len(wave) if end == tokens else end * hop
                windows.append(self.codes(wave[start * hop:audio_end]))
        streams = self.activations(windows)
        return [torch.cat([streams[first + i][keep - start:end - start] for i, (start, keep, end) in enumerate(spans)])
                for spans, first in plans]

    def features(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Waveforms -> float32 [round(25 * seconds), width] each (adaptive average pooling of the rows)."""
        features = []
        for wave, rows in zip(waves, self.token_activations(waves)):
            pooled = F.adaptive_avg_pool1d(rows.T[None], frames_for(len(wave), self.config.sample_rate))[0].T
            features.append(pooled.cpu().numpy().astype(np.float32))
        return features


@dataclass
class JukeboxEncoder:
    """The `jukebox` encoder: 44.1 kHz mono audio -> [round(25 * seconds), width] features.

    Weights come either from a converted safetensors file (`weights`, see `convert_jukebox.py`) or
    from the two official checkpoint files (`vqvae`, `prior`). `dtype` "bfloat16" and `tf32` apply
    to the prior on GPU; the VQ-VAE always runs in float32 so the codes do not move.
    """

    weights: str | None = None
    vqvae: str | None = None
    prior: str | None = None
    layer: int = 36
    device: str = "auto"  # cuda when there is one
    dtype: str = "float32"
    tf32: bool = False
    batch_size: int = 4  # windows per transformer forward
    window_hop: int = 4096  # tokens between window starts for clips longer than two windows
    trusted: bool = False  # allow arbitrary unpickling of the official files (only for files you trust)
    config: dict[str, Any] = field(default_factory=dict)  # JukeboxConfig fields that differ from 5b

    name = "jukebox"
    frame_rate = FRAME_RATE
    unrecorded_settings = ("device", "batch_size", "trusted")  # where and how fast, not what (settings())

    def __post_init__(self) -> None:
        from llark.encoders.jukebox_weights import load_encoder_modules

        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype {self.dtype!r}: use float32 (CPU) or bfloat16 (GPU)")
        vqvae, prior = load_encoder_modules(
            weights=self.weights, vqvae=self.vqvae, prior=self.prior, layer=self.layer,
            overrides=self.config, trusted=self.trusted, device=self.device, dtype=getattr(torch, self.dtype))
        self.model = Jukebox(vqvae, prior, tf32=self.tf32, batch_size=self.batch_size, window_hop=self.window_hop)
        self.config = self.model.config.to_dict()

    @property
    def sample_rate(self) -> int:
        return self.model.config.sample_rate

    @property
    def dim(self) -> int:
        return self.model.config.width

    def settings(self) -> dict[str, Any]:
        """What the features depend on, defaults left out (5b's config, no TF32): e.g. {"weights": ...,
        "layer": 36, "dtype": "bfloat16"}, which is also what a training config's `encoder.settings` says.
        Where and how fast they are computed (device, batch size) is not recorded."""
        five_b = JukeboxConfig().to_dict()
        values = {"weights": self.weights, "vqvae": self.vqvae, "prior": self.prior, "layer": self.layer,
                  "dtype": self.dtype, "tf32": self.tf32, "window_hop": self.window_hop,
                  "config": {key: value for key, value in self.config.items() if five_b[key] != value}}
        optional = {"weights": None, "vqvae": None, "prior": None, "tf32": False, "window_hop": 4096, "config": {}}
        return {key: value for key, value in values.items() if key not in optional or optional[key] != value}

    def encode(self, wave: np.ndarray) -> np.ndarray:
        return self.model.features([wave])[0]

    def encode_batch(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        return self.model.features(waves)


def flops_per_window(config: JukeboxConfig, layers: int, tokens: int | None = None) -> float:
    """Matmul FLOPs of one window through `layers` blocks (the block-sparse attention included)."""
    t = tokens or config.n_ctx
    dense = 2 * t * (config.width * 3 * config.attn_width + config.attn_width * config.width
                     + 2 * config.width * config.mlp_width)
    keys_per_query = (config.block_ctx + config.blocks + config.block_ctx) / 3  # row, column, previous block
    return layers * (dense + 2 * 2 * t * config.attn_width * keys_per_query)
