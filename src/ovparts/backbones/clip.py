"""CLIP on top of ``transformers``: cached text embeddings, intermediate image layers, dense patch features.

Every method in ovparts reads CLIP through this class so that (1) a vocabulary is encoded once and reused
across images, (2) the image is encoded once per image however many classes are asked for, and (3) any
input size works by interpolating the position table, as CLIPSeg and CAT-Seg both do.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoTokenizer, CLIPConfig, CLIPModel, PreTrainedTokenizerBase

from ..errors import CheckpointError
from ..text import disk_cache
from ..text.cache import TextEmbeddingCache
from .clip_dense import clip_dense_features
from .openai_fp16_text import check_text_precision, encode_openai_fp16

TEXT_BATCH = 256


def build_clip(text: dict, vision: dict, projection_dim: int) -> CLIPModel:
    """A randomly initialised transformers CLIP from plain config dicts (what our config.json stores)."""
    config = CLIPConfig(text_config=dict(text), vision_config=dict(vision), projection_dim=projection_dim)
    config._attn_implementation = "sdpa"
    return CLIPModel(config)


class ClipBackbone(nn.Module):
    """transformers ``CLIPModel`` plus a tokenizer, with the access paths the segmentation heads need."""

    def __init__(self, clip: CLIPModel, tokenizer: PreTrainedTokenizerBase) -> None:
        super().__init__()
        check_special_ids(clip.config.text_config, tokenizer)
        self.clip = clip
        self.tokenizer = tokenizer
        self._text_cache = TextEmbeddingCache()  # LRU by bytes: a server sees new vocabularies all day
        self.text_encoder_calls = 0  # observable by tests: a cached vocabulary must not re-run the encoder
        self._fingerprint: tuple[int, str] | None = None  # (text version, fingerprint) of the text tower
        layer = clip.vision_model.encoder.layers[0]
        self._legacy_layers = "causal_attention_mask" in inspect.signature(layer.forward).parameters

    def clear_text_cache(self) -> None:
        """Forget every cached text embedding (the next vocabulary is encoded from scratch)."""
        self._text_cache.clear()

    # ------------------------------------------------------------------ sizes
    @property
    def patch_size(self) -> int:
        return self.clip.config.vision_config.patch_size

    @property
    def vision_width(self) -> int:
        return self.clip.config.vision_config.hidden_size

    @property
    def embed_dim(self) -> int:
        return self.clip.config.projection_dim

    @property
    def num_vision_layers(self) -> int:
        return len(self.clip.vision_model.encoder.layers)

    # ------------------------------------------------------------------ text
    def _text_version(self) -> int:
        # In-place optimiser steps bump each tensor's version counter, so a trained text encoder never
        # serves stale cached embeddings.
        return (
            sum(p._version for p in self.clip.text_model.parameters())
            + self.clip.text_projection.weight._version
        )

    def text_fingerprint(self) -> str:
        """SHA-256 of the text tower's tensors and tokenizer: what a vocabulary's embeddings depend on.

        Computed from the tensors in memory (about a third of a second for ViT-B's text tower on a CPU) once
        per process and again only after the text weights change, so the on-disk text cache can never serve
        embeddings of other weights, whatever file they came from.
        """
        version = self._text_version()
        if self._fingerprint is None or self._fingerprint[0] != version:
            tensors = [(f"text_model.{k}", v) for k, v in self.clip.text_model.state_dict().items()]
            tensors.append(("text_projection.weight", self.clip.text_projection.weight))
            self._fingerprint = (
                version,
                disk_cache.fingerprint_tensors(tensors, tokenizer_identity(self.tokenizer)),
            )
        return self._fingerprint[1]

    def _remember(self, key: tuple, embeddings: torch.Tensor) -> torch.Tensor:
        """Keep ``embeddings`` in the memory cache, after dropping entries of older text weights."""
        self._text_cache.retain(lambda k: k[3] == key[3])
        self._text_cache.put(key, embeddings)
        return embeddings

    def encode_text(
        self,
        texts: Sequence[str],
        templates: Sequence[str] | None = None,
        normalize: bool = False,
        precision: str = "fp32",
    ) -> torch.Tensor:
        """Projected text embeddings: (N, D) without templates, (N, T, D) with T templates.

        Results are cached per (texts, templates, normalize, precision) whenever no gradient is being recorded
        for the text encoder, so encoding a vocabulary happens once per process. ``precision="openai_fp16"``
        computes them as the old CAT-Seg / PartCATSeg predictors did (:mod:`.openai_fp16_text`: templates
        required, always L2-normalised per template in fp16, no gradient).
        """
        texts = tuple(texts)
        templates = tuple(templates) if templates is not None else None
        check_text_precision(precision)
        if precision == "openai_fp16" and not templates:
            raise ValueError("OpenAI fp16 text embeddings are computed per prompt template; pass templates.")
        # the OpenAI fp16 path never records a gradient (the official predictors encode once, frozen)
        records_grad = (
            precision == "fp32"
            and torch.is_grad_enabled()
            and any(p.requires_grad for p in self.clip.text_model.parameters())
        )
        key = (texts, templates, normalize, self._text_version(), precision)
        cached = None if records_grad else self._text_cache.get(key)
        if cached is not None:
            return cached.to(self.clip.text_projection.weight.device)
        disk_key = None
        if not records_grad and disk_cache.enabled():
            disk_key = disk_cache.entry_key(self.text_fingerprint(), texts, templates, normalize, precision)
            stored = disk_cache.load(disk_key)
            if stored is not None:
                return self._remember(key, stored.to(self.clip.text_projection.weight.device))
        if precision == "openai_fp16":
            embeddings = self._run_openai_fp16(texts, templates)
        else:
            prompts = [t.format(text) for text in texts for t in templates] if templates else list(texts)
            embeddings = self._run_text_encoder(prompts)
            if normalize:
                embeddings = F.normalize(embeddings, dim=-1)
            if templates:
                embeddings = embeddings.view(len(texts), len(templates), -1)
        if not records_grad:  # nothing to detach from then: the caller gets the very tensor that is cached
            embeddings = self._remember(key, embeddings.detach())
            if disk_key is not None:
                disk_cache.store(disk_key, embeddings)
        return embeddings

    def _run_openai_fp16(self, texts: tuple[str, ...], templates: tuple[str, ...]) -> torch.Tensor:
        self.text_encoder_calls += 1
        device = self.clip.text_projection.weight.device
        with torch.autocast(device_type=device.type, enabled=False):
            return encode_openai_fp16(self.clip, self.tokenizer, texts, templates)

    def _run_text_encoder(self, prompts: list[str]) -> torch.Tensor:
        self.text_encoder_calls += 1
        device = self.clip.text_projection.weight.device
        # fp32 even under a caller's autocast: the embeddings are cached and shared by every precision,
        # and encoding a vocabulary happens once, so low precision would save nothing worth their error.
        with torch.autocast(device_type=device.type, enabled=False):
            return self._encode_prompts(prompts, device)

    def _encode_prompts(self, prompts: list[str], device: torch.device) -> torch.Tensor:
        max_length = self.clip.config.text_config.max_position_embeddings
        chunks = []
        for start in range(0, len(prompts), TEXT_BATCH):
            tokens = self.tokenizer(
                prompts[start : start + TEXT_BATCH],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(device)
            pooled = self.clip.text_model(
                input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
            ).pooler_output
            chunks.append(self.clip.text_projection(pooled))
        return torch.cat(chunks)

    # ------------------------------------------------------------------ image
    def position_embedding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """(1, 1 + grid_h * grid_w, C): the CLS position kept, the patch table resized bicubically."""
        table = self.clip.vision_model.embeddings.position_embedding.weight
        cls_pos, patch_pos = table[:1], table[1:]
        side = int(math.isqrt(patch_pos.shape[0]))
        if (grid_h, grid_w) != (side, side):
            grid = patch_pos.reshape(1, side, side, -1).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
            patch_pos = grid.permute(0, 2, 3, 1).reshape(grid_h * grid_w, -1)
        return torch.cat([cls_pos, patch_pos]).unsqueeze(0)

    def embed_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Patch + CLS tokens with positions, after CLIP's pre-LayerNorm: hidden state 0."""
        embeddings = self.clip.vision_model.embeddings
        weight = embeddings.patch_embedding.weight
        patches = embeddings.patch_embedding(pixel_values.to(weight.dtype))
        grid_h, grid_w = patches.shape[-2:]
        patches = patches.flatten(2).transpose(1, 2)
        cls = embeddings.class_embedding.to(patches.dtype).expand(patches.shape[0], 1, -1)
        tokens = torch.cat([cls, patches], dim=1) + self.position_embedding(grid_h, grid_w).to(patches.dtype)
        return self.clip.vision_model.pre_layrnorm(tokens)

    def run_layer(self, index: int, hidden: torch.Tensor) -> torch.Tensor:
        layer = self.clip.vision_model.encoder.layers[index]
        out = layer(hidden, None, None) if self._legacy_layers else layer(hidden, None)
        return out[0] if isinstance(out, tuple) else out

    def image_hidden_states(self, pixel_values: torch.Tensor, layers: Sequence[int]) -> list[torch.Tensor]:
        """Hidden states with transformers' numbering (0 = embeddings, k = output of block k).

        Only the blocks up to the deepest requested layer run: CLIPSeg needs the 10th of 12 blocks at most.
        """
        wanted = sorted(set(layers))
        if not wanted or wanted[0] < 0 or wanted[-1] > self.num_vision_layers:
            raise ValueError(f"Layers must lie in 0..{self.num_vision_layers}, got {list(layers)}.")
        hidden = self.embed_image(pixel_values)
        states = {0: hidden}
        for index in range(wanted[-1]):
            hidden = self.run_layer(index, hidden)
            states[index + 1] = hidden
        return [states[i] for i in layers]

    def forward(
        self, pixel_values: torch.Tensor, layers: Sequence[int] = (), dense_residual: str | None = None
    ) -> list[torch.Tensor]:
        """The whole image path in one module call, so that ``torch.compile`` sees it as one graph.

        Without ``dense_residual``: the hidden states ``layers`` (:meth:`image_hidden_states`, CLIPSeg).
        With it: CAT-Seg's dense features (B, D, h, w) followed by one guidance map per entry of ``layers``
        (:func:`~ovparts.backbones.clip_dense.clip_dense_features`). Text never goes through here.
        """
        if dense_residual is None:
            return self.image_hidden_states(pixel_values, layers)
        dense, guidance = clip_dense_features(
            self.clip.vision_model, self.clip.visual_projection, pixel_values, layers, dense_residual
        )
        return [dense, *guidance]

    def dense_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) patch tokens of the last layer, post-LayerNorm and projected into the text space."""
        hidden = self.image_hidden_states(pixel_values, [self.num_vision_layers])[0]
        grid_h, grid_w = pixel_values.shape[-2] // self.patch_size, pixel_values.shape[-1] // self.patch_size
        tokens = self.clip.visual_projection(self.clip.vision_model.post_layernorm(hidden[:, 1:]))
        return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, grid_h, grid_w)


def tokenizer_identity(tokenizer: PreTrainedTokenizerBase) -> bytes:
    """Bytes that change whenever the tokenizer would split a prompt differently (vocabulary, merges, rules)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        text = backend.to_str()
    else:
        text = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
        text += json.dumps(
            sorted(getattr(tokenizer, "bpe_ranks", {}).items(), key=lambda item: item[1]), default=str
        )
    return f"{type(tokenizer).__name__}|{tokenizer.model_max_length}|{text}".encode()


# transformers' CLIP text model treats an end-of-text id of 2 as the pre-2023 hub configs (0 / 2 / 1) and
# pools at the highest token id of each prompt instead; OpenAI's BPE has its end-of-text id highest.
LEGACY_EOS_ID = 2
ID_NAMES = {"bos_token_id": "start-of-text", "eos_token_id": "end-of-text", "pad_token_id": "padding"}


def check_special_ids(text_config: object, tokenizer: PreTrainedTokenizerBase) -> None:
    """Refuse a text config whose BOS / EOS / PAD ids do not belong to the tokenizer it is paired with.

    The text model pools each prompt at the first end-of-text id: with an id the tokenizer never emits, every
    prompt would be pooled at position 0 and every class would get the same embedding. So every id must
    exist in the tokenizer's vocabulary, and BOS / EOS must be the tokenizer's own (for legacy hub configs,
    whose EOS is 2, the tokenizer's EOS must be its highest id, where transformers then pools).
    """
    get = text_config.get if isinstance(text_config, dict) else lambda k: getattr(text_config, k, None)
    size = len(tokenizer)
    where = getattr(tokenizer, "name_or_path", "") or "the tokenizer"
    for field, name in ID_NAMES.items():
        value = get(field)
        if value is not None and not 0 <= value < size:
            raise CheckpointError(
                f"The text config's {name} id {value} is not in the vocabulary of {where} ({size} tokens); "
                "the config.json and the tokenizer files beside it disagree (if it came from an "
                "older `ovparts convert`, convert the official file again)."
            )
    eos = get("eos_token_id")
    if eos == LEGACY_EOS_ID:
        highest = max(tokenizer.get_vocab().values())
        if tokenizer.eos_token_id is not None and tokenizer.eos_token_id != highest:
            raise CheckpointError(
                f"The text config's legacy end-of-text id 2 pools at the highest token id, but the end-of-text "
                f"id of {where} is {tokenizer.eos_token_id}, not its highest {highest}; set the config's "
                "bos/eos/pad ids to the tokenizer's."
            )
        return
    for field in ("bos_token_id", "eos_token_id"):
        value, own = get(field), getattr(tokenizer, field)
        if value is not None and own is not None and value != own:
            raise CheckpointError(
                f"The text config's {ID_NAMES[field]} id {value} is not the {ID_NAMES[field]} id {own} of "
                f"{where}; the config.json and the tokenizer files beside it disagree (if it came from an "
                "older `ovparts convert`, convert the official file again)."
            )


def load_tokenizer(folder: str | Path) -> PreTrainedTokenizerBase:
    """The CLIP BPE tokenizer stored beside a checkpoint (vocab.json + merges.txt or tokenizer.json)."""
    return AutoTokenizer.from_pretrained(str(folder))
