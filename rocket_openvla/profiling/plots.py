"""PNG figures of the profiling records: heatmaps (one panel per matrix) and curves over training steps.

Figures are drawn on matplotlib's Agg canvas (no display, no global backend switch) and written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rocket_openvla.files import atomic_write

ANNOTATE_UP_TO = 12  # write the value into each cell of matrices up to this size
DPI = 80


@dataclass
class Panel:
    """One heatmap: `matrix [R, C]` (None: no value) with its row/column labels."""

    matrix: Sequence[Sequence[float | None]]
    rows: list[str]
    columns: list[str]
    title: str
    row_label: str = ""
    column_label: str = ""
    limits: tuple[float, float] | None = (0.0, 1.0)  # colour range; None: the matrix's own range
    colormap: str = "viridis"
    marks: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # legend label -> cells to mark


@dataclass
class Curves:
    """Lines over training steps: `series` label -> one value per step."""

    steps: list[int]
    series: dict[str, list[float | None]]
    title: str
    ylabel: str


MARKERS = (("o", "black"), ("x", "red"), ("s", "orange"))


def _draw_panel(axes: Any, panel: Panel, figure: Figure) -> None:
    values = np.array([[np.nan if v is None else v for v in row] for row in panel.matrix], dtype=float)
    low, high = panel.limits if panel.limits is not None else (np.nanmin(values), np.nanmax(values))
    image = axes.imshow(values, cmap=panel.colormap, vmin=low, vmax=high if high > low else low + 1e-6,
                        aspect="auto", origin="lower", interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    step_r, step_c = max(1, len(panel.rows) // 16), max(1, len(panel.columns) // 16)
    axes.set_yticks(range(0, len(panel.rows), step_r), panel.rows[::step_r], fontsize=7)
    axes.set_xticks(range(0, len(panel.columns), step_c), panel.columns[::step_c], fontsize=7, rotation=90)
    axes.set_ylabel(panel.row_label, fontsize=8)
    axes.set_xlabel(panel.column_label, fontsize=8)
    axes.set_title(panel.title, fontsize=9)
    if max(values.shape) <= ANNOTATE_UP_TO:
        digits = 3 if high - low < 0.05 else 2  # enough to tell close values apart
        for (r, c), value in np.ndenumerate(values):
            if np.isfinite(value):
                axes.text(c, r - 0.3 if panel.marks else r, f"{value:.{digits}f}", ha="center", va="center", fontsize=6,
                          color="black", bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "alpha": 0.6,
                                               "linewidth": 0})
    for (label, cells), (marker, color) in zip(panel.marks.items(), MARKERS):
        if cells:
            rows, columns = zip(*cells)
            style = {"c": color} if marker == "x" else {"facecolors": "none", "edgecolors": color}
            axes.scatter(columns, rows, marker=marker, s=90, linewidths=1.6, label=label, zorder=3, **style)
    if panel.marks:
        axes.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=len(panel.marks),
                    framealpha=0.7)


def _draw_curves(axes: Any, curves: Curves) -> None:
    for label, values in curves.series.items():
        axes.plot(curves.steps, [np.nan if v is None else v for v in values], marker="o", markersize=3, label=label)
    axes.set_xlabel("training step", fontsize=8)
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set_ylabel(curves.ylabel, fontsize=8)
    axes.set_title(curves.title, fontsize=9)
    axes.tick_params(labelsize=7)
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)


def save_figure(path: str | Path, panels: Sequence[Panel], curves: Curves | None = None, title: str = "") -> Path:
    """One row of heatmaps (and a curves panel) as a PNG at `path`; returns the path."""
    count = len(panels) + (curves is not None)
    figure = Figure(figsize=(3.9 * count, 3.6), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, count, squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        _draw_panel(ax, panel, figure)
    if curves is not None:
        _draw_curves(axes[-1], curves)
    if title:
        figure.suptitle(title, fontsize=10)
    path = Path(path)
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=DPI))
    return path


def cka_figure(record: dict[str, Any], path: str | Path,
               marks: dict[str, list[tuple[int, int]]] | None = None) -> Path:
    """The CKA heatmap (rows: student `hidden_states`, columns: teacher layers), with chosen pairs marked."""
    panel = Panel(record["matrix"], [str(s) for s in record["student_layers"]],
                  [str(t) for t in record["teacher_layers"]],
                  f"CKA ({record['estimator']}, N={record['num_samples']})", "student hidden_states",
                  "teacher layer", limits=None, marks=marks or {})
    return save_figure(path, [panel], title=f"{record['backbone']} vs {record['teacher']}")


def gradient_figure(record: dict[str, Any], path: str | Path) -> Path:
    """A cosine heatmap per projector layout (at the latest step) and, over several steps, the mean off-diagonal
    cosine per layout."""
    pairs = record["pairs"]
    panels = [Panel(layout["steps"][-1]["matrix"], pairs, pairs, f"{name} (step {layout['steps'][-1]['step']})",
                    "pair", "pair", (-1.0, 1.0), "RdBu_r")
              for name, layout in record["layouts"].items()]
    first = next(iter(record["layouts"].values()))["steps"]
    curves = None
    if len(first) > 1:
        curves = Curves([s["step"] for s in first],
                        {name: [s["mean_off_diagonal"] for s in layout["steps"]]
                         for name, layout in record["layouts"].items()},
                        "gradient cosine between pairs", "mean off-diagonal cosine")
    return save_figure(path, panels, curves, title="alignment-gradient cosine between layer pairs")


def projector_figure(record: dict[str, Any], path: str | Path) -> Path:
    """Weight similarity (and output / input / teacher similarity) of the pairs' projectors at the latest step; over
    several steps, the mean off-diagonal weight similarity."""
    pairs, latest = record["pairs"], record["steps"][-1]
    when = f"step {latest['step']}" if "step" in latest else "release file"
    panels = [Panel(latest["weights"], pairs, pairs, f"projector weights ({when})", "pair", "pair", (-1.0, 1.0),
                    "RdBu_r")]
    panels += [Panel(latest[name], pairs, pairs, f"{name} ({when})", "pair", "pair", (-1.0, 1.0), "RdBu_r")
               for name in ("outputs", "inputs", "teacher") if name in latest]
    curves = None
    if len(record["steps"]) > 1:
        off = [_mean_off_diagonal(step["weights"]) for step in record["steps"]]
        curves = Curves([step["step"] for step in record["steps"]], {record["layout"]: off},
                        "projector weight similarity", "mean off-diagonal cosine")
    return save_figure(path, panels, curves, title=f"projector similarity ({record['layout']} layout)")


def _mean_off_diagonal(matrix: Sequence[Sequence[float]]) -> float | None:
    values = np.asarray(matrix, dtype=float)
    if values.shape[0] < 2:
        return None
    return float(values[~np.eye(values.shape[0], dtype=bool)].mean())
