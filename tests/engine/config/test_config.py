"""Profiles: presets, extends, overrides, and errors that name file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunedeck.engine.config.profile_hints import hints
from tunedeck.engine.config.profile_loading import (
    ProfileError,
    load_profile,
    parse_override,
    profile_from_dict,
    to_toml,
)
from tunedeck.engine.config.profile_schema import ALL_KEYS, field_specs

PRESETS = ["lora", "lora-domain", "qlora", "full", "dpo", "kto", "demo-cpu"]


@pytest.mark.parametrize("name", PRESETS)
def test_shipped_presets_load(name):
    p = load_profile(name)
    assert p.description


def test_preset_values_follow_practice():
    lora, domain, full, dpo, qlora = (load_profile(n) for n in ("lora", "lora-domain", "full", "dpo", "qlora"))
    assert (lora.lora.r, lora.lora.alpha, lora.optim.learning_rate) == (8, 16, 2e-4)
    assert domain.lora.r == 16 and domain.extends == "lora"
    assert full.method.adapter == "none" and full.optim.learning_rate == 1e-5
    assert dpo.method.method == "dpo"
    kto = load_profile("kto")
    assert kto.method.method == "kto" and kto.optim.batch_size >= 2  # KTO's KL term needs other rows in the batch
    assert qlora.method.adapter == "qlora"
    assert not lora.model.trust_remote_code


def write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_extends_and_overrides(tmp_path):
    path = write(tmp_path, 'extends = "lora"\n[optim]\nepochs = 2\n')
    p = load_profile(str(path), ["lora.r=32", "learning_rate=1e-4", "model.base=some/model"])
    assert p.lora.r == 32 and p.optim.learning_rate == 1e-4 and p.optim.epochs == 2.0
    assert p.lora.alpha == 16  # inherited from lora
    assert p.model.base == "some/model"


def test_extends_relative_file(tmp_path):
    write(tmp_path, "[lora]\nr = 4\n", "base.toml")
    path = write(tmp_path, 'extends = "base.toml"\n[lora]\nalpha = 8\n')
    p = load_profile(str(path))
    assert (p.lora.r, p.lora.alpha) == (4, 8)


def test_unknown_key_names_file_line_and_suggests(tmp_path):
    path = write(tmp_path, "[optim]\nepochs = 2\nlearning_rat = 1e-4\n")
    with pytest.raises(ProfileError) as e:
        load_profile(str(path))
    msg = str(e.value)
    assert f"{path}:3:" in msg and "learning_rat" in msg and "did you mean 'learning_rate'" in msg
    assert e.value.line == 3 and e.value.key == "optim.learning_rat"


def test_unknown_section_suggests(tmp_path):
    path = write(tmp_path, "[optm]\nepochs = 2\n")
    with pytest.raises(ProfileError, match=r"p.toml:1: unknown section \[optm\].*'optim'"):
        load_profile(str(path))


def test_wrong_type_names_line(tmp_path):
    path = write(tmp_path, '[lora]\n\nr = "eight"\n')
    with pytest.raises(ProfileError, match=r"p.toml:3: 'lora.r' must be an integer, not a string"):
        load_profile(str(path))


def test_out_of_range(tmp_path):
    path = write(tmp_path, "[data]\nval_fraction = 0.9\n")
    with pytest.raises(ProfileError, match=r"p.toml:2: 'data.val_fraction' must be at most 0.5"):
        load_profile(str(path))


def test_bad_choice(tmp_path):
    path = write(tmp_path, '[method]\nadapter = "lorra"\n')
    with pytest.raises(ProfileError, match=r"p.toml:2: 'method.adapter' must be one of 'lora', 'qlora', 'none'"):
        load_profile(str(path))


def test_toml_syntax_error_line(tmp_path):
    path = write(tmp_path, "[optim]\nepochs = 2\nlearning_rate = = 1\n")
    with pytest.raises(ProfileError, match=r"p.toml:3: TOML syntax error"):
        load_profile(str(path))


def test_error_in_parent_points_at_parent(tmp_path):
    write(tmp_path, "[lora]\nrank = 4\n", "parent.toml")
    path = write(tmp_path, 'extends = "parent.toml"\n')
    with pytest.raises(ProfileError) as e:
        load_profile(str(path))
    assert "parent.toml:2:" in str(e.value) and "did you mean 'r'" in str(e.value)


def test_extends_cycle(tmp_path):
    write(tmp_path, 'extends = "b.toml"\n', "a.toml")
    write(tmp_path, 'extends = "a.toml"\n', "b.toml")
    with pytest.raises(ProfileError, match="cycle"):
        load_profile(str(tmp_path / "a.toml"))


def test_missing_profile_suggests():
    with pytest.raises(ProfileError, match="did you mean 'lora'"):
        load_profile("lorra")


def test_override_errors():
    with pytest.raises(ProfileError, match="did you mean"):
        load_profile("lora", ["learning_rat=1"])
    with pytest.raises(ProfileError, match="ambiguous"):
        parse_override("batch_size=4")  # optim.batch_size and gate.batch_size
    with pytest.raises(ProfileError, match="must be a number"):
        load_profile("lora", ["optim.learning_rate=fast"])
    with pytest.raises(ProfileError, match="expected key=value"):
        parse_override("lora.r")


def test_override_value_parsing():
    assert parse_override("lora.r=16") == ("lora.r", 16)
    assert parse_override("model.base=Qwen/Qwen2.5-0.5B") == ("model.base", "Qwen/Qwen2.5-0.5B")
    assert parse_override("trust_remote_code=true") == ("model.trust_remote_code", True)
    assert parse_override('lora.target_modules=["q_proj","v_proj"]')[1] == ["q_proj", "v_proj"]


def test_round_trip_through_toml():
    p = load_profile("lora-domain", ["optim.seed=7"])
    import tomllib

    again = profile_from_dict(tomllib.loads(to_toml(p)))
    assert again == p


def test_every_field_has_help():
    for spec in field_specs():
        assert spec.help, spec.key
        if spec.choices:
            assert spec.default in spec.choices, spec.key
    assert "optim.learning_rate" in ALL_KEYS


def test_hints_are_advisory():
    p = load_profile(
        "lora",
        [
            "optim.learning_rate=1e-2",
            "optim.epochs=8",
            "optim.batch_size=2",
            "optim.grad_accum=1",
            "optim.warmup_ratio=0",
        ],
    )
    keys = {h.key for h in hints(p)}
    assert {"optim.learning_rate", "optim.epochs", "optim.grad_accum", "optim.warmup_ratio"} <= keys
    assert hints(load_profile("lora")) == []
    full = load_profile("full", ["optim.learning_rate=2e-4"])
    assert any("full fine-tuning" in h.message for h in hints(full))
