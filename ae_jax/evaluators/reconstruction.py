"""The reconstruction evaluator: held-out reconstruction metrics of a trained run and a grid of its
reconstructions, measured as training measures them (same images, batch size and key)."""

from __future__ import annotations

import os

import numpy as np

from ae_jax.evaluators import registry


def measure(ctx: registry.RunContext, folder: str) -> tuple[dict, dict]:
    """Held-out reconstruction metrics (per-image means over train.eval_images valid images) and a grid."""
    from ae_jax import sharding
    from ae_jax.train import loop

    config, model, params = ctx.run()
    t = ctx.config.train
    images = ctx.real_images()
    metrics = loop.make_held_out_metrics(model, config, sharding.data_mesh())(params, images[: t.eval_images or None])
    grid = loop.reconstruction_grid(
        loop.make_reconstruct_fn(model, config),
        config,
        params,
        np.asarray(images[: t.grid_images]),
        os.path.join(folder, "reconstructions.png"),
        f"{config.name}: held-out images",
    )
    n = min(len(images), t.eval_images or len(images))
    return {**metrics, "eval_images": n}, {"reconstructions": grid}


def view(result: registry.Result, label: str, ks) -> registry.View:
    """Held-out MSE, PSNR and the KL term's share of the loss; the reconstruction grid."""
    n = result.numbers
    headline = {"held-out mse": n["eval_mse"], "psnr dB": n["eval_psnr"], "kl_share": n["kl_share"]}
    return registry.View(
        headline=headline,
        rows=[{"held-out images": n["eval_images"], **headline}],
        figures=result.figures,
        findings=[
            f"{label} reconstructs held-out images with per-pixel MSE {n['eval_mse']:.3g} "
            f"(PSNR {n['eval_psnr']:.3g} dB)."
        ],
    )


registry.register(
    registry.Evaluator(
        "reconstruction",
        measure,
        view,
        lambda c: {
            "params": c.params_digest(),
            "data": registry.data_inputs(c),
            "seed": c.config.seed,
            "train": {k: getattr(c.config.train, k) for k in ("eval_images", "grid_images", "batch_size")},
        },
        per_run=True,
        needs_run=True,
    )
)
