"""The query layer: read stored points back as frames, whatever holds them.

`readers` read one measurement from the local store or from InfluxDB into the same frames
(time, tags, fields in their declared types); `frames` builds what the commands show from
them (session rows, raw points, counter rollups per day or month); `samples` gives the rollup
job each series' samples with their neighbours outside the range; `times` turns times into
the text and periods people read. Export, report, statement, analysis and the rollups use
this package; none of it writes, prints or parses arguments.
"""

from collector.query.readers import (
                                     FrameReader,
                                     InfluxQuery,
                                     InfluxReader,
                                     QueryError,
                                     StoreReader,
                                     make_reader,
)
from collector.query.times import DAY_NS, NS, parse_when

__all__ = ["DAY_NS", "NS", "FrameReader", "InfluxQuery", "InfluxReader", "QueryError", "StoreReader",
           "make_reader", "parse_when"]
