"""Convert the official Jukebox `5b` checkpoints into one safetensors file for the `jukebox` encoder.

Reads `vqvae.pth.tar` and `prior_level_2.pth.tar` once (the legacy pickle format cannot be
memory-mapped, so this needs ~11 GB of RAM), keeps only what encoding needs up to block --layers
(133 VQ-VAE tensors, 7 + 12 per block of the prior) in their stored dtypes, and writes them with the
model config. Later runs memory-map that file and read only the blocks they use.

    python preprocessing/convert_jukebox.py --vqvae ~/jukebox/5b/vqvae.pth.tar \\
        --prior ~/jukebox/5b/prior_level_2.pth.tar --layers 36 --out weights/jukebox-5b-L36.safetensors
    # a model other than 5b: give its hyperparameters ({"vqvae": {...}, "prior": {...}}, Jukebox's names)
    python preprocessing/convert_jukebox.py ... --hparams ../shared/reference/jukebox/tiny/hparams.json

The files hold pickles: they are read with torch.load(weights_only=True), then a restricted loader
that rebuilds only tensors; --trusted allows arbitrary unpickling (only for files you trust).
"""

from __future__ import annotations

import argparse
import sys
import time

from llark.encoders.jukebox import JukeboxConfig
from llark.encoders.jukebox_weights import CheckpointError, convert


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vqvae", required=True, help="the official 5b/vqvae.pth.tar")
    parser.add_argument("--prior", required=True, help="the official 5b/prior_level_2.pth.tar")
    parser.add_argument("--layers", type=int, default=36, help="keep prior blocks 1..LAYERS (LLark: 36 of 72)")
    parser.add_argument("--out", required=True, help="the safetensors file to write")
    parser.add_argument("--hparams", help="JSON with the model's hyperparameters when it is not 5b")
    parser.add_argument("--trusted", action="store_true", help="allow arbitrary unpickling (trusted files only)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    try:
        overrides = JukeboxConfig.from_hparams_file(args.hparams).to_dict() if args.hparams else {}
        summary = convert(args.vqvae, args.prior, args.layers, args.out, overrides, args.trusted)
    except (CheckpointError, ValueError, OSError) as err:
        raise SystemExit(f"convert_jukebox: {err}") from err
    print(f"[convert_jukebox] {summary['tensors']} tensors, {summary['bytes'] / 1e9:.2f} GB, blocks 1..{args.layers} "
          f"-> {args.out} ({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
