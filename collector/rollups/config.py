"""`[rollups]`: daily and monthly totals, on by default."""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from collector.config_types import Duration, Model

log = logging.getLogger(__name__)


def host_zone() -> str:
    """The machine's time zone as an IANA name (`TZ`, else /etc/localtime), else UTC."""
    import tzlocal

    try:
        name = tzlocal.get_localzone_name()
    except (ZoneInfoNotFoundError, ValueError, LookupError) as exc:
        log.warning("rollups: cannot tell this machine's time zone (%s); using UTC. "
                    "Set [rollups] timezone.", exc)
        return "UTC"
    return name or "UTC"


class RollupsSection(Model):
    enabled: bool = True
    # How often days with new data are recomputed (today's point grows at this pace).
    interval: Duration = Field(default=300.0, ge=10.0)
    # Whose days and months: an IANA name. Default: the machine's zone (in a container the
    # TZ environment variable), else UTC. Changing it later starts new days at new midnights.
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)") from None
        return value

    def zone_name(self) -> str:
        return self.timezone or host_zone()
