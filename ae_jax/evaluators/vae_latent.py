"""The vae_latent evaluator: a VAE's latent against its prior N(0, I), the metrics peers report. Active units
(Burda et al. 2016: components whose posterior means vary across images by more than a threshold), the aggregate
posterior's KL to the prior from its fitted Gaussian, and its Gaussian total correlation, each with a bootstrap
interval over the points. A plain autoencoder has no posterior variances and no prior: it records that.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ae_jax.evaluators import encode, registry
from ae_jax.numerics import stats
from ae_jax.report import plots
from ae_jax.runtime import make_key

STATISTICS = ("active_units", "kl_to_prior", "total_correlation")


def interval_record(estimate, resampled, bounds: tuple[float, float], count: bool = False) -> dict:
    """{estimate, low, high}: the estimate with its 95% basic bootstrap interval (stats.bootstrap_interval), for a
    count widened to whole counts."""
    low, high = stats.interval_of(estimate, resampled, bounds=bounds)
    if count:
        low, high = float(math.floor(low)), float(math.ceil(high))
    return {"estimate": float(estimate), "low": low, "high": high}


def latent_numbers(mean, log_var, active_threshold: float, resamples: int, seed: int) -> dict:
    """The statistics of `stats.aggregate_posterior` with their intervals, the per-component activity and mean
    posterior variance, and how the intervals were made."""
    whole, resampled = stats.aggregate_posterior(make_key(seed), mean, log_var, active_threshold, resamples)
    n, d = np.shape(mean)
    bounds = {"active_units": (0, d), "kl_to_prior": (0, math.inf), "total_correlation": (0, math.inf)}
    return {
        "applicable": True,
        "n_points": int(n),
        "z_dim": int(d),
        "active_threshold": active_threshold,
        "method": f"bootstrap over points, {resamples} resamples, 95% basic interval",
        **{
            name: interval_record(whole[name], resampled[name], bounds[name], count=name == "active_units")
            for name in STATISTICS
        },
        "activity": whole["activity"].tolist(),
        "mean_posterior_variance": whole["mean_posterior_variance"].tolist(),
    }


def activity_figure(activity, posterior_variance, threshold: float, path: str) -> str:
    """Each component's variance of its posterior means, largest first, on a log axis with the active-unit
    threshold, beside its mean posterior variance in the same order."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    order = np.argsort(-np.asarray(activity), kind="stable")
    activity, posterior_variance = np.asarray(activity)[order], np.asarray(posterior_variance)[order]
    rank = np.arange(1, len(order) + 1)
    zero = int((activity <= 0).sum())
    fig, ax = plt.subplots(figsize=(7, 4))
    colours = plots.series_colours(2)
    ax.plot(rank, np.where(activity > 0, activity, np.nan), "o-", ms=3, color=colours[0], label="Cov_x(E[z_j | x])")
    ax.plot(rank, posterior_variance, "s-", ms=3, color=colours[1], label="E_x[Var(z_j | x)]")
    ax.axhline(threshold, color="k", ls="--", lw=1, label=f"active-unit threshold {threshold:g}")
    ax.set(
        yscale="log",
        xlabel="component, by the variance of its posterior means (largest first)",
        ylabel="variance (latent units squared)",
        title="Active units" + (f" ({zero} components with zero variance not drawn)" if zero else ""),
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    plots.legend_outside(ax)
    return plots.save_figure(fig, path)


def measure(ctx: registry.RunContext, folder: str) -> tuple[dict, dict]:
    """A VAE's active units, aggregate-posterior KL to N(0, I) and total correlation with intervals, and the
    activity figure; for a plain autoencoder, that it does not apply."""
    cfg = ctx.config
    if not cfg.model.variational:
        return {"applicable": False, "reason": "a plain autoencoder: no posterior variances and no prior"}, {}
    c = cfg.vae_latent
    numbers = latent_numbers(
        encode.points(ctx), encode.log_variances(ctx), c.active_threshold, c.bootstrap_resamples, cfg.seed
    )
    png = activity_figure(
        numbers["activity"],
        numbers["mean_posterior_variance"],
        c.active_threshold,
        os.path.join(folder, "active_units.png"),
    )
    return numbers, {"active_units": png}


def _interval(record: dict) -> str:
    return f"{record['low']:.3g} to {record['high']:.3g}"


def view(result: registry.Result, label: str, ks) -> registry.View:
    """Active units, the aggregate posterior's KL to the prior and its total correlation, each with its 95%
    interval; for a plain autoencoder, one row saying it does not apply."""
    n = result.numbers
    if not n["applicable"]:
        return registry.View(rows=[{"VAE latent": f"not applicable: {n['reason']}"}])
    active, kl, tc = (n[name] for name in STATISTICS)
    row = {
        "active units": round(active["estimate"]),
        "active units 95% interval": _interval(active),
        "components": n["z_dim"],
        "aggregate posterior KL to N(0, I) (nats)": kl["estimate"],
        "KL 95% interval": _interval(kl),
        "Gaussian total correlation (nats)": tc["estimate"],
        "total correlation 95% interval": _interval(tc),
        "points": n["n_points"],
    }
    finding = (
        f"{label}: {round(active['estimate'])} of {n['z_dim']} components active (posterior means varying by more "
        f"than {n['active_threshold']:g}; 95% interval {_interval(active)}); the aggregate posterior's fitted "
        f"Gaussian lies {kl['estimate']:.3g} nats ({_interval(kl)}) from the prior N(0, I), its Gaussian total "
        f"correlation {tc['estimate']:.3g} nats ({_interval(tc)}); {n['method']}."
    )
    return registry.View(
        headline={
            "active units": round(active["estimate"]),
            "aggregate KL to N(0, I)": kl["estimate"],
            "total correlation": tc["estimate"],
        },
        rows=[row],
        figures=result.figures,
        findings=[finding],
    )


registry.register(
    registry.Evaluator(
        "vae_latent",
        measure,
        view,
        lambda c: {
            "z": encode.points_digest(c),
            "log_var": encode.log_variances_digest(c) if c.config.model.variational else None,
            "seed": c.config.seed,
        },
        sections=("vae_latent",),
        title="VAE latent against its prior",
        per_run=True,
        needs_run=True,
    )
)
