"""Daily and monthly rollups (`rollup_daily`, `rollup_monthly`) computed by the collector.

`specs` gathers what each source contributes (its package's `counters.py`), `series` does the
arithmetic, `compute` turns samples into points, `job` runs it over the local store. See
docs/rollups.md.
"""

from collector.rollups.model import MEASUREMENTS, ROLLUP_DAILY, ROLLUP_MONTHLY

__all__ = ["MEASUREMENTS", "ROLLUP_DAILY", "ROLLUP_MONTHLY"]
