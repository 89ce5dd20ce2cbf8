"""Every dashboard query is InfluxQL that InfluxDB 1.x, 2.x, 3.x and Cloud Serverless all answer.

The real influxd here is 1.x, which answers far more than InfluxDB 3: its InfluxQL has no
INTEGRAL() or SAMPLE(), none of the technical-analysis functions, no SLIMIT/SOFFSET, no
SHOW SERIES or SHOW DATABASES, no INTO; InfluxDB Cloud Serverless has no tz() either
(docs.influxdata.com, "InfluxQL feature support" of each product). So each query, as Grafana
expands it, is split into InfluxQL tokens (strings, identifiers and regular expressions are
not words of the language) and checked against those lists, and every function it calls must
be one InfluxDB 3 implements.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest

from tests.grafana_macros import TimeRange, expand
from tests.test_dashboards import DASHBOARDS, QUERIES, VARIABLE_QUERIES, query_id

# What InfluxDB 3 (Core, Enterprise, Cloud Dedicated, Clustered, Cloud Serverless) implements.
V3_FUNCTIONS = frozenset({
    "count", "distinct", "mean", "median", "mode", "spread", "stddev", "sum",              # aggregates
    "bottom", "first", "last", "max", "min", "percentile", "top",                          # selectors
    "abs", "acos", "asin", "atan", "atan2", "ceil", "cos", "cumulative_sum", "derivative",  # transformations
    "difference", "exp", "floor", "ln", "log", "log2", "log10", "moving_average",
    "non_negative_derivative", "non_negative_difference", "pow", "round", "sin", "sqrt", "tan",
    "time", "fill", "now",                                               # GROUP BY time() fill(), now()
})
REFUSED_FUNCTIONS = {
    "integral": "InfluxDB 3 has no INTEGRAL()",
    "sample": "InfluxDB 3 has no SAMPLE()",
    "tz": "InfluxDB Cloud Serverless has no tz(); read the rollups, which are per local day already",
    **{name: "InfluxDB 3 has no technical-analysis functions" for name in (
        "holt_winters", "holt_winters_with_fit", "chande_momentum_oscillator", "exponential_moving_average",
        "double_exponential_moving_average", "triple_exponential_moving_average",
        "triple_exponential_derivative", "kaufmans_efficiency_ratio", "kaufmans_adaptive_moving_average",
        "relative_strength_index")},
}
REFUSED_WORDS = {
    ("slimit",): "InfluxDB 3 has no SLIMIT", ("soffset",): "InfluxDB 3 has no SOFFSET",
    ("into",): "InfluxDB 3 has no SELECT ... INTO",
    ("show", "series"): "InfluxDB 3 has no SHOW SERIES", ("show", "databases"): "InfluxDB 3 has no SHOW DATABASES",
}


# InfluxQL's keywords: before "(" they open a subquery or a group, not a function call.
KEYWORDS = frozenset("""all alter and any as asc begin by create continuous database databases default
    delete desc destinations diagnostics drop duration end every explain field for from grant grants
    group groups in inf insert into key keys kill limit measurement measurements name not offset on or
    order password policies policy privileges queries query read replication resample retention revoke
    select series set shard shards show slimit soffset stats subscription subscriptions tag to user
    users values where with write""".split())


@dataclass(frozen=True)
class Token:
    kind: str      # word, ident (double-quoted), string, regex, number, duration, op
    text: str


_PATTERNS = [
    ("space", r"\s+"),
    ("comment", r"--[^\n]*|/\*.*?\*/"),
    ("ident", r'"(?:[^"\\]|\\.)*"'),
    ("string", r"'(?:[^'\\]|\\.)*'"),
    ("duration", r"\d+(?:ns|u|µ|ms|s|m|h|d|w)\b"),
    ("number", r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+"),
    ("word", r"[A-Za-z_][A-Za-z0-9_]*"),
    ("op", r"=~|!~|!=|<>|<=|>=|[-+*/%=<>(),;.&|^:]"),
]
_TOKEN = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in _PATTERNS), re.S)
_REGEX = re.compile(r"/(?:[^/\\\n]|\\.)*/")


def tokens(text: str) -> list[Token]:
    """InfluxQL tokens. A `/` after `=~`, `!~` or FROM opens a regular expression literal;
    anywhere else it divides."""
    out: list[Token] = []
    k = 0
    while k < len(text):
        if text[k] == "/" and out and (out[-1].text in ("=~", "!~") or out[-1].text.lower() == "from"):
            match = _REGEX.match(text, k)
            if not match:
                raise ValueError(f"unterminated regular expression at {k}: {text[k:k + 40]!r}")
            out.append(Token("regex", match.group(0)))
            k = match.end()
            continue
        match = _TOKEN.match(text, k)
        if not match:
            raise ValueError(f"not InfluxQL at {k}: {text[k:k + 40]!r}")
        if match.lastgroup not in ("space", "comment"):
            out.append(Token(match.lastgroup or "", match.group(0)))
        k = match.end()
    return out


def problems(text: str) -> list[str]:
    """What InfluxDB 3 or Cloud Serverless would refuse in one query."""
    found = []
    toks = tokens(text)
    words = [t.text.lower() if t.kind == "word" else None for t in toks]
    for k, token in enumerate(toks):
        if token.kind != "word":
            continue
        name = token.text.lower()
        if k + 1 < len(toks) and toks[k + 1].text == "(" and name not in KEYWORDS:
            if name in REFUSED_FUNCTIONS:
                found.append(f"{token.text}(): {REFUSED_FUNCTIONS[name]}")
            elif name not in V3_FUNCTIONS:
                found.append(f"{token.text}(): not a function InfluxDB 3 is known to implement")
        for phrase, reason in REFUSED_WORDS.items():
            if tuple(words[k:k + len(phrase)]) == phrase:
                found.append(f"{' '.join(phrase).upper()}: {reason}")
    return found


_RANGE = TimeRange(datetime(2026, 3, 1, tzinfo=timezone.utc), datetime(2026, 3, 31, tzinfo=timezone.utc))


def as_influxdb_sees_it(text: str, dashboard: dict) -> str:
    """Grafana's expansion, with a value for every variable (two for multi-value ones)."""
    values = {}
    for variable in dashboard["templating"]["list"]:
        values[variable["name"]] = ["a.b", "c/d"] if variable.get("multi") else ["x"]
    multi = frozenset(v["name"] for v in dashboard["templating"]["list"] if v.get("multi"))
    return expand(text, values, _RANGE, multi=multi)


@pytest.mark.parametrize("case", QUERIES, ids=query_id)
def test_every_panel_query_is_influxql_influxdb3_and_serverless_answer(case):
    name, dashboard, panel, target = case
    text = as_influxdb_sees_it(target["query"], dashboard)
    assert tokens(text)[0].text.upper() == "SELECT"
    assert not problems(text), f"{name}: {panel['title']}: {problems(text)}\n{text}"


@pytest.mark.parametrize("name,variable", VARIABLE_QUERIES, ids=lambda v: v if isinstance(v, str) else v["name"])
def test_every_variable_query_is_a_metaquery_influxdb3_answers(name, variable):
    text = as_influxdb_sees_it(variable["query"], DASHBOARDS[name])
    assert [t.text.upper() for t in tokens(text)[:3]] == ["SHOW", "TAG", "VALUES"]
    assert not problems(text), f"{name}: {variable['name']}: {problems(text)}"


@pytest.mark.parametrize("query,refused", [
    ('SELECT integral("power_w") FROM "goe_status" WHERE time > now() - 1d', "INTEGRAL"),
    ("SELECT SAMPLE(\"power_w\", 3) FROM \"goe_status\"", "SAMPLE"),
    ('SELECT holt_winters(mean("x"), 10, 4) FROM "m" GROUP BY time(1d)', "holt_winters"),
    ('SELECT spread("e") FROM "m" GROUP BY time(1d) tz(\'Europe/Berlin\')', "tz"),
    ('SELECT last("x") FROM "m" GROUP BY * SLIMIT 1 SOFFSET 2', "SLIMIT"),
    ('SELECT mean("x") INTO "m_1h" FROM "m" GROUP BY time(1h)', "INTO"),
    ("SHOW SERIES FROM \"m\"", "SHOW SERIES"),
    ("show databases", "SHOW DATABASES"),
    ('SELECT median_absolute_deviation("x") FROM "m"', "not a function"),
    ('SELECT sum("e") FROM (SELECT integral("p") AS "e" FROM "m" GROUP BY "d")', "INTEGRAL"),
])
def test_the_check_refuses_what_influxdb3_lacks(query, refused):
    assert any(refused in p for p in problems(query)), problems(query)


def test_names_strings_and_regexes_are_not_read_as_keywords():
    query = ('SELECT "integral" AS "into", "sample" / 2 FROM "m" WHERE "t" =~ /^(slimit|show series)$/ '
             "AND \"reason\" = 'tz(' AND \"x\" / 3 > 1")
    assert problems(query) == []
    assert [t.kind for t in tokens(query) if t.text.startswith("/^")] == ["regex"]


def test_the_checked_text_is_what_influxdb_receives():
    dashboard = DASHBOARDS["energy.json"]
    [target] = [t for p in dashboard["panels"] if p.get("title") == "Charged per month" for t in p["targets"]]
    text = as_influxdb_sees_it(target["query"], dashboard)
    assert not re.search(r"\$[\w{\[]", text.replace("$/", "")), text
    assert "time >= 1772323200000ms" in text and '"name" =~ /^((a\\.b|c\\/d))$/' in text
