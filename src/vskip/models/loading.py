"""Load a checkpoint (a directory, a hub id, or the shipped `vskip-tiny`) with its processor."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
from transformers.utils import is_torchvision_available

from ..errors import UnsupportedModel
from .adapters import Adapter, adapter_for

TINY_NAME = "vskip-tiny"
TINY_DIR = Path(__file__).parent / "vskip-tiny"


@dataclass
class LoadedModel:
    model: torch.nn.Module
    processor: object
    adapter: Adapter
    path: str


def resolve(name_or_path: str) -> str:
    """`vskip-tiny` names the shipped model; anything else is a directory or a hub id."""
    return str(TINY_DIR) if name_or_path == TINY_NAME else str(name_or_path)


def load_model(
    name_or_path: str = TINY_NAME,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str = "auto",
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Model (eval mode) and processor of a supported image-text checkpoint."""
    path = resolve(name_or_path)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise UnsupportedModel(f"{path}: not a loadable model ({str(err).splitlines()[0]})") from None
    adapter = adapter_for(config)
    processor = load_processor(path, trust_remote_code=trust_remote_code)
    model = AutoModelForImageTextToText.from_pretrained(
        path,
        dtype=dtype,
        use_safetensors=None if allow_pickle else True,
        trust_remote_code=trust_remote_code,
    )
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
    return LoadedModel(model, processor, adapter, path)


def load_processor(path: str, *, trust_remote_code: bool = False):
    """The checkpoint's processor; without torchvision, the same processor for images only.

    transformers 5 builds every Qwen-VL processor with a video processor, and every video
    processor needs torchvision, which has no CPU wheel for some platforms. Images need none of
    it, so where torchvision is missing we assemble the processor from its image processor and
    tokenizer and give it a placeholder video processor that is never called.
    """
    path = resolve(path)
    try:
        return AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (ImportError, AttributeError, TypeError, ValueError) as err:
        if is_torchvision_available() or not _has_video_processor(path):
            raise UnsupportedModel(f"{path}: no usable processor ({str(err).splitlines()[0]})") from None
    return _image_only_processor(path, trust_remote_code)


def _has_video_processor(path: str) -> bool:
    config = Path(path) / "processor_config.json"
    return config.is_file() and "video_processor" in json.loads(config.read_text())


def video_processor_or_placeholder(class_name: str):
    """The named video processor, or, without torchvision, a placeholder the processor accepts."""
    import transformers

    if is_torchvision_available():
        return getattr(transformers, class_name)()
    import transformers.processing_utils as processing_utils
    from transformers.video_processing_utils import VideoProcessorMixin

    # ProcessorMixin checks each part's class by looking its base class up on the transformers
    # module, which exports VideoProcessorMixin only when torchvision is present.
    processing_utils.transformers_module.VideoProcessorMixin = VideoProcessorMixin
    return VideoProcessorMixin()


def _image_only_processor(path: str, trust_remote_code: bool):
    import transformers
    from transformers import AutoImageProcessor, AutoTokenizer

    config = json.loads((Path(path) / "processor_config.json").read_text())
    chat_template_file = Path(path) / "chat_template.jinja"
    return getattr(transformers, config["processor_class"])(
        image_processor=AutoImageProcessor.from_pretrained(path, trust_remote_code=trust_remote_code),
        tokenizer=AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code),
        video_processor=video_processor_or_placeholder(config["video_processor"]["video_processor_type"]),
        chat_template=chat_template_file.read_text() if chat_template_file.is_file() else None,
    )
