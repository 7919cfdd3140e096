"""Property tests: the parser and the image loader fail only with their own typed errors."""

from __future__ import annotations

import contextlib
import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ovparts import Vocabulary
from ovparts.errors import ImageError, VocabularyError
from ovparts.imageio import load_image

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Names made of letters, digits, spaces, apostrophes, dashes and non-ASCII letters, never the separators.
name_text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs"),
        blacklist_characters=":;,\n\r\t\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029",
    ),
    min_size=1,
    max_size=20,
).filter(lambda s: s.strip() and "'s " not in s)


@SETTINGS
@given(st.text(max_size=200))
def test_parse_raises_only_vocabulary_errors(text):
    try:
        vocab = Vocabulary.parse(text)
    except VocabularyError as err:
        assert str(err).endswith(".") and "\n" not in str(err)
    else:
        assert len(vocab) >= 1


@SETTINGS
@given(st.lists(st.tuples(name_text, st.lists(name_text, min_size=0, max_size=4)), min_size=1, max_size=6))
def test_parse_format_parse_is_identity(entries):
    text = "; ".join(f"{obj}: {', '.join(parts)}" if parts else obj for obj, parts in entries)
    try:
        vocab = Vocabulary.parse(text)
    except VocabularyError:
        return  # e.g. no entry had any part
    again = Vocabulary.parse(vocab.format())
    assert again == vocab and again.objects == vocab.objects
    assert again.format() == vocab.format()


@SETTINGS
@given(st.binary(max_size=2048))
def test_image_loader_on_arbitrary_bytes(tmp_path_factory, payload):
    path = tmp_path_factory.mktemp("bytes") / "file.img"
    path.write_bytes(payload)
    try:
        image = load_image(path)
    except ImageError as err:
        assert str(err).endswith(".") and "\n" not in str(err)
    else:
        assert image.mode == "RGB"


@SETTINGS
@given(st.integers(0, 400), st.integers(0, 5))
def test_image_loader_on_damaged_png(tmp_path_factory, cut, flips):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(cut).integers(0, 255, (9, 7, 3), np.uint8)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue()[: max(1, len(buffer.getvalue()) - cut)])
    for i in range(flips):
        data[(i * 37) % len(data)] ^= 0xFF
    path = tmp_path_factory.mktemp("png") / "x.png"
    path.write_bytes(bytes(data))
    with contextlib.suppress(ImageError):  # refusing a damaged file is fine; returning garbage is not
        assert load_image(path).size == (7, 9)


@SETTINGS
@given(
    st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_]),
    st.lists(st.integers(0, 6), min_size=1, max_size=4),
)
def test_image_loader_on_arrays(dtype, shape):
    array = np.ones(shape, dtype=dtype)
    try:
        image = load_image(array)
    except ImageError:
        return
    assert image.size == (shape[1], shape[0])
