def test_influx_fixture_accepts_writes_and_queries(influxdb, influx_db):
    import httpx
    r = httpx.post(f"{influxdb.url}/write", params={"db": influx_db}, content=b"m,t=a v=1 1000000000")
    assert r.status_code == 204
    assert influxdb.query('SELECT v FROM m', db=influx_db)[0]["v"] == 1
