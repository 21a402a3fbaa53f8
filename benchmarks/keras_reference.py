"""Keras 3 (TensorFlow backend) twin of an ae_jax conv autoencoder preset, timed in `fit`; prints one JSON line.

Channels-last, the same layers, padding, loss (BCE on logits summed over pixels, mean over the batch),
Adam and batch as ae_jax. Run by benchmarks/train_bench.py in its own process, or alone:
    python benchmarks/keras_reference.py --batch 64 --steps 20 --threads 2
"""

from __future__ import annotations

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from reference_args import reference_parser  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from ae_jax import config as config_lib  # noqa: E402


def build_model(m: config_lib.ModelConfig, image_size: int, channels: int) -> keras.Model:
    """uint8 images -> logits, as ae_jax.model.models (AE)."""
    if m.act != "leaky_relu":
        raise ValueError("the Keras reference implements leaky_relu only")
    images = keras.Input((image_size, image_size, channels), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(images)
    for f, k, s in zip(m.encoder_conv_filters, m.encoder_conv_kernel_size, m.encoder_conv_strides):
        x = keras.layers.LeakyReLU(0.01)(keras.layers.Conv2D(f, k, s, padding=m.encoder_conv_padding)(x))
    shape = x.shape[1:]
    z = keras.layers.Dense(m.z_dim)(keras.layers.Flatten()(x))
    x = keras.layers.Reshape(shape)(keras.layers.Dense(int(np.prod(shape)))(z))
    n = len(m.decoder_conv_t_filters)
    for i, (f, k, s) in enumerate(
        zip(m.decoder_conv_t_filters, m.decoder_conv_t_kernel_size, m.decoder_conv_t_strides)
    ):
        x = keras.layers.Conv2DTranspose(f, k, s, padding=m.decoder_conv_t_padding)(x)
        x = keras.layers.LeakyReLU(0.01)(x) if i < n - 1 else x
    return keras.Model(images, x)


def summed_bce(images, logits):
    """Per-image BCE on logits summed over pixels (Keras averages it over the batch)."""
    targets = tf.cast(images, tf.float32) / 255.0
    return tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(targets, logits), axis=[1, 2, 3])


def main(argv=None) -> dict:
    p = reference_parser(__doc__.splitlines()[0])
    p.add_argument(
        "--jit-compile",
        choices=("auto", "true", "false"),
        default="true",
        help="Model.compile(jit_compile=...): XLA (fastest here) or TensorFlow's own kernels",
    )
    args = p.parse_args(argv)
    config = config_lib.load(args.config)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(0)
    d = config.data
    model = build_model(config.model, d.image_size, d.image_channels)
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    model.compile(optimizer=keras.optimizers.Adam(config.train.learning_rate), loss=summed_bce, jit_compile=jit)
    rng = np.random.default_rng(0)
    images = rng.integers(
        0, 256, (args.batch * max(args.steps, args.warmup), d.image_size, d.image_size, d.image_channels), np.uint8
    )
    model.fit(
        images[: args.batch * args.warmup],
        images[: args.batch * args.warmup],
        batch_size=args.batch,
        epochs=1,
        verbose=0,
        shuffle=False,
    )
    wall, cpu = time.perf_counter(), time.process_time()
    history = model.fit(
        images[: args.batch * args.steps],
        images[: args.batch * args.steps],
        batch_size=args.batch,
        epochs=1,
        verbose=0,
        shuffle=False,
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    framework = f"keras {keras.__version__} / tensorflow {tf.__version__} (fit, jit_compile={args.jit_compile})"
    result = {
        "framework": framework,
        "images_per_s": args.batch * args.steps / wall,
        "ms_per_step": 1e3 * wall / args.steps,
        "cpu_ms_per_step": 1e3 * cpu / args.steps,
        "threads": args.threads or os.cpu_count(),
        "loss": float(history.history["loss"][-1]),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
