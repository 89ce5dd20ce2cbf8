import pytest

from collector.config import ConfigError, load_config
from collector.config_types import parse_duration


def write(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_example_config_is_valid(monkeypatch):
    from pathlib import Path
    monkeypatch.setenv("INFLUX_TOKEN", "t0ken")
    for env in ("GOE_TOKEN", "EVENERGY_CLIENT_SECRET", "OVMS_PASSWORD", "EVCC_PASSWORD"):
        monkeypatch.setenv(env, "secret")
    config = load_config(Path(__file__).parent.parent / "config.example.toml")
    assert config.store.synchronous == "full"


def test_example_config_with_every_commented_section_enabled_is_valid(monkeypatch, tmp_path):
    """The commented [influxdb] and [sources.*] examples, uncommented, form a valid config."""
    import re
    from pathlib import Path
    monkeypatch.setenv("INFLUX_TOKEN", "t0ken")
    for env in ("GOE_TOKEN", "EVENERGY_CLIENT_SECRET", "OVMS_PASSWORD", "EVCC_PASSWORD"):
        monkeypatch.setenv(env, "secret")
    text = (Path(__file__).parent.parent / "config.example.toml").read_text()
    setting = re.compile(r"^# ((\[\[?[a-z.]+\]\]?)|([a-z_]+ = .*))$")
    enabled = "\n".join(setting.sub(r"\1", line) for line in text.splitlines())
    path = write(tmp_path, enabled)
    config = load_config(path)
    assert config.influxdb.bucket == "ev"
    assert [c.api for c in config.sources.goe.chargers] == ["cloud", "local"]
    assert config.sources.evcc.url == "http://evcc.local:7070"
    assert config.sources.evenergy.client_secret.reveal() == "secret"
    assert config.sources.ovms.vehicles == ["MYCAR"]


def test_unknown_key_is_named_with_file_and_path(tmp_path):
    path = write(tmp_path, "[store]\npaht = 'x.db'\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "store.paht: unknown key" in str(err.value)


def test_wrong_type_and_missing_key_are_named(tmp_path):
    path = write(tmp_path, "[collector]\nhealth_interval = 'often'\n[influxdb]\napi = 'v1'\nurl = 'http://x'\n")
    message = str(pytest.raises(ConfigError, load_config, path).value)
    assert "collector.health_interval: expected a duration" in message
    assert "influxdb.database: missing required key" in message


def test_missing_secret_names_the_variable_but_never_a_value(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_TOKEN", raising=False)
    path = write(tmp_path, "[influxdb]\napi='v2'\nurl='http://x'\norg='o'\nbucket='b'\n"
                           "token = { env = 'NOPE_TOKEN' }\n")
    message = str(pytest.raises(ConfigError, load_config, path).value)
    assert "influxdb.token: environment variable NOPE_TOKEN is not set" in message


def test_secret_from_file_is_read_and_never_printed(tmp_path):
    (tmp_path / "tok").write_text("s3cr3t\n")
    path = write(tmp_path, f"[influxdb]\napi='v2'\nurl='http://x'\norg='o'\nbucket='b'\n"
                           f"token = {{ file = '{tmp_path / 'tok'}' }}\n")
    config = load_config(path)
    assert config.influxdb.token.reveal() == "s3cr3t"
    assert "s3cr3t" not in repr(config)


def test_invalid_toml_is_reported_with_the_file(tmp_path):
    path = write(tmp_path, "[store\n")
    assert "not valid TOML" in str(pytest.raises(ConfigError, load_config, path).value)


def test_relative_store_path_is_relative_to_the_config_file(tmp_path):
    config = load_config(write(tmp_path, "[store]\npath = 'data/s.db'\n"))
    assert config.store.path == tmp_path / "data" / "s.db"


@pytest.mark.parametrize("text,seconds", [(10, 10.0), ("500ms", 0.5), ("5m", 300.0), ("7d", 604800.0)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_readme_source_examples_are_valid(monkeypatch, tmp_path):
    import re
    from pathlib import Path
    for env in ("GOE_TOKEN", "EVENERGY_CLIENT_SECRET", "OVMS_PASSWORD"):
        monkeypatch.setenv(env, "secret")
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.S)
    assert blocks
    for block in blocks:
        config = load_config(write(tmp_path, block))
        assert all(getattr(config.sources, name) for name in ("goe", "evcc", "evenergy", "ovms"))
