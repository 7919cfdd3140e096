from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, CLIPSegForImageSegmentation

import ovparts
from ovparts.errors import CheckpointError, UnknownModelError, WeightsNotFoundError
from ovparts.methods.clipseg.model import ClipSeg
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


@pytest.mark.slow
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


@pytest.fixture(scope="module")
def clipseg_dir(tmp_path_factory, tokenizer_dir):
    """The tiny hub-format CLIPSeg with each test tokenizer (the real one: a 49408-row token embedding)."""
    folder = tmp_path_factory.mktemp("clipseg")
    return write_clipseg_checkpoint(folder, seed=0, tokenizer=tokenizer_dir)


def test_text_path_with_each_tokenizer(clipseg_dir, tokenizer_dir):
    """Our text conditions equal transformers' CLIPSeg ones, and distinct names give distinct vectors."""
    model = ovparts.load_model("clipseg", weights=str(clipseg_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    text = model.backbone.clip.config.text_config
    assert (text.bos_token_id, text.eos_token_id) == (tokenizer.bos_token_id, tokenizer.eos_token_id)
    reference = CLIPSegForImageSegmentation.from_pretrained(clipseg_dir).eval()
    tokens = AutoTokenizer.from_pretrained(clipseg_dir)(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        ours = model.text_conditions(TEXTS)
        ref = reference.get_conditional_embeddings(
            batch_size=len(TEXTS), input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        )
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    distances = torch.cdist(ours, ours) + torch.eye(len(TEXTS)) * 1e9
    assert distances.min() > 1e-3 * ours.norm(dim=-1).mean()


def test_legacy_hub_ids_still_load(clipseg_dir, tmp_path, clip_bpe_tokenizer_dir):
    """Hub CLIPSeg configs from before 2023 carry bos / eos / pad = 0 / 2 / 1; transformers then pools at the
    highest id (OpenAI's end of text), so they load and encode the same as the corrected ids."""
    import json
    import shutil

    folder = write_clipseg_checkpoint(tmp_path / "new", seed=0, tokenizer=clip_bpe_tokenizer_dir)
    legacy = Path(shutil.copytree(folder, tmp_path / "legacy"))
    config = json.loads((legacy / "config.json").read_text())
    config["text_config"].update(bos_token_id=0, eos_token_id=2, pad_token_id=1)
    (legacy / "config.json").write_text(json.dumps(config))
    with torch.no_grad():
        new = ovparts.load_model("clipseg", weights=str(folder)).text_conditions(TEXTS)
        old = ovparts.load_model("clipseg", weights=str(legacy)).text_conditions(TEXTS)
    torch.testing.assert_close(old, new)


def test_image_encoded_once_and_text_cached(clipseg_dir, monkeypatch):
    model = ovparts.load_model("clipseg", weights=str(clipseg_dir))
    vocab = ovparts.Vocabulary.parse("dog: head, leg, tail; cat: ear")
    backbone = model.backbone
    layer_calls = []
    monkeypatch.setattr(
        backbone, "run_layer", lambda i, h, f=backbone.run_layer: layer_calls.append(i) or f(i, h)
    )
    before = backbone.text_encoder_calls
    with torch.no_grad():
        first = model.predict(torch.randn(1, 3, 64, 64), vocab)
        model.predict(torch.randn(1, 3, 64, 64), vocab)
    assert backbone.text_encoder_calls == before + 1  # the second call reused the cached vocabulary
    # CLIPSeg needs blocks up to the deepest extract layer only, each run once per image
    assert layer_calls == [0, 1, 2, 3] * 2
    assert first.parts.shape == (1, 4, 64, 64) and first.background is None


def test_text_cache_invalidated_when_weights_change(clipseg_dir):
    model = ovparts.load_model("clipseg", weights=str(clipseg_dir))
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


def test_save_pretrained_carries_the_tokenizer(tiny_clipseg, tmp_path):
    """The weights round trip is checked for every method in tests/models/test_contract.py; a CLIP method's
    folder also carries its tokenizer, so that it loads offline."""
    tiny_clipseg.save_pretrained(tmp_path / "ckpt")
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} >= {
        "model.safetensors",
        "config.json",
        "tokenizer_config.json",
    }
    again = ClipSeg.from_pretrained(tmp_path / "ckpt")
    assert again.backbone.tokenizer.get_vocab() == tiny_clipseg.backbone.tokenizer.get_vocab()


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
