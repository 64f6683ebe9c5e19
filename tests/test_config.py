import pytest

from cytolake.config import ConfigError, load_config

from conftest import ROOT


@pytest.mark.parametrize("name", ["local.yaml", "test.yaml", "cluster.example.yaml"])
def test_shipped_configs_validate(name):
    cfg = load_config(ROOT / "conf" / name)
    assert cfg.source.name == name


def test_unknown_key_names_key_and_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("synth:\n  brainz: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in str(e.value) and "synth.brainz" in str(e.value) and "unknown key" in str(e.value)


def test_wrong_type_names_key_and_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("spark:\n  shuffle_partitions: many\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in str(e.value) and "spark.shuffle_partitions" in str(e.value)


def test_unknown_section_and_bad_ranges(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("trainning: {}\n")
    with pytest.raises(ConfigError, match="trainning: unknown key"):
        load_config(p)
    p.write_text("synth:\n  field_mm: [10, -10, 0, 5]\n")
    with pytest.raises(ConfigError, match="field_mm"):
        load_config(p)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    p = tmp_path / "x.yaml"
    p.write_text("paths: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
