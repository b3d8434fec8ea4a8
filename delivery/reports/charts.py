"""The report's charts as SVG, drawn by matplotlib (no hand-made geometry), from the report's data.

Deterministic output (a fixed hash salt, no date), text kept as text so the SVG stays searchable.
"""

from __future__ import annotations

import io

import matplotlib
from matplotlib.figure import Figure

from delivery.reports.funder import Report
from delivery.reports.tables import WORDS

CHARTS = {"weekly": "Deliveries by week", "reasons": "Failed attempts by reason",
          "referrals": "Referrals by the program's decision"}
STYLE = {"svg.hashsalt": "delivery-report", "svg.fonttype": "none", "font.size": 10,
         "axes.spines.top": False, "axes.spines.right": False}
GREEN, RED, BLUE = "#2f7d32", "#b3261e", "#1d4ed8"


def svg(report: Report, name: str) -> bytes:
    """One chart of the report as SVG bytes; `name` is one of CHARTS."""
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(6.4, 3.2), layout="constrained")
        axes = figure.add_subplot()
        if name == "weekly":
            labels = [w.start.strftime("%b %d") for w in report.weeks]
            ok = [w.deliveries_succeeded for w in report.weeks]
            axes.bar(labels, ok, color=GREEN, label="Delivered")
            axes.bar(labels, [w.deliveries_failed for w in report.weeks], bottom=ok, color=RED,
                     label="Failed attempt")
            axes.set_ylabel("Deliveries")
            axes.legend(frameon=False)
        else:
            counts = report.failed_attempts_by_reason if name == "reasons" else report.referrals_by_outcome
            labels = [WORDS.get(k, k) for k in counts][::-1]
            axes.barh(labels, list(counts.values())[::-1], color=RED if name == "reasons" else BLUE)
            axes.set_xlabel("Failed attempts" if name == "reasons" else "Referrals")
        (axes.yaxis if name == "weekly" else axes.xaxis).get_major_locator().set_params(integer=True)
        if not axes.has_data():
            axes.text(0.5, 0.5, "Nothing in this period", ha="center", va="center", transform=axes.transAxes)
        axes.set_title(CHARTS[name], loc="left")
        out = io.BytesIO()
        figure.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()
