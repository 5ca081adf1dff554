"""Load a checkpoint (a directory, a hub id, or the shipped `vskip-tiny`) with its processor."""

from __future__ import annotations

import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import getproxies

import torch
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
from transformers.utils import is_torchvision_available

from ..errors import BadInput, UnsupportedModel
from ..hub import is_hub_id
from ..precision import dtype_name, resolve_dtype
from .families import ModelFamily, family_for

TINY_NAME = "vskip-tiny"
TINY_DIR = Path(__file__).parent / "vskip-tiny"
# Seconds to wait for the hub's host before calling it unreachable: a working network answers far sooner.
HUB_PROBE_TIMEOUT = 3.0


@dataclass
class LoadedModel:
    model: torch.nn.Module
    processor: object
    family: ModelFamily
    path: str

    @property
    def precision(self) -> str:
        """The weights' dtype ("bfloat16", "float32", …): what every stage's output records."""
        return dtype_name(self.model.dtype)


def resolve(name_or_path: str) -> str:
    """`vskip-tiny` names the shipped model; anything else is a directory (`~` expanded) or a hub id."""
    return str(TINY_DIR) if name_or_path == TINY_NAME else os.path.expanduser(str(name_or_path))


def model_identity(name_or_path: str) -> str:
    """The model as a journal records it: the shipped model by its name, another local directory by its absolute
    path (however it was written), a hub id as it is."""
    path = Path(resolve(name_or_path))
    if not path.exists():
        return str(name_or_path)
    return TINY_NAME if path.resolve() == TINY_DIR.resolve() else str(path.resolve())


def portable_path(name_or_path: str | Path, directory: str | Path) -> str:
    """A model or adapter as a file in `directory` records it, so that the file works wherever it is moved with
    what it names: the shipped model by its name, a hub id as it is, a local directory relative to `directory`
    (starting with `./` or `../`, so it never reads as a hub id), or absolute where it was given absolute.
    `located_path` reads it back."""
    identity = model_identity(str(name_or_path))
    if not Path(identity).is_absolute() or Path(resolve(str(name_or_path))).is_absolute():
        return identity
    relative = Path(os.path.relpath(identity, Path(directory).resolve())).as_posix()
    return relative if relative.startswith(".") else f"./{relative}"


def located_path(recorded: str, directory: str | Path) -> str:
    """What `portable_path` recorded in a file in `directory`, as `load_model` (or an adapter's loader) takes it
    from here: a path relative to the file joined to `directory`; the shipped model, a hub id or an absolute
    path as they are."""
    if recorded == TINY_NAME or is_hub_id(recorded) or Path(os.path.expanduser(recorded)).is_absolute():
        return recorded
    return str(Path(directory) / recorded)


def check_model_source(name_or_path: str) -> None:
    """Refuse, in one line and at once, a model that cannot be where it is said to be.

    A name that is not a hub id (`is_hub_id`) is a local path and must exist: it is never sent to the
    hub. A hub id that is not a local directory and not in the hub cache needs the hub: refused when
    offline mode is on (`HF_HUB_OFFLINE`), or when the hub's host (or the proxy) does not answer within
    `HUB_PROBE_TIMEOUT` seconds, instead of the minute of retries transformers would spend.
    """
    path = resolve(name_or_path)
    if Path(path).exists():
        return
    if not is_hub_id(path):
        raise BadInput(f"{path}: no such model directory (a path, so not looked up on the hub)")
    from huggingface_hub import constants, is_offline_mode, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(path, "config.json"), str):
        return
    if is_offline_mode():
        raise BadInput(
            f"{path}: not a local directory nor in the hub cache, and HF_HUB_OFFLINE is set; "
            "download it while online, or pass a local directory"
        )
    endpoint = urlsplit(getproxies().get("https") or constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=HUB_PROBE_TIMEOUT).close()
    except OSError:
        raise BadInput(
            f"{path}: not a local directory, and the hub ({endpoint.hostname}) cannot be reached; "
            "check the network, or pass a local directory"
        ) from None


def load_model(
    name_or_path: str = TINY_NAME,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str = "auto",
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Model (eval mode) and processor of a supported image-text checkpoint.

    `dtype` is a torch dtype or one of `precision.DTYPES`; `auto` follows the project's policy
    (bfloat16 on a GPU that supports it, else float32), not the checkpoint's own dtype.
    """
    check_model_source(name_or_path)
    path = resolve(name_or_path)
    device = torch.device(device) if device is not None else default_device()
    dtype = resolve_dtype(dtype, device) if isinstance(dtype, str) else dtype
    family = family_for(load_config(path, trust_remote_code=trust_remote_code))
    processor = load_processor(path, trust_remote_code=trust_remote_code)
    if not allow_pickle:
        refuse_pickle(path)
    try:
        model = AutoModelForImageTextToText.from_pretrained(
            path,
            dtype=dtype,
            use_safetensors=None if allow_pickle else True,
            trust_remote_code=trust_remote_code,
        )
    except OSError as err:
        raise UnsupportedModel(f"{path}: weights could not be loaded ({first_line(err)})") from None
    model.to(device).eval()
    return LoadedModel(model, processor, family, path)


def load_config(path: str, *, trust_remote_code: bool = False):
    """The checkpoint's config; `UnsupportedModel` in one line where there is none, or it runs its own code and
    `trust_remote_code` is off."""
    try:
        return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        if "custom code" in str(err):
            raise UnsupportedModel(
                f"{path}: the checkpoint runs its own code; pass --trust-remote-code if you trust the source"
            ) from None
        raise UnsupportedModel(f"{path}: not a loadable model ({first_line(err)})") from None


def first_line(err: BaseException) -> str:
    """The error's first sentence: transformers' messages go on to advice about the hub."""
    return (str(err).splitlines() or [type(err).__name__])[0].split(". ")[0]


def default_device() -> torch.device:
    """This process's device: its own GPU under a multi-process launch, else the GPU if any, else the CPU."""
    from ..distributed import device

    return device()


def refuse_pickle(path: str) -> None:
    """Pickled weights (`.bin`, `.pt`) can run code when loaded: a directory with only those is refused."""
    directory = Path(path)
    if directory.is_dir() and not any(directory.glob("*.safetensors")):
        pickled = sorted(p.name for p in directory.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl"))
        if pickled:
            raise UnsupportedModel(
                f"{path}: has only pickled weights ({', '.join(pickled)}), which can run code when loaded; "
                "convert them to safetensors, or pass --allow-pickle if you trust the source"
            )


# The files of a checkpoint that make its processor (tokenizer, image processor, chat template): a model
# saved from a fine-tune gets them byte for byte from its base, whatever processor class loaded them.
PROCESSOR_FILES = ("tokenizer*", "*processor_config.json", "preprocessor_config.json", "chat_template*",
                   "special_tokens_map.json", "added_tokens.json", "vocab*", "merges.txt")


def checkpoint_dir(name_or_path: str) -> Path:
    """The directory a model loads from: its own, or, for a hub id, its snapshot in the hub cache."""
    path = resolve(name_or_path)
    if Path(path).is_dir():
        return Path(path)
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(path, "config.json")
    if not isinstance(cached, str):
        raise BadInput(f"{path}: not a local directory nor in the hub cache; load it once first")
    return Path(cached).parent


def copy_processor(name_or_path: str, out_dir: str | Path) -> None:
    """Copy the processor's files of a checkpoint (`PROCESSOR_FILES`) into `out_dir`, beside a model saved there."""
    source = checkpoint_dir(name_or_path)
    for pattern in PROCESSOR_FILES:
        for path in source.glob(pattern):
            if path.is_file():
                shutil.copyfile(path, Path(out_dir) / path.name)


def save_checkpoint(model: torch.nn.Module, source: str, out_dir: str | Path) -> None:
    """Save `model` in `out_dir` as a checkpoint that loads as any model does: its config and safetensors weights,
    with the processor files of `source`, the checkpoint it was made from (`copy_processor`)."""
    model.save_pretrained(out_dir)
    copy_processor(source, out_dir)


def load_processor(path: str, *, trust_remote_code: bool = False):
    """The checkpoint's processor; without torchvision, the same processor for images only.

    transformers 5 builds every Qwen-VL processor with a video processor, and every video
    processor needs torchvision, which has no CPU wheel for some platforms. Images need none of
    it, so where torchvision is missing we assemble the processor from its image processor and
    tokenizer and give it a placeholder video processor that is never called.
    """
    path = resolve(path)
    try:
        try:
            return AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
        except (ImportError, AttributeError, TypeError, ValueError):
            if is_torchvision_available() or not _has_video_processor(path):
                raise
        return _image_only_processor(path, trust_remote_code)
    except (OSError, ImportError, AttributeError, TypeError, ValueError, KeyError) as err:
        raise UnsupportedModel(
            f"{path}: no usable processor ({first_line(err)}); save the model's processor "
            "(processor.save_pretrained) into the same directory"
        ) from None


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
