"""Where rows come from: the reader for a path, the table readers (Parquet, Arrow, datasets, hub) and locations.

Sources: JSONL (read byte by byte here, so every problem has its exact line), a JSON array, CSV,
Parquet, a `datasets` save_to_disk folder, or a hub dataset id when the machine has network.
Locations are 1-based file lines for text files (JSONL; the line a row's object opens on in a JSON
array, pretty-printed or not; the first line of a CSV record) and 1-based rows for Parquet,
save_to_disk folders and hub datasets (LoadedDataset.unit says which).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlparse

from tunedeck.engine.data.problems import DatasetError
from tunedeck.engine.data.text_sources import MAX_LINE_BYTES, Item, decode_cell, read_csv, read_json, read_jsonl


def _read_table_rows(batches: Iterator[list[dict]], total: int, progress: Callable | None) -> Iterator[Item]:
    i = 0
    for batch in batches:
        for obj in batch:
            i += 1
            yield i, {k: decode_cell(k, v) for k, v in obj.items()}
        if progress:
            progress(i, total)


def _read_parquet(path: Path, progress: Callable | None) -> Iterator[Item]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise DatasetError(f"{path}: not a readable Parquet file ({e})") from None

    def batches() -> Iterator[list[dict]]:
        try:
            for b in pf.iter_batches(batch_size=4096):
                yield b.to_pylist()
        except Exception as e:  # a corrupt page shows up only when read
            raise DatasetError(f"{path}: damaged Parquet data ({e})") from None

    yield from _read_table_rows(batches(), pf.metadata.num_rows, progress)


def _hf_rows(ds, progress: Callable | None) -> Iterator[Item]:
    n = len(ds)
    batches = (ds[i : i + 4096] for i in range(0, n, 4096))
    dict_batches = ([dict(zip(b, vals)) for vals in zip(*b.values())] for b in batches)
    yield from _read_table_rows(dict_batches, n, progress)


def _pick_split(ds, where: str):
    from datasets import DatasetDict

    if isinstance(ds, DatasetDict):
        if "train" in ds:
            return ds["train"]
        if len(ds) == 1:
            return next(iter(ds.values()))
        raise DatasetError(f"{where}: has splits {', '.join(ds)}; none is called 'train'")
    return ds


def _read_arrow(path: Path, progress: Callable | None) -> Iterator[Item]:
    """One Arrow file as `datasets` writes them (save_to_disk shards, its cache)."""
    from datasets import Dataset

    try:
        ds = Dataset.from_file(str(path))
    except Exception as e:  # pyarrow raises several types for a file that is something else
        raise DatasetError(f"{path}: not a readable Arrow file ({e})") from None
    yield from _hf_rows(ds, progress)


def _read_saved(path: Path, progress: Callable | None) -> Iterator[Item]:
    from datasets import load_from_disk

    try:
        ds = load_from_disk(str(path))
    except Exception as e:  # FileNotFoundError or a datasets error for a folder that is something else
        raise DatasetError(f"{path}: a folder, but not a dataset saved with save_to_disk ({e})") from None
    yield from _hf_rows(_pick_split(ds, str(path)), progress)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub answers at all; offline, its client retries for most of a minute before failing."""
    if (
        os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        or os.environ.get("HF_DATASETS_OFFLINE") == "1"
    ):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _read_hub(ref: str, progress: Callable | None) -> Iterator[Item]:
    import datasets

    if not hub_reachable():
        raise DatasetError(
            f"{ref}: no such file or folder, and the Hugging Face hub cannot be reached to load it as a hub dataset"
        )
    try:
        ds = datasets.load_dataset(ref)
    except Exception as e:  # offline, unknown id, gated: all user-facing
        raise DatasetError(f"{ref}: no such file, and loading it as a hub dataset failed: {e}") from None
    yield from _hf_rows(_pick_split(ds, ref), progress)


def _looks_like_hub_id(ref: str) -> bool:
    parts = ref.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not ref.startswith((".", "~"))
        and Path(ref).suffix.lower() not in (".jsonl", ".json", ".csv", ".parquet", ".tsv", ".txt")
    )


def read_items(
    path: str | Path, max_line_bytes: int = MAX_LINE_BYTES, progress: Callable | None = None
) -> Iterator[Item]:
    """Yield (line, object-or-Problem) for every row of the source."""
    p = Path(path).expanduser()
    if p.is_dir():
        return _read_saved(p, progress)
    if not p.exists():
        if _looks_like_hub_id(str(path)):
            return _read_hub(str(path), progress)
        raise DatasetError(f"{path}: no such file or folder")
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return read_jsonl(p, max_line_bytes, progress)
    if suffix == ".json":
        return read_json(p, progress)
    if suffix == ".csv":
        return read_csv(p, progress)
    if suffix in (".parquet", ".pq"):
        return _read_parquet(p, progress)
    if suffix == ".arrow":
        return _read_arrow(p, progress)
    with open(p, "rb") as f:
        head = f.read(4)
    if head == b"PAR1":
        return _read_parquet(p, progress)
    if head.lstrip()[:1] in (b"{", b"["):
        return read_jsonl(p, max_line_bytes, progress) if head.lstrip()[:1] == b"{" else read_json(p, progress)
    raise DatasetError(
        f"{path}: unknown file type {suffix or '(no extension)'}; use .jsonl, .json, .csv, .parquet, "
        ".arrow or a save_to_disk folder"
    )


def location_unit(path: str | Path) -> str:
    """Text files report file lines; Parquet, save_to_disk folders and hub datasets report rows."""
    p = Path(path).expanduser()
    if not p.is_file():
        return "row"
    if p.suffix.lower() in (".parquet", ".pq", ".arrow"):
        return "row"
    with open(p, "rb") as f:
        return "row" if f.read(4) == b"PAR1" else "line"
