"""Sinks: where KPI rows and exports go. Each module writes one format."""
