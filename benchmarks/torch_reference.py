"""PyTorch twin of an ae_jax conv autoencoder preset, timed on training steps; prints one JSON line.

Same layers, shapes, FLOPs, loss (BCE on logits summed over pixels, mean over the batch), Adam and
batch as ae_jax; 'same' convolutions pad symmetrically (PyTorch style) instead of (0, 1), which changes no
shape or FLOP. Run by benchmarks/train_bench.py (CPU) and benchmarks/device_check.py (GPU) in its own process,
or alone:
    python benchmarks/torch_reference.py --batch 64 --steps 20 --threads 2
    python benchmarks/torch_reference.py --device cuda --batch 256 --amp bf16 --compile
On a GPU the batches sit on the device beforehand and the loss is read once at the end, so the timed loop
measures the device, not host transfers or per-step synchronisation.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import steady  # benchmarks/ is on sys.path when run as a script
import torch
from reference_args import reference_parser
from torch import nn

from ae_jax import config as config_lib


def same_conv_transpose_padding(k: int, s: int) -> tuple[int, int]:
    """(padding, output_padding) making ConvTranspose2d map size n to n * s."""
    padding = math.ceil(max(k - s, 0) / 2)
    return padding, s - k + 2 * padding


class Autoencoder(nn.Module):
    """Conv encoder -> Dense(z) -> Dense -> ConvTranspose decoder producing logits, as ae_jax.model.models (AE)."""

    def __init__(self, m: config_lib.ModelConfig, image_size: int, channels: int):
        super().__init__()
        if m.encoder_conv_padding != "same" or m.decoder_conv_t_padding != "same" or m.act != "leaky_relu":
            raise ValueError("the PyTorch reference implements 'same' padding and leaky_relu only")
        layers, c = [], channels
        for f, k, s in zip(m.encoder_conv_filters, m.encoder_conv_kernel_size, m.encoder_conv_strides):
            layers += [nn.Conv2d(c, f, k, s, padding=k // 2), nn.LeakyReLU(0.01)]
            c = f
        self.side = config_lib.feature_map_sizes(
            image_size, m.encoder_conv_strides, m.encoder_conv_kernel_size, "same"
        )[-1]
        self.encoder = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * self.side**2, m.z_dim))
        self.decoder_input = nn.Linear(m.z_dim, c * self.side**2)
        layers, n = [], len(m.decoder_conv_t_filters)
        for i, (f, k, s) in enumerate(
            zip(m.decoder_conv_t_filters, m.decoder_conv_t_kernel_size, m.decoder_conv_t_strides)
        ):
            padding, output_padding = same_conv_transpose_padding(k, s)
            layers.append(nn.ConvTranspose2d(c, f, k, s, padding, output_padding))
            layers += [nn.LeakyReLU(0.01)] if i < n - 1 else []
            c = f
        self.decoder = nn.Sequential(*layers)
        self.last_filters = m.encoder_conv_filters[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.decoder_input(self.encoder(x)).view(-1, self.last_filters, self.side, self.side)
        return self.decoder(h.contiguous(memory_format=torch.channels_last))


def main(argv=None) -> dict:
    p = reference_parser(__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda")
    p.add_argument("--amp", choices=("none", "bf16"), default="none", help="bf16: autocast the forward pass")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (default mode)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    config = config_lib.load(args.config)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d, m = config.data, config.model
    model = Autoencoder(m, d.image_size, d.image_channels).to(device, memory_format=torch.channels_last)
    forward = torch.compile(model) if args.compile else model
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.learning_rate)
    bce = nn.BCEWithLogitsLoss(reduction="sum")
    rng = np.random.default_rng(0)
    shape = (args.batch, d.image_size, d.image_size, d.image_channels)
    pool = [torch.from_numpy(rng.integers(0, 256, shape, np.uint8)).to(device) for _ in range(4)]
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=args.amp == "bf16")

    def step(batch: torch.Tensor) -> torch.Tensor:
        x = batch.permute(0, 3, 1, 2).float().div_(255.0)  # NHWC memory = channels_last
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            logits = forward(x)
        loss = bce(logits.float(), x) / x.shape[0]
        loss.backward()
        optimizer.step()
        return loss.detach()

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    batches = (pool[i % len(pool)] for i in range(10**9))
    # The host heap's growth is a CPU matter: on a GPU just --warmup steps, rounded up to tens (device_check's budget).
    quiet = steady.QUIET_STEPS if device.type == "cpu" else 0
    warmup_steps = steady.warm_up(lambda: step(next(batches)), lambda loss: synchronize(), args.warmup, quiet)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        loss = step(next(batches))
    synchronize()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    how = ["compiled" if args.compile else "eager", "channels_last"] + (["bf16 autocast"] if args.amp == "bf16" else [])
    result = {
        "framework": f"pytorch {torch.__version__.split('+')[0]} ({', '.join(how)})",
        "images_per_s": args.batch * args.steps / wall,
        "ms_per_step": 1e3 * wall / args.steps,
        "cpu_ms_per_step": 1e3 * cpu / args.steps,
        "threads": torch.get_num_threads(),
        "warmup_steps": warmup_steps,
        "loss": loss.item(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
