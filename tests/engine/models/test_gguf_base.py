"""GGUF bases without a real model: which files are found, what cannot be read is refused before anything
loads, a half-written cache folder never counts, and run.toml keeps the provenance (older records still load).
The de-quantisation itself runs on SmolLM2 in tests/real/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tunedeck

from tunedeck.engine.models import gguf_base as G


def write_gguf(path: Path, arch: str) -> Path:
    import numpy as np

    GGUFWriter = pytest.importorskip("gguf", reason="the gguf package is not installed").GGUFWriter
    path.parent.mkdir(parents=True, exist_ok=True)
    w = GGUFWriter(str(path), arch=arch)
    w.add_name("tiny")
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "tunedeck" / "gguf"


def test_which_file_a_base_names(tmp_path, tiny_model_dir):
    one = write_gguf(tmp_path / "one" / "m.Q4_0.gguf", "llama")
    assert G.is_gguf_ref(str(one)) and G.is_gguf_ref(str(one.parent))
    assert not G.is_gguf_ref(str(tiny_model_dir)) and not G.is_gguf_ref("Qwen/Qwen2.5-0.5B-Instruct")
    assert G.find_gguf_file(str(one.parent)) == one.resolve()
    two = write_gguf(tmp_path / "one" / "m.Q8_0.gguf", "llama")
    with pytest.raises(G.GgufBaseError, match=r"2 \.gguf files .*model\.gguf_file"):
        G.find_gguf_file(str(one.parent))
    assert G.find_gguf_file(str(one.parent), "m.Q8_0.gguf") == two.resolve()
    with pytest.raises(G.GgufBaseError, match="not a local folder"):
        G.find_gguf_file(str(one), "m.Q8_0.gguf")
    with pytest.raises(G.GgufBaseError, match="no such GGUF file"):
        G.find_gguf_file(str(tmp_path / "missing.gguf"))


def test_unreadable_architecture_and_non_gguf_are_refused_by_name(tmp_path, cache):
    bert = write_gguf(tmp_path / "bert.gguf", "bert")
    with pytest.raises(G.GgufBaseError) as e:
        G.materialize_gguf(bert)
    assert str(bert) in str(e.value) and "'bert'" in str(e.value) and "llama" in str(e.value)
    junk = tmp_path / "junk.gguf"
    junk.write_text("not a gguf")
    with pytest.raises(G.GgufBaseError, match="not a readable GGUF file"):
        G.materialize_gguf(junk)
    assert not any(p.name != "hashes" for p in cache.iterdir())  # nothing half-built left behind


def test_hash_is_remembered_until_the_file_changes(tmp_path, cache):
    import hashlib

    f = tmp_path / "x.gguf"
    f.write_bytes(b"a" * 1000)
    assert G.file_sha256(f) == hashlib.sha256(b"a" * 1000).hexdigest()
    f.write_bytes(b"b" * 1001)
    assert G.file_sha256(f) == hashlib.sha256(b"b" * 1001).hexdigest()


def test_publish_keeps_the_first_complete_folder(tmp_path):
    def folder(name: str, marker: bool) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "weights").write_text(name)
        if marker:
            (d / G.MARKER).write_text(json.dumps({"sha256": "0" * 64, "source": "/x.gguf"}))
        return d

    final = tmp_path / "final"
    G.publish(folder("first", True), final)
    assert (final / "weights").read_text() == "first"
    G.publish(folder("second", True), final)  # another process finished too: the first stays whole
    assert (final / "weights").read_text() == "first"
    leftover = folder("leftover", False)
    leftover.rename(tmp_path / "final2")  # an incomplete folder under the final name never counts
    G.publish(folder("third", True), tmp_path / "final2")
    assert (tmp_path / "final2" / "weights").read_text() == "third"
    assert G.cached_gguf(final).source == Path("/x.gguf") and G.cached_gguf(tmp_path) is None


def test_run_refuses_an_unreadable_gguf_before_anything_loads(tmp_path, sft_data, workspace):
    bert = write_gguf(tmp_path / "models" / "bert.gguf", "bert")
    proc = tunedeck(
        "run",
        "lora",
        "--data",
        str(sft_data),
        "--set",
        f"model.base={json.dumps(str(bert))}",
        env={"XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    assert proc.returncode == 2, proc.stderr
    assert str(bert) in proc.stderr and "'bert'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (workspace / "runs").exists() or not any((workspace / "runs").iterdir())


def test_run_record_keeps_gguf_provenance_and_reads_older_records(tmp_path):
    from tunedeck.engine.config.profile_schema import Profile
    from tunedeck.engine.run.run_record import RunRecord, load_run_record, write_run_record

    rec = RunRecord(
        id="r1",
        name="r1",
        profile=Profile(),
        base_model="/c/ab",
        gguf_source="/m/x.gguf",
        gguf_sha256="ab" * 32,
        gguf_folder="/c/ab",
    )
    write_run_record(tmp_path, rec)
    back = load_run_record(tmp_path)
    assert (back.gguf_source, back.gguf_sha256, back.gguf_folder) == ("/m/x.gguf", "ab" * 32, "/c/ab")
    old = tmp_path / "old"
    old.mkdir()
    text = (tmp_path / "run.toml").read_text()
    (old / "run.toml").write_text("\n".join(line for line in text.splitlines() if not line.startswith("gguf_")))
    assert load_run_record(old).gguf_source == ""
