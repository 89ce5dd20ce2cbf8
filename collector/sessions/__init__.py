"""Charging sessions derived from the collected data (the `charging_session` measurement).

`extract` turns each source's points into intervals, `derive` merges, joins and prices them,
`job` runs that periodically over the local store. See docs/sessions.md.
"""

from collector.sessions.model import CHARGING_SESSION

__all__ = ["CHARGING_SESSION"]
