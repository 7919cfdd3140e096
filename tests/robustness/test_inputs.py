"""Round-two hostile inputs (``corpus_inputs.py``): no crash, no unbounded allocation, one sentence."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageFile

from ovparts.cli import main
from ovparts.data import write_synthetic
from ovparts.data.masks import segmentation_to_mask
from ovparts.errors import ImageError, MaskError
from ovparts.imageio import load_image

from .corpus import decompression_bomb
from .corpus_inputs import (
    ACCEPTED_EXTRACT_LAYERS,
    CHECKPOINT_CASES,
    CONFIG_FILE_CASES,
    DATASET_CASES,
    DINO_CASES,
    GEOMETRY_CASES,
    MASK_ARRAY_CASES,
    MASK_CASES,
    MODEL_CONFIG_CASES,
    OK,
    bomb_in_sparse_file,
    small_png_in_sparse_file,
    vocabulary_text,
)
from .test_bad_inputs import one_sentence
from .test_checkpoints import CONVERTERS

DECODE_BUDGET = 4_000_000  # pixels: nothing in these tests may decode a larger image


@pytest.fixture
def bounded_decoding(monkeypatch):
    """Fail the test if Pillow is asked to decode more than DECODE_BUDGET pixels (the allocator is never hit)."""
    original = ImageFile.ImageFile.load

    def load(self):
        assert self.size[0] * self.size[1] <= DECODE_BUDGET, f"decoded a {self.size} image"
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


@pytest.fixture
def small_png(tmp_path):
    path = tmp_path / "small.png"
    Image.new("RGB", (24, 16), (120, 80, 40)).save(path)
    return path


# ------------------------------------------------------------------ geometry
@pytest.mark.parametrize("case", GEOMETRY_CASES, ids=lambda c: c.name)
def test_segmentations_are_drawn_or_refused(case):
    height, width = 37, 53
    segmentation = case.build(height, width)
    if case.expect == OK:
        mask = segmentation_to_mask(segmentation, height, width)
        assert mask.shape == (height, width) and mask.dtype == bool
    else:
        with pytest.raises(ValueError) as info:
            segmentation_to_mask(segmentation, height, width)
        assert "\n" not in str(info.value)


def test_a_far_vertex_is_clipped_not_lost():
    # at 3e4 the triangle is drawn unclipped (the reference); at 3e8 it is clipped, and its pixels inside
    # the image are the same but for rounding on the two long edges
    reference = segmentation_to_mask([[3e4, 3e4, 10, 10, 20, 5]], 37, 53)
    far = segmentation_to_mask([[3e8, 3e8, 10, 10, 20, 5]], 37, 53)
    assert reference.sum() > 300
    assert np.count_nonzero(far != reference) <= 2 * 37


def test_far_vertices_stay_within_a_memory_bound():
    """In a child process limited to 1 GiB of address space: before the fix this needed gigabytes."""
    code = textwrap.dedent(
        """
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from ovparts.data.masks import segmentation_to_mask
        for poly in ([3e8, 3e8, 10, 10, 20, 5], [-1e12, 5, 10, 1e12, 20, 5], [1e308, -1e308, 0, 0, 5, 5]):
            print(int(segmentation_to_mask([poly], 480, 640).sum()))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(done.stdout.split()) == 3


# ------------------------------------------------------------------ datasets
@pytest.mark.parametrize("case", DATASET_CASES, ids=lambda c: c.name)
def test_dataset_check_reports_the_file_and_never_crashes(case, tmp_path, bounded_decoding):
    root = write_synthetic(case.benchmark, tmp_path)
    case.damage(root)
    result = CliRunner().invoke(
        main, ["data", "check", str(tmp_path), "--dataset", case.benchmark, "--deep"], catch_exceptions=False
    )
    assert "Traceback" not in result.output
    if case.expect == OK:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 2, result.output
        bad = [line for line in result.output.splitlines() if line.strip().startswith("BAD")]
        assert len(bad) == 1 and case.names in bad[0], result.output


def test_evaluate_skips_and_counts_bombs(tmp_path, bounded_decoding):
    root = write_synthetic("pascal_part_116", tmp_path)
    images = sorted((root / "images" / "val").glob("*.jpg"))
    parts = sorted((root / "annotations_detectron2_part" / "val").glob("*.png"))
    images[0].write_bytes(decompression_bomb())
    parts[1].write_bytes(decompression_bomb(12_000, 12_000))
    args = ["--model", "clipseg", "--config", "tiny", "--dataset", "pascal", "--root", str(tmp_path)]
    result = CliRunner().invoke(main, ["evaluate", *args, "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Skipped 2 bad file" in result.output and "Traceback" not in result.output
    assert len(images) == 3


# ------------------------------------------------------------------ images are streamed
def test_a_sparse_multi_gigabyte_file_is_read_from_its_header(tmp_path, bounded_decoding):
    import tracemalloc

    path = small_png_in_sparse_file(tmp_path / "big.png")
    tracemalloc.start()
    try:
        image = load_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert image.size == (8, 8) and peak < 10 << 20


@pytest.mark.parametrize(
    "size", [(40_000, 40_000), (13_000, 14_000)]
)  # past Pillow's hard stop, and under it
def test_a_bomb_header_in_a_sparse_file_is_refused_before_reading(size, tmp_path, bounded_decoding):
    import tracemalloc

    path = bomb_in_sparse_file(tmp_path / "bomb.png", *size)
    tracemalloc.start()
    try:
        with pytest.raises(ImageError) as info:
            load_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert one_sentence(str(info.value)) and "178956970" in str(info.value) and peak < 10 << 20


# ------------------------------------------------------------------ object masks
MASK_SIZE = (16, 24)


def _read_both_ways(case, tmp_path):
    """The CLI's path (a file) and the server's path (upload bytes -> array): same ids, or both refuse."""
    from ovparts.object_masks import load_object_mask
    from ovparts.serve.limits import Limits
    from ovparts.serve.service import decode_mask_png
    from ovparts.vocabulary import Vocabulary

    vocab = Vocabulary.parse(vocabulary_text(case.objects))
    path = case.write(tmp_path, *MASK_SIZE)
    outcomes = []
    for read in (
        lambda: load_object_mask(path, vocab, MASK_SIZE),
        lambda: load_object_mask(decode_mask_png(path.read_bytes(), Limits(), MASK_SIZE), vocab, MASK_SIZE),
    ):
        try:
            outcomes.append(read())
        except MaskError as err:
            assert one_sentence(str(err)), str(err)
            outcomes.append(None)
    return outcomes


@pytest.mark.parametrize("case", MASK_CASES, ids=lambda c: c.name)
def test_object_mask_files_mean_the_same_in_the_cli_and_the_server(case, tmp_path, bounded_decoding):
    pytest.importorskip("fastapi")
    cli, server = _read_both_ways(case, tmp_path)
    if case.expect == OK:
        assert cli is not None and server is not None
        np.testing.assert_array_equal(cli, server)
        if case.ids is not None:
            np.testing.assert_array_equal(cli, case.ids(*MASK_SIZE))
    else:
        assert cli is None and server is None


@pytest.mark.parametrize(
    ("name", "expect", "objects", "build", "ids"), MASK_ARRAY_CASES, ids=lambda c: str(c)
)
def test_object_mask_arrays(name, expect, objects, build, ids):
    from ovparts.object_masks import load_object_mask
    from ovparts.vocabulary import Vocabulary

    vocab = Vocabulary.parse(vocabulary_text(objects))
    if expect == OK:
        np.testing.assert_array_equal(load_object_mask(build(*MASK_SIZE), vocab, MASK_SIZE), ids(*MASK_SIZE))
    else:
        with pytest.raises(MaskError) as info:
            load_object_mask(build(*MASK_SIZE), vocab, MASK_SIZE)
        assert one_sentence(str(info.value))


@pytest.mark.parametrize("name", ["jpeg-is-lossy", "int32-tiff-negative-id", "1-bit-png-objects-0-and-1"])
def test_object_masks_through_the_cli(name, tmp_path):
    case = next(c for c in MASK_CASES if c.name == name)
    image = tmp_path / "photo.png"
    Image.new("RGB", MASK_SIZE[::-1], (90, 60, 30)).save(image)
    mask = case.write(tmp_path, *MASK_SIZE)
    out = tmp_path / "out"
    args = ["segment", str(image), "--vocab", vocabulary_text(case.objects), "--config", "tiny"]
    result = CliRunner().invoke(main, [*args, "--out", str(out), "--object-mask", str(mask)])
    assert "Traceback" not in result.output
    assert result.exit_code == (0 if case.expect == OK else 2), result.output


# ------------------------------------------------------------------ checkpoints
@pytest.fixture
def no_materialised_model(monkeypatch):
    """Record every ClipSeg built off the meta device: a refused checkpoint must never get that far."""
    import torch

    from ovparts.methods.clipseg.model import ClipSeg

    built: list[str] = []
    original = ClipSeg.__init__

    def init(self, *args, **kwargs):
        device = torch.get_default_device()
        if device.type != "meta":
            built.append(str(device))
        original(self, *args, **kwargs)

    monkeypatch.setattr(ClipSeg, "__init__", init)
    return built


@pytest.mark.parametrize("case", CHECKPOINT_CASES, ids=lambda c: c.name)
def test_checkpoints_are_bounded_before_the_model_is_built(
    case, tmp_path, tiny_clipseg_dir, no_materialised_model
):
    import ovparts
    from ovparts.errors import OvpartsError

    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_clipseg_dir, folder)
    case.damage(folder)
    if case.expect == OK:
        assert ovparts.load_model("clipseg", weights=str(folder)).name == "clipseg"
        assert len(no_materialised_model) == 1
        return
    with pytest.raises(OvpartsError) as info:
        ovparts.load_model("clipseg", weights=str(folder))
    message = str(info.value)
    assert one_sentence(message) and case.says in message, message
    assert no_materialised_model == [], "the model was built before the checkpoint was refused"


@pytest.mark.parametrize(
    "name", ["hidden-size-1e9", "config-utf16", "safetensors-declares-100000x100000", "unknown-activation"]
)
def test_bad_checkpoints_through_the_cli(name, tmp_path, tiny_clipseg_dir, small_png):
    case = next(c for c in CHECKPOINT_CASES if c.name == name)
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_clipseg_dir, folder)
    case.damage(folder)
    out = tmp_path / "out"
    args = ["segment", str(small_png), "--vocab", "cat: head", "--weights", str(folder), "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert not out.exists() or not any(out.iterdir())


def test_a_zip_bomb_pth_is_refused_by_the_converter_before_inflating(tmp_path):
    from ovparts.errors import CheckpointError
    from ovparts.hub import read_torch_file

    folder = tmp_path / "bomb"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    next(c for c in CHECKPOINT_CASES if c.name == "pytorch-bin-zip-bomb").damage(folder)
    path = folder / "pytorch_model.bin"
    assert path.stat().st_size < 2 << 20  # small on disk, 256 MiB inflated
    with pytest.raises(CheckpointError, match="inflates"):
        read_torch_file(path)
    result = CliRunner().invoke(main, ["convert", "catseg", str(path), str(tmp_path / "out")])
    assert result.exit_code == 2 and "inflates" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("command", CONVERTERS)
def test_a_legacy_pth_is_refused_by_the_converters_with_how_to_resave_it(command, tmp_path, tiny_clipseg_dir):
    import torch

    folder = tmp_path / "legacy"
    shutil.copytree(tiny_clipseg_dir, folder)
    next(c for c in CHECKPOINT_CASES if c.name == "pytorch-bin-legacy-format").damage(folder)
    path = folder / "pytorch_model.bin"
    assert len(torch.load(path, weights_only=True)) > 10  # a real checkpoint, readable by torch itself
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["convert", command, str(path), str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "legacy pre-1.6" in result.output and "torch.save(torch.load(OLD" in result.output
    assert not out.exists()


def test_every_shipped_config_passes_the_checks():
    """The bounds admit every architecture ovparts ships (ViT-B/16, ViT-L/14, DINOv2, ResNet-101)."""
    import torch

    from ovparts import limits
    from ovparts.errors import CheckpointError
    from ovparts.models.registry import available_models, model_spec

    largest = 0
    for name in available_models():
        spec = model_spec(name)
        for values in spec.configs.values():
            config = spec.cls.config_class.from_dict(dict(values))
            try:
                with torch.device("meta"):
                    model = spec.cls._build_on_meta(config, None)
            except CheckpointError:  # needs a checkpoint's tokenizer folder
                continue
            largest = max(largest, sum(t.numel() * t.element_size() for t in model.state_dict().values()))
    assert 1 << 30 < largest < limits.MAX_MODEL_BYTES.default // 4  # ViT-L/14 CAT-Seg, with a 4x margin


# ------------------------------------------------------------------ --config files
@pytest.mark.parametrize("case", CONFIG_FILE_CASES, ids=lambda c: c.name)
def test_config_files_of_the_wrong_shape(case, tmp_path, small_png):
    path = tmp_path / f"config{case.suffix}"
    path.write_text(case.text)
    if case.suffix == ".json":
        args = ["segment", str(small_png), "--vocab", "cat: head", "--config", str(path)]
        result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "out")])
    else:
        result = CliRunner().invoke(main, ["train", str(path), "--dry-run"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert "Traceback" not in result.output and len(lines) == 1 and lines[0].startswith("Error:"), (
        result.output
    )


@pytest.mark.parametrize("case", MODEL_CONFIG_CASES, ids=lambda c: c.name)
def test_model_configs_are_refused_when_read(case, tmp_path, small_png, monkeypatch):
    """Layer indices and attention heads are checked with the config, not by a crash when the model is built."""
    import json

    from ovparts.errors import ConfigError
    from ovparts.models import base
    from ovparts.models.registry import model_spec

    spec = model_spec(case.model)
    overrides = case.change(spec.configs["tiny"])
    with pytest.raises(ConfigError) as info:
        spec.cls.config_class.from_dict({**spec.configs["tiny"], **overrides})
    assert one_sentence(str(info.value)) and case.says in str(info.value), str(info.value)

    def never(*args, **kwargs):
        raise AssertionError("a model was built from a refused config")

    monkeypatch.setattr(base.PartSegModel, "checked_build", classmethod(never))
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"base": "tiny", **overrides}))
    args = ["segment", str(small_png), "--vocab", "cat: head", "--model", case.model, "--config", str(path)]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "out")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and case.says in lines[0], result.output


@pytest.mark.parametrize("layers", ACCEPTED_EXTRACT_LAYERS, ids=str)
def test_extract_layers_the_official_clipseg_accepts_still_run(layers, small_png):
    import ovparts

    model = ovparts.load_model("clipseg", config={"base": "tiny", "extract_layers": layers})
    assert model.config.extract_layers == layers
    result = ovparts.Segmenter(model)(str(small_png), "cat: head, tail")
    assert result.part_map.shape == load_image(str(small_png)).size[::-1]


TINY_DINO = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": 56}


def _dino_folder(folder, case=None):
    """A tiny DINOv2 checkpoint folder (random weights); with ``case``, its config.json replaced."""
    import json

    from transformers import Dinov2Config, Dinov2Model

    Dinov2Model(Dinov2Config(**TINY_DINO)).save_pretrained(folder)
    if case is not None:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(case.config(config)))
    return folder


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline: a hub id resolves only to what a test puts there."""
    import huggingface_hub.constants

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def put(repo: str, case=None) -> str:
        commit = "0123456789abcdef0123456789abcdef01234567"
        entry = cache / f"models--{repo.replace('/', '--')}"
        (entry / "refs").mkdir(parents=True)
        _dino_folder(entry / "snapshots" / commit, case)
        (entry / "refs" / "main").write_text(commit)
        return repo

    return put


@pytest.mark.parametrize("where", ["folder", "hub-id"])
@pytest.mark.parametrize("case", DINO_CASES, ids=lambda c: c.name)
def test_dino_weights_are_bounded_before_transformers_builds_them(case, where, tmp_path, hub_cache):
    from ovparts.backbones.dino import build_dino
    from ovparts.errors import ConfigError

    if where == "folder":
        weights = str(_dino_folder(tmp_path / "dino", case))
    else:
        weights = hub_cache("someone/hostile-dino", case)
    with pytest.raises(ConfigError) as info:
        build_dino("dinov2", weights=weights)
    assert one_sentence(str(info.value)) and case.says in str(info.value), str(info.value)


def test_a_cached_dino_hub_id_loads_from_the_checked_folder(hub_cache):
    from ovparts.backbones.dino import build_dino

    encoder = build_dino("dinov2", weights=hub_cache("someone/tiny-dino"))
    assert encoder.config.hidden_size == TINY_DINO["hidden_size"]
    assert sum(p.numel() for p in encoder.parameters()) > 0


def test_partcatseg_checks_a_dino_hub_id_before_building(hub_cache):
    from ovparts.errors import ConfigError
    from ovparts.methods.partcatseg.model import CONFIGS, PartCatSeg, PartCatSegConfig

    bad = next(c for c in DINO_CASES if c.name == "20000-layers")
    config = PartCatSegConfig.from_dict(
        {**CONFIGS["tiny"], "dino_weights": hub_cache("someone/hostile-dino", bad)}
    )
    with pytest.raises(ConfigError, match="20000"):
        PartCatSeg(config)
