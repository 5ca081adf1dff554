"""Media: a record's images and video frames decoded, as the model's processor wants them (RGB).

Decoding is where a dataset's files meet Pillow; every defect of an image (missing, empty, a directory,
broken, over Pillow's decompression-bomb limit) is a `BadRecord` naming the file, so that `records.check_records`
refuses the record, or sets it aside, before any work.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from .errors import BadInput, BadRecord


def load_image(path: str | Path) -> Image.Image:
    """Open an image as RGB; palette, alpha and 16-bit images are converted, broken ones rejected."""
    path = Path(path)
    if path.is_dir():
        raise BadRecord(f"{path}: is a directory, not an image")
    if not path.is_file():
        raise BadRecord(f"{path}: image not found")
    if path.stat().st_size == 0:
        raise BadRecord(f"{path}: image file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return to_rgb(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadRecord(
            f"{path}: image is larger than Pillow's decompression-bomb limit ({Image.MAX_IMAGE_PIXELS} pixels)",
            "shrink it",
        ) from None
    except Exception as err:  # Pillow's decoders raise many types (OSError, ValueError, SyntaxError, ...)
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise BadRecord(f"{path}: not a readable image ({reason})") from None


def load_video(paths: Iterable[str | Path]) -> list[Image.Image]:
    """A video's frames, each opened as `load_image` opens an image. Refused where torchvision is missing
    (transformers' video processors are built on it) and where the frames differ in size (the processor
    stacks them into one array)."""
    paths = list(paths)
    if paths and not torchvision_installed():
        raise BadInput("videos need torchvision: pip install torchvision matching your torch")
    frames = [load_image(path) for path in paths]
    if len({frame.size for frame in frames}) > 1:
        sizes = ", ".join(dict.fromkeys(f"{width}x{height}" for width, height in (frame.size for frame in frames)))
        raise BadRecord(f"the video's frames differ in size ({sizes})")
    return frames


def torchvision_installed() -> bool:
    return importlib.util.find_spec("torchvision") is not None


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode.startswith("I"):
        # 16-bit greyscale: scale to 8 bits rather than clip, so the picture survives.
        image = image.convert("I").point(lambda value: value / 256).convert("L")
    if image.mode in ("RGBA", "LA", "P", "PA", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
