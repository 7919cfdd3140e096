"""Every corpus case through the Python API and the CLI: a correct result or one clear sentence."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import ovparts
from ovparts.cli import main
from ovparts.errors import ImageError, MaskError, OvpartsError, VocabularyError
from ovparts.imageio import load_image

from .corpus import ARRAY_CASES, ERROR, IMAGE_CASES, OK, VOCAB_CASES

VOCAB = "cat: head, ear, tail"


def one_sentence(text: str) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) == 1 and "Traceback" not in text and lines[0].rstrip().endswith(".")


@pytest.fixture(scope="module")
def segmenter():
    return ovparts.Segmenter(ovparts.load_model("clipseg", config="tiny"))


@pytest.fixture(scope="module")
def small_image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "small.png"
    Image.new("RGB", (24, 16), (120, 80, 40)).save(path)
    return path


def run_cli(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_cli_outcome(result, expect: str, out) -> None:
    if expect == OK:
        assert result.exit_code == 0, result.output
        assert sorted(p.suffix for p in out.iterdir()) == [".json", ".png", ".png"]
    else:
        assert result.exit_code == 2, result.output
        assert "Error:" in result.output and "Traceback" not in result.output
        assert not out.exists() or not any(out.iterdir()), "an error must leave no output file"


# ------------------------------------------------------------------ images
@pytest.mark.parametrize("case", IMAGE_CASES, ids=lambda c: c.name)
def test_image_files_through_api(case, tmp_path, segmenter):
    path = case.write(tmp_path)
    if case.expect == OK:
        result = segmenter(path, VOCAB)
        picture = load_image(path)
        assert result.part_map.shape == (picture.height, picture.width)
    else:
        with pytest.raises(ImageError) as info:
            segmenter(path, VOCAB)
        assert one_sentence(str(info.value))


@pytest.mark.parametrize("case", IMAGE_CASES, ids=lambda c: c.name)
def test_image_files_through_cli(case, tmp_path):
    path = case.write(tmp_path)
    out = tmp_path / "out"
    result = run_cli("segment", path, "--vocab", VOCAB, "--config", "tiny", "--out", out)
    assert_cli_outcome(result, case.expect, out)


def test_exif_rotation_changes_the_output_size(tmp_path, segmenter):
    case = next(c for c in IMAGE_CASES if c.name == "exif-rotated-jpeg")
    stored = Image.open(case.write(tmp_path))
    assert segmenter(tmp_path / "rot.jpg", VOCAB).part_map.shape == (stored.width, stored.height)


@pytest.mark.parametrize("case", ARRAY_CASES, ids=lambda c: c.name)
def test_arrays_through_api(case, segmenter):
    array = case.build()
    if case.expect == OK:
        assert segmenter(array, VOCAB).part_map.shape == array.shape[:2]
    else:
        with pytest.raises(ImageError) as info:
            segmenter(array, VOCAB)
        assert one_sentence(str(info.value))


# ------------------------------------------------------------------ vocabularies
# The 10,000-object vocabulary is encoded in full (tens of seconds here): slow, so `make test` runs it.
VOCABS = [
    pytest.param(case, marks=pytest.mark.slow) if case.name == "ten-thousand-names" else case
    for case in VOCAB_CASES
]


@pytest.mark.parametrize("case", VOCABS, ids=lambda c: c.name)
def test_vocabularies_through_api(case, segmenter):
    image = np.full((16, 24, 3), 90, np.uint8)
    if case.expect == OK:
        vocab = ovparts.Vocabulary.parse(case.text())
        result = segmenter(image, vocab)
        assert result.part_map.max() < len(vocab)
    else:
        with pytest.raises(VocabularyError) as info:
            segmenter(image, case.text())
        assert one_sentence(str(info.value))


@pytest.mark.parametrize("case", VOCABS, ids=lambda c: c.name)
def test_vocabularies_through_cli(case, tmp_path, small_image):
    out = tmp_path / "out"
    result = run_cli("segment", small_image, "--vocab", case.text(), "--config", "tiny", "--out", out)
    assert_cli_outcome(result, case.expect, out)


# ------------------------------------------------------------------ object masks
MASK_CASES = [
    ("valid", OK, lambda h, w: np.zeros((h, w), np.uint8)),
    ("valid-16-bit-with-65535", OK, lambda h, w: np.full((h, w), 65535, np.uint16)),
    ("wrong-size", ERROR, lambda h, w: np.zeros((h + 1, w), np.uint8)),
    ("id-out-of-range", ERROR, lambda h, w: np.full((h, w), 9, np.uint8)),
    ("three-channels", ERROR, lambda h, w: np.zeros((h, w, 3), np.uint8)),
]


@pytest.mark.parametrize(("name", "expect", "build"), MASK_CASES, ids=[c[0] for c in MASK_CASES])
def test_object_masks_through_api_and_cli(name, expect, build, tmp_path, segmenter, small_image):
    mask = build(16, 24)
    mask_path = tmp_path / "mask.png"
    Image.fromarray(mask).save(mask_path)
    if expect == OK:
        assert segmenter(small_image, VOCAB, object_mask=mask).part_map.shape == (16, 24)
    else:
        with pytest.raises(MaskError) as info:
            segmenter(small_image, VOCAB, object_mask=mask)
        assert one_sentence(str(info.value))
    out = tmp_path / "out"
    result = run_cli(
        "segment", small_image, "--vocab", VOCAB, "--config", "tiny", "--out", out, "--object-mask", mask_path
    )
    assert_cli_outcome(result, expect, out)


def test_corpus_is_large_enough():
    cases = len(IMAGE_CASES) + len(ARRAY_CASES) + len(VOCAB_CASES) + len(MASK_CASES)
    assert cases >= 40


def test_every_refusal_is_an_ovparts_error():
    # the typed errors users catch are one family, and the CLI maps all of it to exit code 2
    for error in (ImageError, MaskError, VocabularyError):
        assert issubclass(error, OvpartsError)
