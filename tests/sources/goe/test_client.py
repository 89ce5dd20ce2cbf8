"""The go-e client against the simulator: every outcome maps to one action."""

from __future__ import annotations

import asyncio
import email.utils

import httpx
import pytest
from freezegun import freeze_time

from collector.config_types import Secret
from collector.http_outcomes import Action, SourceError
from collector.sim.base import SimResponse, SimServer, mock_transport
from collector.sim.goe import GoeSimulator, SimCharger, html_error
from collector.sources.goe.client import Charger, GoeClient
from collector.sources.goe.parse import STATUS_KEYS

TOKEN = "tok-3141592653"
CLOUD = Charger("000001", "cloud", token=Secret(TOKEN, "test"))
LOCAL = Charger("000002", "local", host="http://sim/local/000002")


def make_sim(**kwargs) -> GoeSimulator:
    return GoeSimulator.fleet(3, seed=7, token=TOKEN, **kwargs)


SEND_DIRECT = {"direct": True}


@pytest.fixture(autouse=True, params=["to the transport", "through the client"])
def send_path(request, monkeypatch):
    """Every outcome, whether the client sends to its transport directly (as GoeSource does)
    or through httpx's client (with a proxy in the environment)."""
    monkeypatch.setitem(SEND_DIRECT, "direct", request.param == "to the transport")


def fetch(sim_or_transport, charger: Charger, **client_kwargs):
    transport = sim_or_transport if isinstance(sim_or_transport, httpx.AsyncBaseTransport) \
        else mock_transport(sim_or_transport)

    async def go():
        async with httpx.AsyncClient(transport=transport, timeout=2) as http:
            client = GoeClient(http, transport=transport if SEND_DIRECT["direct"] else None,
                               **client_kwargs)
            return await client.fetch_status(charger)

    return asyncio.run(go())


def fetch_error(sim_or_transport, charger: Charger, **client_kwargs) -> SourceError:
    with pytest.raises(SourceError) as info:
        fetch(sim_or_transport, charger, **client_kwargs)
    return info.value


@freeze_time("2026-11-21 09:30:00.400")
def test_cloud_200_carries_status_and_last_modified_and_the_token_only_in_a_header() -> None:
    seen: list[httpx.Request] = []
    sim = make_sim()
    inner = mock_transport(sim)

    class Spy(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request):
            seen.append(request)
            return await inner.handle_async_request(request)

    response = fetch(Spy(), CLOUD, filter_keys=STATUS_KEYS, age=5)
    assert response.status_code == 200
    assert response.last_modified == "Sat, 21 Nov 2026 09:30:00 GMT"
    assert response.payload["fwv"] == sim.chargers["000001"].firmware
    assert set(response.payload) <= set(STATUS_KEYS)
    request = seen[0]
    assert request.url.host == "000001.api.v3.go-e.io"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in str(request.url)
    assert request.url.params["age"] == "5"
    assert request.url.params["filter"].split(",") == list(STATUS_KEYS)
    assert sim.count("000001") == 1


def test_filter_keeps_firmware_order_and_leaves_out_missing_keys() -> None:
    sim = make_sim()
    response = fetch(sim, CLOUD, filter_keys=["nrg", "whg", "car", "amp"])
    charger = sim.chargers["000001"]
    expected = [k for k in charger.keys if k in {"nrg", "whg", "car", "amp"}]
    assert list(response.payload) == expected
    assert ("whg" in response.payload) == charger.has("whg")


def test_wrong_token_is_a_config_error_naming_the_charger_but_not_the_token() -> None:
    sim = make_sim()
    bad = Charger("000001", "cloud", token=Secret("wrong-token", "test"))
    error = fetch_error(sim, bad)
    assert error.action is Action.CONFIG
    assert "403" in str(error) and "000001" in str(error)
    assert "wrong-token" not in str(error)
    sim401 = make_sim(bad_token_status=401)
    error = fetch_error(sim401, bad)
    assert error.action is Action.CONFIG and "401" in str(error)


def test_cloud_api_disabled_is_403_config() -> None:
    sim = make_sim()
    sim.chargers["000001"].cloud_enabled = False
    error = fetch_error(sim, CLOUD)
    assert error.action is Action.CONFIG and "Cloud API" in str(error)


def test_offline_charger_serves_its_last_status_until_age_then_404_no_data() -> None:
    with freeze_time("2026-11-21 09:30:00.500") as frozen:
        sim = make_sim()
        first = fetch(sim, CLOUD)
        sim.set_offline("000001")
        frozen.tick(3.0)
        stale = fetch(sim, CLOUD, age=10)
        assert stale.last_modified == first.last_modified  # nothing new from the charger
        frozen.tick(20.0)
        assert fetch(sim, CLOUD).last_modified == first.last_modified  # cloud default age 30 s
        error = fetch_error(sim, CLOUD, age=10)
        assert error.action is Action.NO_DATA
        assert "Data is outdated" in str(error)
        frozen.tick(20.0)
        assert fetch_error(sim, CLOUD).action is Action.NO_DATA
        sim.set_offline("000001", False)
        assert fetch(sim, CLOUD).last_modified == email.utils.formatdate(
            1795253443, usegmt=True)


def test_last_modified_advances_once_a_second() -> None:
    with freeze_time("2026-11-21 09:30:00.100") as frozen:
        sim = make_sim()
        a = fetch(sim, CLOUD).last_modified
        frozen.tick(0.5)
        b = fetch(sim, CLOUD).last_modified
        frozen.tick(0.5)
        c = fetch(sim, CLOUD).last_modified
    assert a == b != c


def test_unknown_serial_on_the_cloud_is_403() -> None:
    error = fetch_error(make_sim(), Charger("999999", "cloud", token=Secret(TOKEN, "t")))
    assert error.action is Action.CONFIG


def test_html_error_page_from_a_proxy_is_a_retry_with_a_short_excerpt() -> None:
    sim = make_sim()
    sim.overrides["000001"] = html_error(502)
    error = fetch_error(sim, CLOUD)
    assert error.action is Action.RETRY
    assert "HTTP 502" in str(error) and len(str(error)) < 320


def test_html_page_with_status_200_is_dropped_not_parsed() -> None:
    sim = make_sim()
    sim.overrides["000001"] = SimResponse.text("<html><body>Login to the hotel WiFi</body></html>",
                                               200, content_type="text/html")
    error = fetch_error(sim, CLOUD)
    assert error.action is Action.DROP and "not JSON" in str(error)


def test_timeouts_and_connection_errors_are_retries() -> None:
    def raising(exc):
        def handler(request):
            raise exc("simulated", request=request)
        return httpx.MockTransport(handler)

    for exc in (httpx.ConnectTimeout, httpx.ReadTimeout, httpx.ConnectError):
        error = fetch_error(raising(exc), CLOUD)
        assert error.action is Action.RETRY, exc
        assert TOKEN not in str(error)


def test_local_api_that_stops_answering_is_a_retry() -> None:
    sim = make_sim()
    sim.set_offline("000002")
    error = fetch_error(sim, LOCAL)
    assert error.action is Action.RETRY and "timed out" in str(error)


def test_local_status_has_no_last_modified_and_no_auth() -> None:
    response = fetch(make_sim(), LOCAL, filter_keys=["car", "nrg"])
    assert response.status_code == 200
    assert response.last_modified is None
    assert set(response.payload) == {"car", "nrg"}


def test_local_400_with_a_json_body_is_the_status() -> None:
    sim = make_sim()
    sim.chargers["000002"].quirk_400 = True
    response = fetch(sim, LOCAL, filter_keys=["car", "whg"])   # a 058.2 model lacks whg
    assert response.status_code == 400
    assert "car" in response.payload
    response = fetch(sim, LOCAL)  # full status
    assert response.status_code == 400 and "nrg" in response.payload


def test_local_400_without_json_is_dropped_and_404_says_enable_the_api() -> None:
    sim = make_sim()
    sim.overrides["000002"] = SimResponse.text("Bad Request", 400)
    assert fetch_error(sim, LOCAL).action is Action.DROP
    sim.overrides["000002"] = SimResponse.text("Not found", 404)
    error = fetch_error(sim, LOCAL)
    assert error.action is Action.CONFIG and "API v2" in str(error)


def test_intermittent_5xx_is_a_retry() -> None:
    sim = make_sim()
    sim.overrides["000001"] = SimResponse.text("", 503)
    assert fetch_error(sim, CLOUD).action is Action.RETRY


def test_cloud_over_a_loopback_port_routes_by_host_header_or_by_path() -> None:
    sim = make_sim()
    with SimServer(sim) as server:
        by_host = fetch(httpx.AsyncHTTPTransport(), CLOUD, cloud_url=server.url)
        by_path = fetch(httpx.AsyncHTTPTransport(), Charger("000003", "cloud", token=Secret(TOKEN, "t")),
                        cloud_url=server.url + "/{serial}")
        local = fetch(httpx.AsyncHTTPTransport(),
                      Charger("000002", "local", host=f"{server.url}/local/000002"))
    assert by_host.payload["sse"] == "000001" and by_host.last_modified
    assert by_path.payload["sse"] == "000003"
    assert local.payload["sse"] == "000002" and local.last_modified is None
    assert (sim.count("000001"), sim.count("000002"), sim.count("000003")) == (1, 1, 1)


def test_simulator_is_deterministic_for_a_seed() -> None:
    a = GoeSimulator.fleet(5, seed=3)
    b = GoeSimulator.fleet(5, seed=3)
    c = GoeSimulator.fleet(5, seed=4)
    assert [a.chargers[s].state(100, 1.0) for s in a.chargers] == \
           [b.chargers[s].state(100, 1.0) for s in b.chargers]
    assert [a.chargers[s].state(100, 1.0) for s in a.chargers] != \
           [c.chargers[s].state(100, 1.0) for s in c.chargers]


def test_simulated_energy_rises_consistently_with_power() -> None:
    charger = SimCharger("000005", amp=16, phases=3, car_max_a=16, cycle_s=1800, arrive_at=100,
                         leave_at=1500, session_wh=3000.0, eto_start=1000)
    states = [charger.state(t, float(t)) for t in range(0, 3600)]
    etos = [s["eto"] for s in states]
    assert etos == sorted(etos)                          # never goes backwards
    assert etos[-1] - etos[0] == pytest.approx(2 * 3000.0, abs=5)  # one session a cycle
    cars = {s["car"] for s in states}
    assert cars == {1, 2, 3, 4}
    charging = [s for s in states if s["car"] == 2]
    # wh over a minute of charging rises by power * time (11 kW: about 184 Wh a minute)
    assert charging[60]["wh"] - charging[0]["wh"] == pytest.approx(230 * 16 * 3 / 60, rel=0.01)
    assert all(s["nrg"][11] > 10000 for s in charging)
    assert all(s["nrg"][11] == 0 for s in states if s["car"] != 2)


def test_simulator_runs_as_a_process_of_its_own() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    proc = subprocess.Popen([sys.executable, "-m", "collector.sim.goe", "--port", "0",
                             "--chargers", "2", "--first-serial", "500", "--token", TOKEN,
                             "--offline", "000501"],
                            cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        ready = proc.stdout.readline()
        assert ready.startswith("READY http://127.0.0.1:"), ready
        url = ready.split()[1]
        headers = {"Authorization": f"Bearer {TOKEN}", "Host": "000500.api.v3.go-e.io"}
        response = httpx.get(f"{url}/api/status", headers=headers, params={"filter": "sse,car"},
                             timeout=5)
        assert response.status_code == 200 and response.json()["sse"] == "000500"
        assert response.headers["last-modified"].endswith(" GMT")
        bad = httpx.get(f"{url}/api/status", headers={**headers, "Authorization": "Bearer x"},
                        timeout=5)
        assert bad.status_code == 403
        offline = httpx.get(f"{url}/000501/api/status", headers=headers,
                            params={"age": "0.001"}, timeout=5)
        assert offline.status_code == 404 and offline.json()["reason"] == "Data is outdated"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "stopped after 3 requests" in proc.stdout.read()
