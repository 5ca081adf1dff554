"""vskip: V-Skip chain-of-thought compression for multimodal LLMs.

The typed public API; each stage is also a `vskip` CLI command:

    from vskip import load_model, generate, score_records, compress_records, distill, evaluate, merge_student
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from .errors import BadInput, UnsupportedModel, VSkipError

# The module that defines each name of the API. A name is imported on first use, so that `import vskip`,
# and with it the start of every `vskip` command, does not load torch and transformers (seconds) before
# a stage needs them.
_DEFINED_IN = {
    "DemoSettings": "settings",
    "DistillSettings": "settings",
    "EvalSettings": "settings",
    "LoadedModel": "models",
    "LoraSettings": "settings",
    "WordScores": "gate",
    "compress_records": "compress",
    "distill": "distill",
    "evaluate": "evaluate",
    "export_lmms_eval": "export",
    "generate": "generate",
    "import_dataset": "datasets",
    "keep_mask": "gate",
    "load_model": "models",
    "load_with_adapter": "lora",
    "merge_student": "merge",
    "read_records": "records",
    "register_method": "gate",
    "run_demo": "demo",
    "score_records": "score",
    "write_report": "report",
}


class _Package(ModuleType):
    def __getattr__(self, name: str):
        if name not in _DEFINED_IN:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{self.__name__}.{_DEFINED_IN[name]}"), name)
        super().__setattr__(name, value)
        return value

    def __setattr__(self, name: str, value) -> None:
        # Importing a submodule binds it on its package, and three share their function's name: once some
        # code had imported `vskip.evaluate`, `from vskip import evaluate` would give the module.
        if not (name in _DEFINED_IN and isinstance(value, ModuleType)):
            super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *_DEFINED_IN})


sys.modules[__name__].__class__ = _Package

__all__ = ["BadInput", "UnsupportedModel", "VSkipError", *_DEFINED_IN]
