"""Text embeddings computed as the old CAT-Seg / PartCATSeg predictors compute them (OpenAI's CLIP in fp16)."""

from __future__ import annotations

import pytest
import torch

from ovparts import load_model
from ovparts.backbones.openai_fp16_text import encode_openai_fp16, openai_token_ids
from ovparts.errors import ConfigError
from ovparts.methods.catseg.convert import convert_catseg_state_dict
from ovparts.methods.catseg.model import CatSegConfig
from ovparts.methods.partcatseg.convert import convert_partcatseg_state_dict

from ..convert.official_catseg import official_catseg
from ..convert.official_partcatseg import official_partcatseg

TEMPLATES = ("a photo of a {}.", "{}")


@pytest.fixture(scope="module")
def backbone():
    return load_model("catseg", config="tiny").backbone


def test_token_ids_are_padded_with_zeros_to_the_context(backbone):
    ids = openai_token_ids(backbone.tokenizer, ["cat", "a photo of a dog"], 77)
    assert ids.shape == (2, 77)
    eos = backbone.tokenizer.eos_token_id
    for row in ids:
        end = int((row == eos).nonzero()[0])
        assert row[0] == backbone.tokenizer.bos_token_id
        assert torch.all(row[end + 1 :] == 0)
        assert int(row.argmax()) == end  # OpenAI pools at the argmax: the end token has the highest id


def test_embeddings_are_fp16_rounded_unit_vectors_near_the_fp32_path(backbone):
    texts = ["cat's head", "dog's tail"]
    fp16 = encode_openai_fp16(backbone.clip, backbone.tokenizer, texts, TEMPLATES)
    fp32 = backbone.encode_text(texts, templates=TEMPLATES, normalize=True)
    assert fp16.dtype == torch.float32 and fp16.shape == fp32.shape == (2, 2, fp32.shape[-1])
    assert torch.equal(fp16, fp16.half().float())  # computed in half precision
    assert torch.allclose(fp16.norm(dim=-1), torch.ones(2, 2), atol=2e-3)
    assert torch.allclose(fp16, fp32, atol=5e-3)
    assert not torch.equal(fp16, fp32)


def fp16_text(backbone, texts):
    return backbone.encode_text(texts, TEMPLATES, normalize=True, precision="openai_fp16")


def test_cache_follows_the_vocabulary_and_the_weights(backbone):
    first = fp16_text(backbone, ["cat"])
    assert fp16_text(backbone, ["cat"]) is first
    assert fp16_text(backbone, ["dog"]) is not first
    with torch.no_grad():
        backbone.clip.text_projection.weight.mul_(2.0)
    try:
        again = fp16_text(backbone, ["cat"])
        assert again is not first
    finally:
        with torch.no_grad():
            backbone.clip.text_projection.weight.div_(2.0)


def test_models_use_it_when_configured():
    model = load_model("catseg", config="tiny")
    plain = model.text_embeddings(["cat"])
    model.config.text_precision = "openai_fp16"
    official = model.text_embeddings(["cat"])
    assert torch.equal(
        official,
        encode_openai_fp16(
            model.backbone.clip, model.backbone.tokenizer, ["cat"], model.config.template_list
        ),
    )
    assert not torch.equal(plain, official)


def test_unknown_precision_is_refused_in_one_sentence():
    with pytest.raises(ConfigError, match="Unknown text precision"):
        CatSegConfig(text_precision="bf16")


def test_converters_choose_the_official_text_precision():
    assert convert_catseg_state_dict(official_catseg("cvpr")).config["text_precision"] == "fp32"
    assert convert_catseg_state_dict(official_catseg("old")).config["text_precision"] == "openai_fp16"
    assert convert_partcatseg_state_dict(official_partcatseg()).config["text_precision"] == "openai_fp16"


def test_two_vocabularies_in_turn_are_encoded_once_each(backbone):
    """PartCATSeg asks for its part/object texts and its object-specific texts on every image: both must stay
    cached (a one-entry cache re-encoded both on every image), and apart from the fp32 ones."""
    fp16_text(backbone, ["wheel"])
    fp16_text(backbone, ["car's wheel"])
    calls = backbone.text_encoder_calls
    for _ in range(3):
        fp16_text(backbone, ["wheel"])
        fp16_text(backbone, ["car's wheel"])
    assert backbone.text_encoder_calls == calls
    fp32 = backbone.encode_text(["wheel"], templates=TEMPLATES, normalize=True)
    assert backbone.text_encoder_calls == calls + 1
    assert not torch.equal(fp32, fp16_text(backbone, ["wheel"]))
