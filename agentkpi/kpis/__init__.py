"""KPI catalogue and compiler: definitions in :mod:`.catalogue`, SQL in :mod:`.sql`."""

from agentkpi.kpis.catalogue import BY_NAME, CATALOGUE, HOURLY_COLUMNS, MEASURES, Kpi, Measure
from agentkpi.kpis.sql import Dim, KpiQuery, run

__all__ = ["BY_NAME", "CATALOGUE", "HOURLY_COLUMNS", "MEASURES", "Dim", "Kpi", "KpiQuery",
           "Measure", "run"]
