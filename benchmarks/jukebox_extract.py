"""Jukebox encoder throughput: seconds per 25 s clip and clips/s by batch size, for a given width/depth.

The weights are random (no real weights needed): the cost depends only on the shapes. A 25 s clip is
two 8192-token windows (23.78 s each), as the `jukebox` encoder runs it.

    python benchmarks/jukebox_extract.py --width 1200 --layers 2 --batch-sizes 1,2      # CPU, small
    python benchmarks/jukebox_extract.py --layers 36 --dtype bfloat16 --device cuda --batch-sizes 1,2,4,8
        # full 5b width on one GPU; compare with LLark's ~4.6 V100-seconds per clip

Prints a table: batch size (clips per call); seconds per clip in all, in the VQ-VAE and in the prior;
clips/s; and the prior's achieved TFLOP/s.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from llark.encoders.jukebox import Jukebox, JukeboxConfig, TopLevelPrior, TopLevelVQVAE, flops_per_window, token_windows


def random_model(config: JukeboxConfig, layers: int, device: str, dtype: torch.dtype, batch_windows: int) -> Jukebox:
    torch.manual_seed(0)
    with torch.device(device):
        vqvae, prior = TopLevelVQVAE(config), TopLevelPrior(config, layers)
    for module in (vqvae, prior):
        for tensor in [*module.parameters(), *module.buffers()]:
            torch.nn.init.normal_(tensor, std=0.02)
    for name, parameter in prior.named_parameters():
        if name.endswith(".w"):  # the matmul weights take the compute dtype, as the loader does
            parameter.data = parameter.data.to(dtype)
    return Jukebox(vqvae.eval(), prior.eval().requires_grad_(False), batch_size=batch_windows)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=4800, help="prior width (5b: 4800; heads scale with it)")
    parser.add_argument("--layers", type=int, default=36, help="prior blocks run (LLark: 36)")
    parser.add_argument("--batch-sizes", default="1,2,4", help="clips per call, comma-separated")
    parser.add_argument("--clips", type=int, default=0, help="clips timed per batch size (default: 2 x batch)")
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    five_b = JukeboxConfig()
    heads = max(1, round(five_b.heads * args.width / five_b.width))
    config = dataclasses.replace(five_b, width=args.width, heads=heads, attn_width=args.width // 4, mlp_width=args.width)
    batch_sizes = [int(size) for size in args.batch_sizes.split(",")]
    model = random_model(config, args.layers, args.device, getattr(torch, args.dtype), batch_windows=2 * max(batch_sizes))
    rng = np.random.default_rng(0)
    samples = int(args.seconds * config.sample_rate)
    spans = token_windows(samples // config.hop_length, config.n_ctx, model.window_hop)
    windows_per_clip = len(spans)
    flops_per_clip = sum(flops_per_window(config, args.layers, end - start) for start, _, end in spans)
    print(f"# width {args.width}, heads {heads}, {args.layers} blocks, {args.dtype} on {args.device} "
          f"({torch.get_num_threads()} threads); {args.seconds:g} s clips = {windows_per_clip} windows; "
          f"{flops_per_clip / 1e12:.1f} TFLOP per clip")
    warm = rng.uniform(-1, 1, samples).astype(np.float32)
    model.features([warm])  # warm-up (kernels, allocator)
    print("| batch | s per clip | VQ-VAE s per clip | prior s per clip | clips/s | prior TFLOP/s |")
    print("|---|---|---|---|---|---|")
    hop = config.hop_length
    for batch in batch_sizes:
        model.batch_size = batch * windows_per_clip
        clips = args.clips or 2 * batch
        waves = [rng.uniform(-1, 1, samples).astype(np.float32) for _ in range(clips)]
        vqvae_seconds = prior_seconds = 0.0
        for first in range(0, clips, batch):
            # The two stages of model.features, timed apart (stitching and pooling are negligible).
            synchronize(args.device)
            started = time.perf_counter()
            windows = [model.codes(wave[start * hop:end * hop]) for wave in waves[first:first + batch]
                       for start, _, end in spans]
            synchronize(args.device)
            middle = time.perf_counter()
            model.activations(windows)
            synchronize(args.device)
            vqvae_seconds += middle - started
            prior_seconds += time.perf_counter() - middle
        total = vqvae_seconds + prior_seconds
        print(f"| {batch} | {total / clips:.3f} | {vqvae_seconds / clips:.3f} | {prior_seconds / clips:.3f} "
              f"| {clips / total:.3f} | {flops_per_clip * clips / prior_seconds / 1e12:.2f} |")


if __name__ == "__main__":
    main()
