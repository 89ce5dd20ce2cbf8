"""One harness for every source's payload files: `<case>.json` beside `<case>.expected`.

A case is a response as a source receives it (`tests/sources/<source>/payloads/`, recorded
or constructed, as the README beside them says) and, in `<case>.expected`, the points its
parser must give: line protocol, one point per line in the order the parser gives them
(exact: `2.0` is a float, `2i` an integer, strings quoted), then `# rejected: a, b` naming
the values the parser left out, if any. `test_payloads.py` checks every case.

Where a parser needs more than the response (a serial, a poll time, the previous message
times), the case file wraps the response with them (go-e, OVMS); evcc and ev.energy case
files are the bare responses, their parser chosen by the file name.

Write the expected file of a new case (then read it before committing: it is the contract,
not a snapshot to accept blindly):

    python -m tests.sources.payloads tests/sources/<source>/payloads/<case>.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

from collector.measurement import CoercionReport
from collector.points import Point, to_line

ROOT = Path(__file__).parent

# evcc: the site name and the poll time of state payloads (2025-11-21T00:00:00Z)
EVCC_SITE = "home"
EVCC_POLL_NS = 1_763_683_200_000_000_000
EVENERGY_EVSE = "evse01HSH04KDEWF6Z4DB2J77J74K5"

Produced = tuple[list[Point], list[str]]     # points, names of the values left out


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _rejected(report: CoercionReport) -> list[str]:
    return [name for name, _ in report.rejected]


def goe(path: Path) -> Produced:
    from collector.sources.goe.parse import parse_cards, parse_status, parse_status_v1

    case = _load(path)
    v1 = case.get("api") == "v1"
    parse = parse_status_v1 if v1 else parse_status
    report = CoercionReport()
    if path.parent.name == "cards":
        # the card list, and the status point whose `transaction_card` names the card in use
        cards = parse_cards(case["status"], case["serial"], case["time_ns"], v1=v1, report=report)
        return cards + parse(case["status"], case["serial"], case["time_ns"]), _rejected(report)
    return parse(case["status"], case["serial"], case["time_ns"], report), _rejected(report)


def evcc(path: Path) -> Produced:
    from collector.sources.evcc.parse import parse_sessions, parse_state, parse_tariff

    payload = _load(path)
    report = CoercionReport()
    if path.name.startswith("state_"):
        points = parse_state(payload, EVCC_SITE, EVCC_POLL_NS, report)
    elif path.name.startswith("sessions"):
        points = parse_sessions(payload, EVCC_SITE, None, report).points
    else:                                       # tariff_<type>_...
        points = parse_tariff(payload, EVCC_SITE, path.stem.split("_")[1], report)
    return points, _rejected(report)


def evenergy(path: Path) -> Produced:
    from collector.sources.evenergy.parse import parse_command_logs, parse_status_logs

    parse = parse_status_logs if path.name.startswith("status_logs") else parse_command_logs
    report = CoercionReport()
    return list(parse(_load(path), EVENERGY_EVSE, report).points), _rejected(report)


def ovms(path: Path) -> Produced:
    from tests.sources.ovms.payload_cases import parse_case

    result = parse_case(_load(path))
    return list(result.points), _rejected(result.report)


PARSERS: dict[str, Callable[[Path], Produced]] = {
    "goe": goe, "evcc": evcc, "evenergy": evenergy, "ovms": ovms}


def source_of(case: Path) -> str:
    return case.relative_to(ROOT).parts[0]


def cases() -> list[Path]:
    """Every case file that has an expected file beside it."""
    return sorted(p.with_suffix(".json") for p in ROOT.glob("*/payloads/**/*.expected"))


def expected_text(produced: Produced) -> str:
    points, rejected = produced
    lines = [to_line(p) or f"# no writable field: {p.measurement} {p.time_ns}" for p in points]
    if rejected:
        lines.append("# rejected: " + ", ".join(sorted(rejected)))
    return "".join(line + "\n" for line in lines)


def produce(case: Path) -> str:
    return expected_text(PARSERS[source_of(case)](case))


def main(paths: list[str]) -> None:
    for name in paths:
        case = Path(name).resolve()
        out = case.with_suffix(".expected")
        out.write_text(produce(case), encoding="utf-8")
        print("wrote", out)


if __name__ == "__main__":
    main(sys.argv[1:])
