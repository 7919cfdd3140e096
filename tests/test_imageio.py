import io

import numpy as np
import pytest
from PIL import Image

from ovparts.errors import ImageError
from ovparts.imageio import load_image


@pytest.fixture
def photo(chelsea):
    return Image.fromarray(chelsea)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16", "I", "F", "1"])
def test_modes_are_converted(tmp_path, photo, mode):
    if mode in ("I;16", "I", "F"):
        converted = Image.fromarray((np.asarray(photo.convert("L"), dtype=np.uint16) * 257).astype(np.uint16))
        converted = converted if mode == "I;16" else converted.convert(mode)
    else:
        converted = photo.convert(mode)
    suffix = ".tiff" if mode in ("CMYK", "F", "I") else ".png"
    path = tmp_path / f"img{suffix}"
    converted.save(path)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == photo.size
    assert np.asarray(image).std() > 10  # content survived the conversion


def test_exif_rotation_is_honoured(tmp_path, photo):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rotated.jpg"
    photo.save(path, exif=exif)
    assert load_image(path).size == (photo.height, photo.width)


def test_truncated_and_empty_files(tmp_path, photo):
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(truncated)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="is empty"):
        load_image(empty)


def test_decompression_bomb_refused(tmp_path):
    path = tmp_path / "big.png"
    Image.new("L", (2000, 2000)).save(path)
    with pytest.raises(ImageError, match="more than the limit"):
        load_image(path, max_pixels=1_000_000)


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((4, 4), np.uint8),
        np.zeros((4, 4, 1), np.float32),
        np.ones((4, 4, 4), np.uint16),
        np.ones((3, 5, 3), bool),
    ],
)
def test_arrays_of_various_shapes(array):
    assert load_image(array).size == (array.shape[1], array.shape[0])


@pytest.mark.parametrize(
    "array", [np.zeros((4, 4, 2), np.uint8), np.full((4, 4, 3), np.nan), np.zeros((0, 4, 3), np.uint8)]
)
def test_bad_arrays(array):
    with pytest.raises(ImageError):
        load_image(array)
