"""Cost-accuracy plot: one curve per routing policy, single models as points."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from langchain_metallm.bench.report import BenchmarkResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_curves(result: BenchmarkResult, path: str | Path, *, dpi: int = 110) -> Path:
    """Draw accuracy against mean normalised cost and save a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for curve in result.curves:
        xs = [p.cost for p in curve.points]
        ys = [p.accuracy for p in curve.points]
        if curve.policy in result.models:
            ax.scatter(xs, ys, marker="s", color="black", s=22, zorder=3)
            ax.annotate(
                short_name(curve.policy),
                (xs[0], ys[0]),
                textcoords="offset points",
                xytext=(4, 3),
                fontsize=7,
            )
        elif not curve.uses_cost_weight:
            ax.scatter(xs, ys, marker="x", s=50, label=curve.policy, zorder=3)
        else:
            style = "--" if curve.policy == "oracle" else "-"
            ax.plot(xs, ys, style, marker=".", markersize=4, label=curve.policy)
    name, ref = result.reference
    ax.axhline(ref.accuracy, color="grey", linewidth=0.6, linestyle=":")
    for share in (0.25, 0.5):
        ax.axvline(share * ref.cost, color="grey", linewidth=0.6, linestyle=":")
    ax.set_xlabel("mean cost per query (most expensive model = 1)")
    ax.set_ylabel("mean score (accuracy)")
    ax.set_title(
        f"{result.dataset}, {result.split.kind} split (seed {result.split.seed}, "
        f"{result.split.n_test} test queries); "
        f"dotted: {short_name(name)}, 25%/50% cost",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return save_figure(fig, path, dpi)


def save_figure(fig: Figure, path: str | Path, dpi: int) -> Path:
    """Write ``fig`` as a PNG at ``path`` (folders created) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=dpi)
    plt.close(fig)
    return target


def short_name(model: str) -> str:
    return model.rsplit("/", 1)[-1]
