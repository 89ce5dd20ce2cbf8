"""FaultySim itself: each fault kind turns a simulator's answer into what it promises."""

import json
import math

import httpx
import pytest

from collector.sim.base import SimRequest, SimResponse, mock_transport
from collector.sim.faults import KINDS, FaultySim


class Echo:
    def handle(self, request: SimRequest) -> SimResponse:
        return SimResponse.json({"n": 7, "f": 1.5, "s": "text", "b": True, "list": [1, {"k": 2}]})


def get(sim, path="/a"):
    with httpx.Client(transport=mock_transport(sim), base_url="http://sim") as client:
        return client.get(path)


def test_armed_faults_are_served_in_order_to_matching_requests_only():
    faulty = FaultySim(Echo())
    faulty.arm("status_503", times=2, match="/a")
    assert get(faulty, "/b").status_code == 200
    assert [get(faulty).status_code for _ in range(3)] == [503, 503, 200]
    assert [i.kind for i in faulty.injected] == ["status_503", "status_503"]
    assert faulty.pending == 0


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_changes_the_answer(kind):
    faulty = FaultySim(Echo())
    faulty.arm(kind)
    if kind in ("slow", "reset"):
        with pytest.raises(httpx.ReadTimeout if kind == "slow" else httpx.ReadError):
            get(faulty)
        return
    response = get(faulty)
    assert (response.status_code, response.content) != (200, get(faulty).content)


def test_payload_faults_rewrite_the_json_as_documented():
    def body(kind):
        faulty = FaultySim(Echo())
        faulty.arm(kind)
        return get(faulty).content

    wrong = json.loads(body("wrong_types"))
    assert wrong["n"] == "not-a-number" and wrong["s"] == 12345 and wrong["b"] == {"bool": True}
    assert len(json.loads(body("missing_keys"))) < 5
    assert "x_unexpected_field" in json.loads(body("extra_keys"))
    huge = json.loads(body("huge_numbers"))
    assert huge["n"] == 10**30 and huge["f"] == 1e300
    assert math.isnan(json.loads(body("nan"))["f"])            # a bare NaN token
    assert body("empty_body") == b""
    assert len(body("truncated_json")) < len(get(FaultySim(Echo())).content)
    with pytest.raises(ValueError):
        json.loads(body("truncated_json"))


def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultySim(Echo()).arm("gremlins")
