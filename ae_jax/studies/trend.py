"""How the latent space changes with training (issue 30): per trained model its widths, counts, radius peak, value
range, held-out MSE and axis alignment against image presentations; a least-squares line in log-log per fitted
quantity with a Student t interval on its slope; and the rule, written before any number was read, that says
whether and at how many presentations a quantity would reach the author's regime.

The rule, for a quantity y (plus `offset`: 1 for counts, so a zero count is fitted too) and a bound y* on it:
log10(y + offset) = a + b log10(presentations) by least squares over the grid points, b's 95% interval
b +- t(n - 2) se(b). The line reaches y* at P*; its interval is where the line's 95% confidence band reaches y*
(inverse prediction), which is finite exactly when b's interval excludes 0.
- "not fitted": fewer than 3 points, or one presentations value (no slope to estimate);
- "reached": the whole band is within the bound at the grid's largest presentations (already there; P* and its
  interval given when b's interval is below 0);
- "flattens before it": b's interval includes 0, or P* lies more than EXTRAPOLATION_LIMIT x beyond the grid's
  largest presentations (an extrapolation that far is not a finding);
- "not reached": b's interval lies above 0 (the quantity grows with training, away from the bound);
- "reached": b's interval lies below 0 and P* is within EXTRAPOLATION_LIMIT x the grid's largest presentations.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats as scipy_stats  # noqa: E402

from ae_jax.evaluators.evidence import AUTHOR_Z_DIM, COUNT_THRESHOLDS  # noqa: E402
from ae_jax.numerics import stats  # noqa: E402
from ae_jax.report import pages, plots  # noqa: E402
from ae_jax.studies.claims import COUNT_BOUNDS, POST_II  # noqa: E402
from ae_jax.studies.pipeline import ModelResult  # noqa: E402

REACHED, NOT_REACHED, FLATTENS, NOT_FITTED = "reached", "not reached", "flattens before it", "not fitted"
EXTRAPOLATION_LIMIT = 10.0  # a crossing past this many times the grid's largest presentations is not trusted
LEVEL = 0.95
COUNTS = ("fwhm_ge_1", "fwhm_ge_1.5", "fwhm_ge_3", "mu_ge_0.25")  # post II's counts the study follows
_THRESHOLDS = {key: next((what, t) for k, what, t in COUNT_THRESHOLDS if k == key) for key in COUNTS}
# The author's median FWHM is below 1: post II has at most 40 of 256 components with a FWHM >= 1, so at least 216
# of 256 (the median's two middle ones among them) are below it. Reaching it is necessary, not sufficient.
AUTHOR_MEDIAN_FWHM = _THRESHOLDS["fwhm_ge_1"][1]


# ---------------------------------------------------------------------------------------------
# The fit and the rule.


@dataclasses.dataclass(frozen=True)
class Trend:
    """log10(y + offset) = y_mean + slope (log10 presentations - x_mean), fitted over n points."""

    slope: float
    half_width: float  # of the slope's LEVEL interval: t(n - 2) se(slope)
    x_mean: float
    y_mean: float
    sxx: float  # sum of squared deviations of log10 presentations
    residual_sd: float
    t: float  # the Student t quantile the intervals use
    n: int
    offset: float

    @property
    def slope_interval(self) -> tuple[float, float]:
        return self.slope - self.half_width, self.slope + self.half_width

    def crossing(self, bound: float) -> float:
        """Presentations at which the fitted line reaches bound."""
        return 10.0 ** (self.x_mean + (math.log10(bound + self.offset) - self.y_mean) / self.slope)

    def crossing_interval(self, bound: float) -> tuple[float, float]:
        """Presentations at which the line's LEVEL band reaches bound (Fieller's inverse prediction: the roots of
        (d - slope u)^2 = half-width(u)^2 in u = log10 P - x_mean); finite when the slope's interval excludes 0."""
        d = math.log10(bound + self.offset) - self.y_mean
        g, c = self.half_width**2, (self.t * self.residual_sd) ** 2 / self.n
        a = self.slope**2 - g
        if a <= 0:
            raise ValueError(f"the slope's interval {self.slope_interval} includes 0: the band never leaves the bound")
        root = math.sqrt(a * c + g * d * d)
        ends = sorted(((self.slope * d - root) / a, (self.slope * d + root) / a))
        return 10.0 ** (self.x_mean + ends[0]), 10.0 ** (self.x_mean + ends[1])

    def band(self, presentations) -> np.ndarray:
        """(3, len(presentations)): the fitted values and the LEVEL confidence band of the line, in y's units."""
        return np.asarray(_band(jnp.log10(jnp.asarray(presentations, jnp.float32)), *self._line()))

    def _line(self) -> tuple[float, ...]:
        return self.slope, self.x_mean, self.y_mean, self.sxx, self.residual_sd, self.t, self.n, self.offset


@jax.jit
def _least_squares(x, y) -> jax.Array:
    """[slope, x_mean, y_mean, sxx, residual sd] of the least-squares line of y on x."""
    x_mean, y_mean = jnp.mean(x), jnp.mean(y)
    sxx = jnp.sum(jnp.square(x - x_mean))
    slope = jnp.sum((x - x_mean) * (y - y_mean)) / sxx
    residuals = y - y_mean - slope * (x - x_mean)
    return jnp.stack([slope, x_mean, y_mean, sxx, jnp.sqrt(jnp.sum(jnp.square(residuals)) / (x.shape[0] - 2))])


@jax.jit
def _band(x, slope, x_mean, y_mean, sxx, residual_sd, t, n, offset) -> jax.Array:
    centre = y_mean + slope * (x - x_mean)
    half = t * residual_sd * jnp.sqrt(1 / n + jnp.square(x - x_mean) / sxx)
    return jnp.power(10.0, jnp.stack([centre, centre - half, centre + half])) - offset


def fit(presentations: Sequence[float], values: Sequence[float], offset: float = 0.0) -> Trend | None:
    """The log-log least-squares trend of values (+ offset) on presentations; None with fewer than 3 points or a
    single presentations value."""
    x = jnp.log10(jnp.asarray(presentations, jnp.float32))
    if len(x) < 3 or len(set(presentations)) < 2:
        return None
    y = jnp.log10(jnp.asarray(values, jnp.float32) + offset)
    slope, x_mean, y_mean, sxx, residual_sd = (float(v) for v in _least_squares(x, y))
    n = len(x)
    t = float(scipy_stats.t.ppf(0.5 + LEVEL / 2, n - 2))
    half = t * residual_sd / math.sqrt(sxx)
    return Trend(slope, half, x_mean, y_mean, sxx, residual_sd, t, n, offset)


@dataclasses.dataclass(frozen=True)
class Verdict:
    outcome: str
    reason: str
    presentations: float | None = None  # where the line reaches the bound
    interval: tuple[float, float] | None = None


def decide(trend: Trend | None, bound: float, largest: float) -> Verdict:
    """The rule of the module's docstring: does the trend reach `bound`, within EXTRAPOLATION_LIMIT x `largest`
    (the grid's largest presentations)?"""
    if trend is None:
        return Verdict(NOT_FITTED, "fewer than 3 grid points or a single presentations value")
    low, high = trend.slope_interval
    slope = f"slope {trend.slope:.3g} [{low:.3g}, {high:.3g}] per decade of presentations"
    if trend.band([largest])[2, 0] <= bound:
        within = f"{slope}; the fit's band is within {bound:g} at the grid's largest {largest:.3g} presentations"
        if high >= 0:
            return Verdict(REACHED, within)
        at, interval = trend.crossing(bound), trend.crossing_interval(bound)
        return Verdict(REACHED, f"{within}, from {at:.3g} [{interval[0]:.3g}, {interval[1]:.3g}]", at, interval)
    if low <= 0 <= high:
        return Verdict(FLATTENS, f"{slope} includes 0")
    if low > 0:
        return Verdict(NOT_REACHED, f"{slope}: grows with training, away from the bound")
    at = trend.crossing(bound)
    interval = trend.crossing_interval(bound)
    where = f"the line reaches {bound:g} at {at:.3g} presentations [{interval[0]:.3g}, {interval[1]:.3g}]"
    if at > EXTRAPOLATION_LIMIT * largest:
        return Verdict(
            FLATTENS,
            f"{slope}; {where}, more than {EXTRAPOLATION_LIMIT:g}x past the grid's largest {largest:.3g}",
            at,
            interval,
        )
    return Verdict(REACHED, f"{slope}; {where}", at, interval)


# ---------------------------------------------------------------------------------------------
# The grid points.


_SUMMARY_PREFIX = {"|mu|": "mu_abs_ge_", "FWHM": "fwhm_ge_"}  # stats.summary_counts' names of the counts


def count_column(key: str) -> str:
    """A count's column, e.g. "FWHM >= 1.5"."""
    what, threshold = _THRESHOLDS[key]
    return f"{what} >= {threshold:g}"


@functools.partial(jax.jit, static_argnames="k")
def _widths(fwhm, std, pca_ratios, k: int) -> jax.Array:
    """[median FWHM, share of the total variance in the k widest coordinate axes, ... in the k first principal
    axes]: how axis-aligned the variance is (the second is at most the third)."""
    variances = jnp.square(jnp.asarray(std))
    widest = jnp.sort(variances)[::-1][:k]
    principal = jnp.sort(jnp.asarray(pca_ratios))[::-1][:k]
    return jnp.stack([jnp.median(jnp.asarray(fwhm)), jnp.sum(widest) / jnp.sum(variances), jnp.sum(principal)])


def coordinate_column(k: int) -> str:
    return f"variance share, {k} widest coordinate axes"


def principal_column(k: int) -> str:
    return f"variance share, {k} first principal axes"


def point_row(m: ModelResult, aligned_axes: int) -> dict:
    """One grid point's table row from its distribution and reconstruction results; presentations are the
    images its training presented (steps x batch size)."""
    a, r = m.results["distribution"].numbers, m.results["reconstruction"].numbers
    k = min(aligned_axes, a["z_dim"])
    widths = _widths(a["fwhm"], a["std"], a["pca_explained_variance_ratio"], k)
    median, coordinate, principal = (float(v) for v in widths)
    by_kind = {kind: [t for what, t in _THRESHOLDS.values() if what == kind] for kind in _SUMMARY_PREFIX}
    counted = stats.summary_counts(a["mu"], a["fwhm"], None, by_kind["|mu|"], by_kind["FWHM"])
    counts = {count_column(key): counted[f"{_SUMMARY_PREFIX[what]}{t:g}"] for key, (what, t) in _THRESHOLDS.items()}
    presentations = int(m.train["step"]) * m.config.train.batch_size
    low, high = a["counts"]["value_range"]
    return {
        "data.num_images": m.config.data.num_images,
        "epochs": m.config.train.epochs,
        "images per epoch": presentations // m.config.train.epochs,
        "presentations": presentations,
        "run": m.key[:8],
        "z_dim": a["z_dim"],
        "median FWHM": median,
        **counts,
        "radius peak": a["radius"]["peak"],
        "value min": low,
        "value max": high,
        "held-out MSE": r["eval_mse"],
        coordinate_column(k): coordinate,
        principal_column(k): principal,
    }


# ---------------------------------------------------------------------------------------------
# The fits, the figure and the page.


@dataclasses.dataclass(frozen=True)
class Fitted:
    """One fitted quantity: its column, the author's bound on it, the offset of its logarithm, trend and verdict."""

    column: str
    bound: float
    bound_text: str
    offset: float
    trend: Trend | None
    verdict: Verdict


def fitted_quantities(rows: Sequence[dict]) -> list[Fitted]:
    """The median FWHM and each count (COUNTS) fitted against presentations and decided against the author's
    bound (a count's bound, per 256 components in post II, scaled to the grid's z_dim)."""
    presentations = [row["presentations"] for row in rows]
    largest = max(presentations)
    z_dim = rows[0]["z_dim"]
    quantities = [("median FWHM", AUTHOR_MEDIAN_FWHM, f"{AUTHOR_MEDIAN_FWHM:g} (post II's counts)", 0.0)]
    for key in COUNTS:
        bound = COUNT_BOUNDS[key][0] * z_dim / AUTHOR_Z_DIM
        quantities.append((count_column(key), bound, f"{bound:g} (post II: {COUNT_BOUNDS[key][0]} of 256)", 1.0))
    fitted = []
    for column, bound, text, offset in quantities:
        line = fit(presentations, [row[column] for row in rows], offset)
        fitted.append(Fitted(column, bound, text, offset, line, decide(line, bound, largest)))
    return fitted


def verdict_row(f: Fitted) -> dict:
    v = f.verdict
    low, high = f.trend.slope_interval if f.trend else (math.nan, math.nan)
    return {
        "quantity": f.column,
        "author's regime": f"<= {f.bound_text}",
        "fitted": f"log10({'count + 1' if f.offset else f.column}) on log10(presentations)",
        "slope per decade": f.trend.slope if f.trend else math.nan,
        "slope low": low,
        "slope high": high,
        "reaches the bound at (presentations)": v.presentations if v.presentations is not None else math.nan,
        "low": v.interval[0] if v.interval else math.nan,
        "high": v.interval[1] if v.interval else math.nan,
        "verdict": v.outcome,
        "why": v.reason,
    }


def figure(rows: Sequence[dict], fitted: Sequence[Fitted], aligned_axes: int, path: str) -> str:
    """Every quantity against presentations (log x, one range for all, reaching the farthest crossing), one panel
    each, points coloured by training-set size; the fitted ones with their line, LEVEL band and the author's
    bound."""
    k = min(aligned_axes, rows[0]["z_dim"])
    sizes = sorted({row["images per epoch"] for row in rows})
    colours = dict(zip(sizes, plots.series_colours(len(sizes), ordered=True)))
    unfitted = [
        ("radius peak", "radius peak", "radius peak"),
        ("largest |value|", "largest |value|", None),
        ("held-out MSE", "held-out MSE", "held-out MSE"),
        (f"variance in the {k} widest coordinate axes", "share of the total variance", coordinate_column(k)),
        (f"variance in the {k} first principal axes", "share of the total variance", principal_column(k)),
    ]
    used = len(fitted) + len(unfitted)
    columns, panel_rows = 3, -(-(used + 1) // 3)  # and a panel for the legend
    fig, axes = plt.subplots(panel_rows, columns, figsize=(4.2 * columns, 3.2 * panel_rows))
    axes = axes.ravel()
    presentations = np.array([row["presentations"] for row in rows], np.float64)
    crossings = [f.verdict.presentations for f in fitted if f.verdict.outcome == REACHED and f.verdict.presentations]
    left, right = presentations.min() / 1.5, max([presentations.max(), *crossings]) * 1.5
    xs = np.geomspace(left, right, 100)
    for ax, f in zip(axes, fitted):
        if f.trend is not None:
            centre, low, high = f.trend.band(xs)
            ax.plot(xs, centre, color="#444444", lw=1.2, label="least-squares fit")
            ax.fill_between(xs, low, high, color="#444444", alpha=0.15, lw=0, label=f"{LEVEL:.0%} band of the fit")
        ax.axhline(f.bound, color="#d62728", ls="--", lw=1, label="the author's regime (bound)")
        _points(ax, rows, [row[f.column] for row in rows], colours)
        ax.set_ylabel(f.column)
        ax.set_title(f"{f.column}: {f.verdict.outcome}", fontsize=9)
        if f.column == "median FWHM":
            ax.set_yscale("log")
            plots.plain_log_ticks(ax.yaxis)
    for ax, (title, ylabel, column) in zip(axes[len(fitted) :], unfitted):
        values = [max(-r["value min"], r["value max"]) if column is None else r[column] for r in rows]
        _points(ax, rows, values, colours)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel)
    for ax in axes[:used]:
        ax.set_xscale("log")
        ax.set_xlim(left, right)
        plots.plain_log_ticks(ax.xaxis)
        ax.set_xlabel("image presentations (images x epochs)")
    handles, labels = axes[0].get_legend_handles_labels()
    axes[used].legend(handles, [plots.wrap_label(label) for label in labels], loc="center", fontsize=8)
    for ax in axes[used:]:
        ax.axis("off")
    return plots.save_figure(fig, path)


def _points(ax, rows: Sequence[dict], values: Sequence[float], colours: dict) -> None:
    """One quantity's grid points (values in row order), a line per training-set size in its colour."""
    for size, colour in colours.items():
        chosen = [(row["presentations"], v) for row, v in zip(rows, values) if row["images per epoch"] == size]
        ax.plot(*zip(*sorted(chosen)), "o-", color=colour, lw=0.8, ms=4, label=f"{size:,} images per epoch")


def rule_text() -> str:
    """The author's regime and the rule that decides it, as the page states them."""
    return (
        f"The author's regime: median FWHM <= {AUTHOR_MEDIAN_FWHM:g} in the latent's own units, because {POST_II} "
        f"has at most {COUNT_BOUNDS['fwhm_ge_1'][0]} of 256 components with a FWHM >= 1, so its median is below 1 "
        "(necessary, not sufficient); each count against post II's bound, scaled to our z_dim. Rule (written "
        "before any number was read): log10 of the quantity (counts + 1) on log10 presentations by least squares, "
        f"the slope's {LEVEL:.0%} Student t interval; the fitted line reaches the bound at "
        "P* (its interval: where the line's band reaches the bound). Reached: the band within the bound at the "
        "grid's largest presentations, or the slope's interval below 0 and "
        f"P* within {EXTRAPOLATION_LIMIT:g}x the grid's largest presentations; flattens before it: the interval "
        f"includes 0 or P* lies farther out; not reached: the interval above 0. One seed per grid point: the "
        "interval is over the grid's points, not over seeds."
    )


def headline_text(fit_row: dict) -> str:
    """The verdict on the author's regime, from the median FWHM's row of the fits table."""
    return f"The author's regime (median FWHM <= {AUTHOR_MEDIAN_FWHM:g}): {fit_row['verdict']}; {fit_row['why']}."


def sections(rows: Sequence[dict], aligned_axes: int, out: str) -> tuple[list[tuple[str, list[str]]], list[dict]]:
    """The study page's sections (the verdict on the author's regime, the rule, the figure, the grid's table) and
    the table of fits."""
    fitted = fitted_quantities(rows)
    fits = [verdict_row(f) for f in fitted]
    headline = headline_text(fits[0])
    path = figure(rows, fitted, aligned_axes, os.path.join(out, "training_trend.png"))
    parts = [
        pages.paragraph(headline),
        pages.table(fits),
        pages.paragraph(rule_text()),
        pages.figure(path, "the quantities against image presentations, the fits with their bands"),
        pages.table(rows),
    ]
    return [("How the latent space changes with training", parts)], fits
