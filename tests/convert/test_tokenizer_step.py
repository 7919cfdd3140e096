"""The tokenizer step every converter shares (ovparts.convert.tokenizer)."""

from __future__ import annotations

import pytest

from ovparts.convert.tokenizer import attach_tokenizer, for_shape_check, resolve_tokenizer_folder
from ovparts.errors import CheckpointError
from ovparts.testing import tiny_tokenizer_folder, tiny_tokenizer_special_ids

# A text config as a converter reads it off the weights, with ids that belong to no tokenizer in particular.
CONFIG = {"text_config": {"vocab_size": 49408, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}}


def test_the_ids_come_from_the_tokenizer_written_beside_the_weights(tokenizer_dir):
    config, folder = attach_tokenizer(CONFIG, tokenizer_dir)
    assert folder == str(tokenizer_dir)
    special = tiny_tokenizer_special_ids() if tokenizer_dir == tiny_tokenizer_folder() else None
    expected = (
        (special["bos_token_id"], special["eos_token_id"], special["pad_token_id"])
        if special
        else (49406, 49407, 49407)
    )
    text = config["text_config"]
    assert (text["bos_token_id"], text["eos_token_id"], text["pad_token_id"]) == expected
    assert text["vocab_size"] == 49408 and CONFIG["text_config"]["eos_token_id"] == 1  # input left alone


def test_unusable_tokenizers_are_refused_in_one_sentence(tmp_path, clip_bpe_tokenizer_dir):
    small = {"text_config": {**CONFIG["text_config"], "vocab_size": 514}}
    with pytest.raises(CheckpointError, match="49408 tokens, more than the checkpoint's 514"):
        attach_tokenizer(small, clip_bpe_tokenizer_dir)
    with pytest.raises(CheckpointError, match="has no CLIP tokenizer files"):
        resolve_tokenizer_folder(tmp_path)
    with pytest.raises(CheckpointError, match="not a hub id"):
        resolve_tokenizer_folder(tmp_path / "absent")
    with pytest.raises(CheckpointError, match="not in the Hugging Face cache and HF_HUB_OFFLINE is set"):
        attach_tokenizer(CONFIG, "nobody/no-such-tokenizer")
    (tmp_path / "vocab.json").write_text("not json")
    with pytest.raises(CheckpointError, match="No CLIP tokenizer could be loaded"):
        attach_tokenizer(CONFIG, tmp_path)


def test_shape_only_builds_use_the_tiny_tokenizer_s_ids():
    config = for_shape_check({**CONFIG, "tokenizer": None})
    special = tiny_tokenizer_special_ids()
    assert config["tokenizer"] == "tiny"
    assert config["text_config"]["eos_token_id"] == special["eos_token_id"]
    assert config["text_config"]["vocab_size"] == 49408  # the checkpoint's embedding size is kept
