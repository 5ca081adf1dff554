"""Model loading and the per-architecture adapters."""

from .adapters import ADAPTERS, Adapter, adapter_for, supported_model_types
from .loading import (
    TINY_DIR,
    TINY_NAME,
    LoadedModel,
    check_model_source,
    load_model,
    load_processor,
    located_path,
    model_identity,
    portable_path,
    resolve,
    save_checkpoint,
)

__all__ = [
    "ADAPTERS",
    "Adapter",
    "LoadedModel",
    "TINY_DIR",
    "TINY_NAME",
    "adapter_for",
    "check_model_source",
    "load_model",
    "load_processor",
    "located_path",
    "model_identity",
    "portable_path",
    "resolve",
    "save_checkpoint",
    "supported_model_types",
]
