"""Presentation shared by the dashboard, the report and the CLI: labels and sentences (labels.py,
sentences.py), charts (charts.py), the exported report (report.py)."""
