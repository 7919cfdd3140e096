"""Checks every converter test runs on a converted model, whichever tokenizer it was converted with."""

from __future__ import annotations

import torch
from transformers import AutoTokenizer

NAMES = ["dog's head", "cat's tail", "a bird's wing", "car wheel"]


def assert_text_path_follows_tokenizer(model, tokenizer_dir) -> None:
    """The config's ids are the tokenizer's, each prompt is pooled at its own end of text, and different class
    names get different embeddings (a config with another tokenizer's ids pools every prompt at position 0)."""
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    text = model.backbone.clip.config.text_config
    assert (text.bos_token_id, text.eos_token_id, text.pad_token_id) == (
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
        tokenizer.pad_token_id,
    )
    tokens = model.backbone.tokenizer(NAMES, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model.backbone.clip.text_model(**tokens)
        embeddings = model.backbone.encode_text(NAMES)
    ends = (tokens["input_ids"] == tokenizer.eos_token_id).int().argmax(dim=-1)
    assert (ends > 1).all()
    torch.testing.assert_close(out.pooler_output, out.last_hidden_state[torch.arange(len(NAMES)), ends])
    distances = torch.cdist(embeddings, embeddings) + torch.eye(len(NAMES)) * 1e9
    assert distances.min() > 1e-3 * embeddings.norm(dim=-1).mean()


def vocab_size(tokenizer_dir) -> int:
    return len(AutoTokenizer.from_pretrained(str(tokenizer_dir)))
