"""vskip: V-Skip chain-of-thought compression for multimodal LLMs.

The typed public API; each stage is also a `vskip` CLI command:

    from vskip import load_model, generate, score_records, compress_records, distill, evaluate, merge_student
"""

from .compress import compress_records
from .datasets import import_dataset
from .demo import DemoConfig, run_demo
from .distill import DistillSettings, LoraSettings, distill
from .errors import BadInput, UnsupportedModel, VSkipError
from .evaluate import EvalSettings, evaluate
from .gate import keep_mask, register_method
from .generate import generate
from .lora import load_with_adapter
from .merge import merge_student
from .models import LoadedModel, load_model
from .records import read_records
from .report import write_report
from .score import score_records

__all__ = [
    "BadInput",
    "DemoConfig",
    "DistillSettings",
    "EvalSettings",
    "LoadedModel",
    "LoraSettings",
    "UnsupportedModel",
    "VSkipError",
    "compress_records",
    "distill",
    "evaluate",
    "generate",
    "import_dataset",
    "keep_mask",
    "load_model",
    "load_with_adapter",
    "merge_student",
    "read_records",
    "register_method",
    "run_demo",
    "score_records",
    "write_report",
]
