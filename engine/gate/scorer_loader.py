"""Python scorers of `python` checks: `module:function` imported, next to the eval set first."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Callable

from tunedeck.engine.gate.check_spec import CheckSpecError


def load_scorer(ref: str, base_dir: Path | None) -> Callable:
    if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", ref or ""):
        raise CheckSpecError(f"scorer {ref!r} must be 'module:function', e.g. 'my_scorers:is_polite'", "scorer")
    module_name, func_name = ref.split(":")
    added = False
    if base_dir is not None and str(base_dir) not in sys.path:
        sys.path.insert(0, str(base_dir))  # scorers usually sit next to the eval set
        added = True
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        where = f"{base_dir} and the Python path" if base_dir else "the Python path"
        raise CheckSpecError(f"scorer {ref!r}: no module named {e.name!r} (looked in {where})", "scorer") from None
    except Exception as e:
        raise CheckSpecError(
            f"scorer {ref!r}: importing {module_name!r} failed: {type(e).__name__}: {e}", "scorer"
        ) from None
    finally:
        if added:
            sys.path.remove(str(base_dir))
    fn = getattr(module, func_name, None)
    if fn is None:
        raise CheckSpecError(f"scorer {ref!r}: module {module_name!r} has no {func_name!r}", "scorer")
    if not callable(fn):
        raise CheckSpecError(f"scorer {ref!r}: {func_name!r} is not a function", "scorer")
    return fn
