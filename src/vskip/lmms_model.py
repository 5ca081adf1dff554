"""`--model vskip_qwen2_vl` in lmms-eval: its Qwen2-VL class, giving the processor the image's own pixels.

lmms-eval's `qwen2_vl` hands its processor every image re-encoded as a JPEG of quality 85
(`export.HARNESS_JPEG_QUALITY`), which `vskip evaluate` does not; on vskip-synth's small drawings that changes some
replies. This class differs from it in that alone (PNG, lossless), so that lmms-eval's figures are `vskip
evaluate`'s. vskip registers it through the entry-point group lmms-eval reads (`lmms_eval.models`, pyproject.toml);
it imports lmms-eval, so nothing else in vskip imports it.
"""

from __future__ import annotations

from lmms_eval.models.model_utils.media_encoder import encode_image_to_data_url
from lmms_eval.models.simple.qwen2_vl import Qwen2_VL
from PIL import Image

MODEL_ID = "vskip_qwen2_vl"


class LosslessQwen2VL(Qwen2_VL):
    def _encode_image_data_url(self, image: Image.Image) -> str:
        return encode_image_to_data_url(image, image_format="PNG", convert_rgb=True)


def manifest():
    """The entry point lmms-eval's model registry loads."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path=f"{__name__}.{LosslessQwen2VL.__name__}")
