from pathlib import Path

import pytest

from lambdastack.errors import ConfigError
from lambdastack.settings import load_settings

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf" / "lambdastack.yaml"


def test_repo_config_loads_with_paths_resolved_against_the_root():
    s = load_settings(CONF, environ={})
    assert s.kafka.bootstrap == "127.0.0.1:9092"
    assert s.state_dir == ROOT / ".state"
    assert s.path(s.data.master_dir) == ROOT / ".state" / "data" / "master"


def test_environment_overrides_a_key_with_a_typed_value():
    s = load_settings(CONF, environ={"LAMBDASTACK_KAFKA__PORT": "19092", "LAMBDASTACK_BATCH__BUCKET_S": "60"})
    assert s.kafka.port == 19092
    assert s.batch.bucket_s == 60


def test_a_typo_in_the_file_is_an_error_naming_the_key(tmp_path):
    (tmp_path / "conf").mkdir()
    bad = tmp_path / "conf" / "lambdastack.yaml"
    bad.write_text(CONF.read_text().replace("  heap: 512m", "  heapp: 512m"))
    with pytest.raises(ConfigError, match=r"kafka\.heapp: unknown key"):
        load_settings(bad, environ={})


def test_a_typo_in_an_environment_override_is_an_error():
    with pytest.raises(ConfigError, match="kafka.prot: unknown key"):
        load_settings(CONF, environ={"LAMBDASTACK_KAFKA__PROT": "1"})
    with pytest.raises(ConfigError, match="LAMBDASTACK_KAFKAPORT does not name a setting"):
        load_settings(CONF, environ={"LAMBDASTACK_KAFKAPORT": "1"})


def test_a_bad_value_names_the_field_and_the_reason():
    with pytest.raises(ConfigError, match=r"redis\.port: Input should be less than or equal to 65535"):
        load_settings(CONF, environ={"LAMBDASTACK_REDIS__PORT": "70000"})


def test_a_missing_file_is_a_sentence(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml", environ={})


def test_settings_are_frozen():
    s = load_settings(CONF, environ={})
    with pytest.raises(Exception, match="frozen"):
        s.kafka.port = 1  # type: ignore[misc]
