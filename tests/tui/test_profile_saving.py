"""Saving the new-run form as a profile: round trips, kept comments, diffs."""

from __future__ import annotations

from tunedeck.engine.config.profile_diff import difference_lines, flatten
from tunedeck.engine.config.profile_loading import find_profile, load_profile
from tunedeck.tui.profile_saving import diff_against_parent, nest, save_profile


def _same(a, b) -> bool:
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        d.pop("extends"), d.pop("description")
    return da == db


def test_new_profile_writes_extends_and_only_the_changed_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    profile = load_profile("demo-cpu")
    profile.optim.learning_rate = 1e-3
    profile.data.max_seq_len = 128
    path = tmp_path / "mine.toml"
    lines = save_profile(profile, path, extends="demo-cpu")
    text = path.read_text()
    assert 'extends = "demo-cpu"' in text
    assert "learning_rate = 0.001" in text and "max_seq_len = 128" in text
    assert "batch_size" not in text and "[lora]" not in text  # unchanged keys stay inherited
    assert lines == ["data.max_seq_len: 256 -> 128", "optim.learning_rate: 0.003 -> 0.001"]
    assert _same(load_profile(path), profile)


def test_editing_a_user_profile_keeps_its_comments_and_layout(tmp_path):
    path = tmp_path / "house.toml"
    path.write_text(
        '# our house style\ndescription = "house"\nextends = "lora"\n\n[lora]\n'
        "r = 32          # new domain knowledge\nalpha = 64\n\n[optim]\nepochs = 2  # keep it short\n"
    )
    profile = load_profile(path)
    profile.lora.r = 16
    profile.optim.grad_accum = 8
    lines = save_profile(profile, path, edit_existing=True)
    text = path.read_text()
    assert "# our house style" in text and "# keep it short" in text and "# new domain knowledge" in text
    assert "r = 16" in text and "alpha = 64" in text and "grad_accum = 8" in text
    assert lines == ["lora.r: 32 -> 16", "optim.grad_accum: 4 -> 8"]
    assert _same(load_profile(path), profile)


def test_diff_against_parent_and_flat_helpers():
    lines = diff_against_parent(find_profile("demo-cpu"))
    assert "lora.r: 8 -> 16" in lines and "optim.learning_rate: 0.0002 -> 0.003" in lines
    assert not any(line.startswith("lora.target_modules") for line in lines)
    assert nest(flatten({"optim": {"epochs": 2.0}, "description": "x"})) == {
        "optim": {"epochs": 2.0},
        "description": "x",
    }
    assert difference_lines({"gate": {"when": "end"}}, {"gate": {"when": "never"}}) == ["gate.when: 'end' -> 'never'"]
