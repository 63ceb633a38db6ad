"""Path completion in the new-run form: local files and folders, and models in the Hugging Face cache."""

from __future__ import annotations

import asyncio

from tunedeck.tui.path_suggester import PathSuggester, cached_models, complete_path


def suggest(value: str, models: bool = False) -> str | None:
    return asyncio.run(PathSuggester(models=models).get_suggestion(value))


def test_files_and_folders_complete(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("{}\n")
    (tmp_path / "data" / ".hidden.jsonl").write_text("{}\n")
    (tmp_path / "golden.jsonl").write_text("{}\n")
    assert complete_path(f"{tmp_path}/da") == f"{tmp_path}/data/"
    assert complete_path(f"{tmp_path}/data/") == f"{tmp_path}/data/train.jsonl"  # hidden files only when asked
    assert complete_path(f"{tmp_path}/data/.h") == f"{tmp_path}/data/.hidden.jsonl"
    assert complete_path(f"{tmp_path}/golden.jsonl") is None  # already whole
    assert complete_path(f"{tmp_path}/nothing") is None
    # data.path lists: the item after the last comma completes, the rest is kept as typed
    assert (
        suggest(f"{tmp_path}/golden.jsonl, {tmp_path}/data/tr")
        == f"{tmp_path}/golden.jsonl, {tmp_path}/data/train.jsonl"
    )


def test_models_in_the_hugging_face_cache_complete_model_base(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    for name in ("models--Qwen--Qwen2.5-0.5B-Instruct", "models--Qwen--Qwen2.5-1.5B", "datasets--x--y"):
        (cache / name).mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    assert cached_models() == ["Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-1.5B"]
    assert suggest("Qwen/Qwen2.5-1", models=True) == "Qwen/Qwen2.5-1.5B"
    assert suggest("Qwen/Qwen2.5-1") is None  # only model.base offers cached models
