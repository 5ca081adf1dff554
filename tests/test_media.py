import numpy as np
import pytest
from PIL import Image

from vskip.errors import BadInput
from vskip.media import load_image


def test_images_of_every_mode_come_out_rgb(tmp_path):
    images = {
        "p.png": Image.new("RGB", (8, 8), "red").convert("P", palette=Image.Palette.ADAPTIVE),
        "rgba.png": Image.new("RGBA", (8, 8), (0, 0, 255, 0)),
        "la.png": Image.new("LA", (8, 8), (0, 128)),
        "g16.png": Image.fromarray((np.arange(64).reshape(8, 8) * 1000).astype(np.uint16)),
        "g16b.tif": Image.fromarray((np.arange(64).reshape(8, 8) * 1000).astype(">u2")),
        "cmyk.jpg": Image.new("CMYK", (8, 8)),
        "bw.png": Image.new("1", (8, 8), 1),
    }
    for name, image in images.items():
        image.save(tmp_path / name)
        converted = load_image(tmp_path / name)
        assert converted.mode == "RGB" and converted.size == (8, 8), name
    assert load_image(tmp_path / "rgba.png").getpixel((0, 0)) == (255, 255, 255)  # transparent → white
    assert load_image(tmp_path / "g16.png").getpixel((7, 7)) == (63 * 1000 // 256,) * 3  # scaled, not clipped


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "image not found"), ("dir", "is a directory, not an image"), (b"", "image file is empty"),
     (b"GIF89a\x00\x01", "not a readable image")],
)
def test_broken_images_are_bad_input(tmp_path, content, message):
    if content == "dir":
        (tmp_path / "x.png").mkdir()
    elif content is not None:
        (tmp_path / "x.png").write_bytes(content)
    with pytest.raises(BadInput, match=message):
        load_image(tmp_path / "x.png")


def test_an_image_over_the_decompression_bomb_limit_is_bad_input(tmp_path, monkeypatch):
    Image.new("RGB", (40, 40)).save(tmp_path / "x.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # warning above 1000 pixels, error above 2000
    with pytest.raises(BadInput, match="decompression-bomb limit"):
        load_image(tmp_path / "x.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1500)
    with pytest.raises(BadInput, match="decompression-bomb limit"):
        load_image(tmp_path / "x.png")
