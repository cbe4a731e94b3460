"""The console's pictures: plotly figures rendered to HTML fragments (plotly.js is served by the console).

Each function also returns the numbers the picture shows, so a page can print them for a reader
without JavaScript or a screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # plotly loads when a figure is drawn
    import plotly.graph_objects as go

SEVERITY_LEVEL = {"none": 0, "watch": 1, "act": 2}
_LAYOUT = {"margin": {"l": 60, "r": 20, "t": 40, "b": 50}, "height": 340, "width": 530, "template": "plotly_white",
           "font": {"family": "system-ui, sans-serif", "size": 13}}


@dataclass
class AtThreshold:
    """The holdout's confusion matrix and rates at the deployed threshold."""

    threshold: float
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None


def at_threshold(labels: np.ndarray, proba: np.ndarray, threshold: float) -> AtThreshold:
    """Counts of the decision the model makes (``proba >= threshold``, as ``PoiseModel.score`` does)."""
    pred = proba >= threshold
    truth = labels == 1
    return AtThreshold(threshold, int((pred & truth).sum()), int((pred & ~truth).sum()),
                       int((~pred & truth).sum()), int((~pred & ~truth).sum()))


def _html(figure: go.Figure, div_id: str) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                          config={"displaylogo": False})


def threshold_figures(labels: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, str]:
    """Precision–recall curve with the deployed threshold marked; precision and recall against the threshold;
    the confusion matrix at the threshold."""
    import plotly.graph_objects as go
    from sklearn.metrics import precision_recall_curve

    precision, recall, cuts = precision_recall_curve(labels, proba)
    point = at_threshold(labels, proba, threshold)
    pr = go.Figure(go.Scatter(x=recall, y=precision, mode="lines", name="holdout", line={"shape": "hv"}))
    if point.precision is not None and point.recall is not None:
        pr.add_trace(go.Scatter(x=[point.recall], y=[point.precision], mode="markers+text", name="deployed threshold",
                                marker={"size": 13, "color": "#d62728", "symbol": "diamond"},
                                text=[f"threshold {threshold:.3f}"], textposition="bottom left"))
    pr.update_layout(title="Precision–recall on the holdout", xaxis_title="recall", yaxis_title="precision",
                     xaxis_range=[0, 1.02], yaxis_range=[0, 1.05], legend={"x": 0.02, "y": 0.05}, **_LAYOUT)
    sweep = go.Figure([go.Scatter(x=cuts, y=precision[:-1], mode="lines", name="precision"),
                       go.Scatter(x=cuts, y=recall[:-1], mode="lines", name="recall")])
    sweep.add_vline(x=threshold, line_dash="dash", line_color="#d62728",
                    annotation_text=f"deployed {threshold:.3f}", annotation_position="top")
    sweep.update_layout(title="Precision and recall against the threshold", xaxis_title="threshold",
                        yaxis_title="share", yaxis_range=[0, 1.05], **_LAYOUT)
    matrix = go.Figure(go.Heatmap(
        z=[[point.tn, point.fp], [point.fn, point.tp]], x=["predicted negative", "predicted positive"],
        y=["actual negative", "actual positive"], text=[[point.tn, point.fp], [point.fn, point.tp]],
        texttemplate="%{text}", colorscale="Blues", showscale=False))
    matrix.update_layout(title=f"Confusion matrix at threshold {threshold:.3f}", **{**_LAYOUT, "width": 460})
    return {"pr": _html(pr, "pr-curve"), "sweep": _html(sweep, "threshold-sweep"),
            "matrix": _html(matrix, "confusion-matrix")}


def severity_figure(points: list[dict[str, Any]]) -> str:
    """Severity and the share of drifted features of each kept report, over time."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(specs=[[{"secondary_y": True}]])
    when = [p["at"] for p in points]
    figure.add_trace(go.Scatter(x=when, y=[p["drifted_share"] for p in points], mode="lines+markers",
                                name="drifted share", line={"color": "#f4a6a0"}, marker={"size": 7}),
                     secondary_y=True)
    figure.add_trace(go.Scatter(x=when, y=[SEVERITY_LEVEL[p["severity"]] for p in points], mode="lines+markers",
                                name="severity", line={"shape": "hv", "color": "#2457c5"}, marker={"size": 11},
                                text=[f"v{p['version']}: {p['severity']}" for p in points]), secondary_y=False)
    figure.update_yaxes(tickvals=[0, 1, 2], ticktext=["none", "watch", "act"], range=[-0.2, 2.3], secondary_y=False,
                        title_text="severity")
    figure.update_yaxes(range=[0, 1.05], secondary_y=True, title_text="drifted share", tickformat=".0%",
                        showgrid=False)
    if len(points) == 1:  # one check: a readable hour around it rather than an axis of microseconds
        import pandas as pd

        at = pd.Timestamp(points[0]["at"])
        figure.update_xaxes(range=[at - pd.Timedelta(minutes=30), at + pd.Timedelta(minutes=30)])
    figure.update_layout(title="Severity over time", **{**_LAYOUT, "width": 1000})
    return _html(figure, "severity-over-time")
