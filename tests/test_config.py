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


def test_a_repeated_section_or_key_is_refused_naming_it_and_its_line(tmp_path):
    """YAML keeps the last of two equal keys without a word: a second `tiling:` block would silently replace
    the first (transfer brains, stride and spacing changed)."""
    p = tmp_path / "twice.yaml"
    p.write_text("tiling:\n  stride_um: 400\n  transfer_brains: [B02]\nsynth:\n  brains: 2\ntiling:\n  spacing_um: 80\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in str(e.value) and "tiling" in str(e.value) and "line 6" in str(e.value) and "line 1" in str(e.value)
    p.write_text("synth:\n  brains: 2\n  seed: 1\n  brains: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "synth.brains" in str(e.value) and "line 4" in str(e.value)


@pytest.mark.parametrize("text", ["", "\n# only a comment\n", "---\n", "null\n"])
def test_an_empty_config_is_an_error_not_the_defaults(tmp_path, text):
    p = tmp_path / "empty.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match="empty"):
        load_config(p)
