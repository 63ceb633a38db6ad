import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the shared fixtures in tests/conftest.py

from conftest import demo_rows, dpo_data, sft_data, tiny_model_dir, workspace  # noqa: E402,F401
