"""The whole report as one printable HTML document and as PDF (WeasyPrint over that HTML).

The page and the PDF include the same body template (`templates/reports/_body.html`); here the
charts are embedded as data URIs, so WeasyPrint never fetches anything.
"""

from __future__ import annotations

import base64
import datetime as dt

from jinja2 import Environment, FileSystemLoader, select_autoescape

from delivery.platform.settings import ROOT
from delivery.reports import charts, tables
from delivery.reports.funder import Report

TEMPLATES = ROOT / "templates"
PRINT_CSS = ROOT / "static" / "css" / "report-print.css"


def environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                       trim_blocks=True, lstrip_blocks=True)


def body_context(report: Report) -> dict[str, object]:
    """What the body template needs, for the page and the PDF alike."""
    return {"report": report, "tables": tables.tables(report), "display": tables.display,
            "charts": charts.CHARTS}


def html(report: Report, generated: dt.datetime) -> str:
    """The printable document, charts inline."""
    def chart_src(name: str) -> str:
        return "data:image/svg+xml;base64," + base64.b64encode(charts.svg(report, name)).decode()

    return environment().get_template("reports/print.html").render(
        **body_context(report), chart_src=chart_src, csv_href=None, generated=generated)


def pdf(report: Report, generated: dt.datetime) -> bytes:
    """The report as PDF bytes (WeasyPrint is imported here: it loads Pango when first used)."""
    from weasyprint import CSS, HTML

    return HTML(string=html(report, generated)).write_pdf(stylesheets=[CSS(filename=str(PRINT_CSS))])
