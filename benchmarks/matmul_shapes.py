"""What changing matmul shapes cost a bf16 training step on CPU: why packed rows are rounded up to a multiple of 8
(data.PACKED_LENGTH_MULTIPLE) and the LM head's rows to a multiple of 64 (model.LABEL_ROWS_MULTIPLE).

    python benchmarks/matmul_shapes.py                 # 3000 steps of each kind, 2 threads
    python benchmarks/matmul_shapes.py --steps 1000 --rows 2000 4000

Times the forward and backward pass of one Linear(192, 512) (configs/tiny.yaml's MLP) under bf16 autocast on
inputs whose row count is drawn anew every step from --rows, as a packed batch's rows x length is: as drawn,
rounded up to a multiple of 8, to a multiple of 64, and always the largest. Where the CPU computes bf16
(llark.distributed.cpu_computes_bf16), PyTorch runs these matmuls with oneDNN, which JIT-compiles a kernel for
each new shape and keeps a bounded number of them (ONEDNN_PRIMITIVE_CACHE_CAPACITY, 1024 by default): with a
new shape nearly every step the compiling never stops and the process keeps growing. Prints ms per step and
the peak resident memory after each thousand steps.
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import time

import torch

from llark.distributed import cpu_computes_bf16


def run(multiple: int, steps: int, rows_range: tuple[int, int]) -> str:
    """ms per step over each thousand steps, and the peak memory then; `multiple` 0: always the largest."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(192, 512)
    draw = random.Random(0)
    started, report = time.perf_counter(), []
    for step in range(1, steps + 1):
        rows = draw.randint(*rows_range)
        rows = rows_range[1] if multiple == 0 else -(-rows // multiple) * multiple
        x = torch.randn(rows, 192, requires_grad=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = layer(x)
        y.float().sum().backward()
        if step % 1000 == 0:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
            report.append(f"{(time.perf_counter() - started):.1f} ms ({peak:,} MB)")  # 1000 steps: s -> ms per step
            started = time.perf_counter()
    return ", ".join(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000, help="steps of each kind (a multiple of 1000)")
    parser.add_argument("--rows", type=int, nargs=2, default=(2000, 4000), metavar=("LOW", "HIGH"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--multiple", type=int, default=-1, help=argparse.SUPPRESS)  # one kind, in this process
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.multiple >= 0:
        print(run(args.multiple, args.steps, tuple(args.rows)))
        return
    print(f"torch {torch.__version__}, {args.threads} thread(s); this CPU "
          f"{'computes' if cpu_computes_bf16() else 'emulates'} bf16; rows drawn from {args.rows[0]}-{args.rows[1]}; "
          "ms per step over each thousand steps (peak memory of the process)")
    kinds = {"as drawn": 1, "multiple of 8": 8, "multiple of 64": 64, "always the largest": 0}
    for name, multiple in kinds.items():  # each in its own process: a fresh oneDNN cache and memory
        command = [sys.executable, __file__, "--steps", str(args.steps), "--rows", *map(str, args.rows),
                   "--threads", str(args.threads), "--multiple", str(multiple)]
        result = subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()
        print(f"{name:>18}: {result}")


if __name__ == "__main__":
    main()
