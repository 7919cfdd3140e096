import pytest
import torch
from transformers import AutoTokenizer, CLIPSegForImageSegmentation

import ovparts
from ovparts.errors import CheckpointError, UnknownModelError, WeightsNotFoundError
from ovparts.models.clipseg import ClipSeg
from ovparts.testing import RD64_REFINED, write_clipseg_checkpoint

TEXTS = ["dog head", "cat ear", "a bird's wing", "car wheel"]


def reference_logits(folder, texts, pixel_values, dtype):
    """transformers used the documented way: the image repeated once per prompt."""
    model = CLIPSegForImageSegmentation.from_pretrained(folder).eval().to(dtype)
    tokens = AutoTokenizer.from_pretrained(folder)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(
            input_ids=tokens["input_ids"],
            attention_mask=tokens["attention_mask"],
            pixel_values=pixel_values.to(dtype).repeat(len(texts), 1, 1, 1),
        )
    return out.logits.reshape(len(texts), *out.logits.shape[-2:])


def our_logits(folder, texts, pixel_values, dtype, **overrides):
    model = ovparts.load_model("clipseg", weights=str(folder), config=overrides or None).to(dtype)
    with torch.no_grad():
        conditions = model.text_conditions(texts)
        return model(pixel_values.to(dtype), conditions).logits[0]


@pytest.mark.parametrize("size", [(64, 64), (96, 96)])  # transformers assumes a square grid
def test_parity_with_transformers_tiny(tiny_clipseg_dir, size):
    torch.manual_seed(1)
    pixels = torch.randn(1, 3, *size)
    ref = reference_logits(tiny_clipseg_dir, TEXTS, pixels, torch.float64)
    ours = our_logits(tiny_clipseg_dir, TEXTS, pixels, torch.float64)
    assert ours.shape == ref.shape == (len(TEXTS), *size)
    assert (ours - ref).abs().max().item() <= 1e-4
    # float32 as users run it: same up to rounding of logits that reach a few hundred on random weights
    ref32 = reference_logits(tiny_clipseg_dir, TEXTS, pixels, torch.float32)
    ours32 = our_logits(tiny_clipseg_dir, TEXTS, pixels, torch.float32)
    torch.testing.assert_close(ours32, ref32, rtol=1e-5, atol=1e-4)


def test_parity_with_transformers_benchmark_size(tmp_path):
    """The real rd64-refined architecture (ViT-B/16, 352 px, patch 16 -> kernel-4 head), random weights."""
    folder = write_clipseg_checkpoint(tmp_path / "rd64", RD64_REFINED, seed=3)
    torch.manual_seed(2)
    pixels = torch.randn(1, 3, 352, 352)
    texts = TEXTS[:2]
    ref = reference_logits(folder, texts, pixels, torch.float64)
    ours = our_logits(folder, texts, pixels, torch.float64)
    assert ours.shape == (2, 352, 352)
    assert (ours - ref).abs().max().item() <= 1e-4


def test_class_chunking_does_not_change_logits(tiny_clipseg_dir):
    torch.manual_seed(0)
    pixels = torch.randn(2, 3, 64, 64)
    one = ovparts.load_model("clipseg", weights=str(tiny_clipseg_dir), config={"class_chunk": 1})
    many = ovparts.load_model("clipseg", weights=str(tiny_clipseg_dir), config={"class_chunk": 64})
    with torch.no_grad():
        conditions = one.text_conditions(TEXTS).double()
        a = one.double()(pixels.double(), conditions).logits
        b = many.double()(pixels.double(), conditions).logits
    assert a.shape == (2, len(TEXTS), 64, 64)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_image_encoded_once_and_text_cached(tiny_clipseg, monkeypatch):
    vocab = ovparts.Vocabulary.parse("dog: head, leg, tail; cat: ear")
    backbone = tiny_clipseg.backbone
    layer_calls = []
    monkeypatch.setattr(
        backbone, "run_layer", lambda i, h, f=backbone.run_layer: layer_calls.append(i) or f(i, h)
    )
    before = backbone.text_encoder_calls
    with torch.no_grad():
        first = tiny_clipseg.predict(torch.randn(1, 3, 64, 64), vocab)
        tiny_clipseg.predict(torch.randn(1, 3, 64, 64), vocab)
    assert backbone.text_encoder_calls == before + 1  # the second call reused the cached vocabulary
    # CLIPSeg needs blocks up to the deepest extract layer only, each run once per image
    assert layer_calls == [0, 1, 2, 3] * 2
    assert first.parts.shape == (1, 4, 64, 64) and first.background is None


def test_text_cache_invalidated_when_weights_change(tiny_clipseg_dir):
    model = ovparts.load_model("clipseg", weights=str(tiny_clipseg_dir))
    with torch.no_grad():
        before = model.text_conditions(["dog head"]).clone()
        model.backbone.clip.text_projection.weight.mul_(2.0)
        after = model.text_conditions(["dog head"])
    torch.testing.assert_close(after, 2 * before)


def test_ov_parts_patches_add_background_channel(tiny_clipseg_dir, tmp_path):
    model = ovparts.load_model(
        "clipseg",
        weights=str(tiny_clipseg_dir),
        config={"visual_adapter": True, "non_object_embedding": True},
    )
    vocab = ovparts.Vocabulary.parse("dog: head, tail")
    with torch.no_grad():
        out = model.predict(torch.randn(1, 3, 64, 64), vocab)
    assert out.parts.shape == (1, 2, 64, 64) and out.background.shape == (1, 1, 64, 64)
    # the patched model saves and reloads as an ovparts checkpoint with identical outputs
    model.save_pretrained(tmp_path / "patched")
    again = ovparts.load_model("clipseg", weights=str(tmp_path / "patched"))
    pixels = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(again.predict(pixels, vocab).parts, model.predict(pixels, vocab).parts)


def test_save_pretrained_round_trip(tiny_clipseg, tmp_path):
    tiny_clipseg.save_pretrained(tmp_path / "ckpt")
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} >= {
        "model.safetensors",
        "config.json",
        "tokenizer_config.json",
    }
    again = ClipSeg.from_pretrained(tmp_path / "ckpt")
    for key, value in tiny_clipseg.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key


def test_tiny_config_builds_offline():
    model = ovparts.load_model("clipseg", config="tiny")
    vocab = ovparts.Vocabulary.parse("cat: ear")
    with torch.no_grad():
        assert model.predict(torch.randn(1, 3, 64, 64), vocab).parts.shape == (1, 1, 64, 64)


def test_load_errors_are_typed(tmp_path, tiny_clipseg_dir):
    with pytest.raises(UnknownModelError, match="available models"):
        ovparts.load_model("no-such-model")
    with pytest.raises(WeightsNotFoundError, match="ovparts convert partclipseg"):
        ovparts.load_model("partclipseg")  # nothing published on the hub: say how to get weights
    with pytest.raises(WeightsNotFoundError, match="not in the Hugging Face cache"):
        ovparts.load_model("clipseg", weights="nobody/not-a-model")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(CheckpointError, match="neither"):
        ovparts.load_model("clipseg", weights=str(tmp_path / "bad"))
    other = write_clipseg_checkpoint(tmp_path / "other", seed=0)
    (other / "config.json").write_text(
        (other / "config.json").read_text().replace('"reduce_dim": 16', '"reduce_dim": 8')
    )
    with pytest.raises(CheckpointError, match="shape"):
        ovparts.load_model("clipseg", weights=str(other))


def test_available_models_lists_clipseg():
    assert "clipseg" in ovparts.available_models()
