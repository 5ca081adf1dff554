"""Model loading and the per-architecture families."""

from .families import MODEL_FAMILIES, ModelFamily, family_for, supported_model_types
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
    "LoadedModel",
    "MODEL_FAMILIES",
    "ModelFamily",
    "TINY_DIR",
    "TINY_NAME",
    "check_model_source",
    "family_for",
    "load_model",
    "load_processor",
    "located_path",
    "model_identity",
    "portable_path",
    "resolve",
    "save_checkpoint",
    "supported_model_types",
]
