"""The HTML report (`build_report`), its plots, and the lens stage's figures.

Importing this package is cheap: matplotlib and the datasets library load only when drawing.
"""

from searchprobe.report.html import ReportResult, Section, build_report, render_html

__all__ = ["ReportResult", "Section", "build_report", "render_html"]
