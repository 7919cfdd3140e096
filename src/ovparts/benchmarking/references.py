"""Peer paths the benchmark compares against: how the official code and transformers run each method.

They compute the same logits as ovparts (tests and benchmarks check that), the straightforward way:
transformers' CLIPSeg re-encodes the image once per prompt; PartCLIPSeg's official decoder repeats the image
activations per class and keeps every attention map; CAT-Seg's official head builds the whole cost volume
at once; the "reference" paths re-encode the image once per class, as a per-class query does. Keeping them in the package (not in scripts) lets the CLI and the scripts share one copy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def official_partclipseg_forward(
    model, pixels: torch.Tensor, conditions: torch.Tensor, layout
) -> torch.Tensor:
    """The official decoder's batching: activations repeated per class, attention kept for every block."""
    decoder = model.decoder
    count = conditions.shape[0]
    activations = [a.repeat(count, 1, 1) for a in model.activations(pixels)]
    output, attentions = None, []
    for index, (activation, layer, reduce) in enumerate(
        zip(reversed(activations), decoder.layers, decoder.reduces, strict=True)
    ):
        output = reduce(activation) if output is None else reduce(activation) + output
        if index == decoder.conditional_layer:
            output = decoder.film_mul(conditions)[:, None] * output + decoder.film_add(conditions)[:, None]
        output, weights = layer(output, return_weights=True)
        attentions.append(weights)
    side = int((output.shape[1] - 1) ** 0.5)
    features = output[:, 1:].transpose(1, 2).reshape(count, -1, side, side)
    decoder.transposed_convolution(features)  # the generalized-part / object logits, computed officially too
    return compose_all_entries(decoder, features, conditions, layout)


def compose_all_entries(decoder, features: torch.Tensor, conditions: torch.Tensor, layout) -> torch.Tensor:
    """The object-specific branch for all T+1 entries in one batch, as the official decoder does."""
    last = torch.tensor([conditions.shape[0] - 1])
    part = torch.cat([layout.part_index, last])
    obj = torch.cat([layout.object_index, last])
    text_obj = torch.cat([layout.text_object_index, last])
    visual = torch.cat([features[part], features[obj]], dim=1).permute(0, 2, 3, 1)
    fused = decoder.part_obj_mlp(visual)
    text = decoder.reduce_cond_embed(torch.cat([conditions[text_obj], conditions[part]], dim=-1))
    film = decoder.cond_film_mul(text)[:, None, None] * fused + decoder.cond_film_add(text)[:, None, None]
    return decoder.part_obj_with_cond_embed(film.permute(0, 3, 1, 2))[:, 0][None]


def per_class_partclipseg_forward(
    model, pixels: torch.Tensor, conditions: torch.Tensor, layout
) -> torch.Tensor:
    """One class at a time with the image re-encoded for each (transformers' documented CLIPSeg usage)."""
    patch = model.backbone.patch_size
    grid = (pixels.shape[-2] // patch, pixels.shape[-1] // patch)
    features = []
    for c in range(conditions.shape[0]):
        out = model.decoder(
            model.activations(pixels),
            conditions[c : c + 1],
            grid,
            return_features=True,
            return_attention=True,
        )
        features.append(out.features[0])
    return compose_all_entries(model.decoder, torch.cat(features), conditions, layout)


def encode_image_per_class(model: torch.nn.Module, classes: int) -> None:
    """Make ``model.image_features`` run the image encoder ``classes`` times per image (CAT-Seg, PartCATSeg).

    This is the reference path's cost: a model queried one class at a time encodes the image for each
    class. The features are the same every time, so the logits stay those of the model (tested); the last
    encoding is returned. Set on the instance, so only this (peer) model is affected.
    """
    encode = type(model).image_features.__get__(model)

    def image_features(pixel_values: torch.Tensor):
        for _ in range(classes - 1):
            encode(pixel_values)
        return encode(pixel_values)

    model.image_features = image_features


def transformers_clipseg(
    architecture: dict, device: torch.device, batch: int = 16
) -> Callable[[torch.Tensor, Sequence[str]], torch.Tensor]:
    """A function (pixels, prompts) -> logits running transformers' CLIPSeg the documented way.

    As the model card shows, the image is repeated once per prompt (the processor does this) and the model
    re-encodes it, and the prompts are tokenized and encoded on every call. Prompts go ``batch`` at a time to
    bound its memory; the work per prompt is the same.
    """
    from transformers import AutoTokenizer, CLIPSegForImageSegmentation

    from ..testing import clipseg_hf_config, tiny_tokenizer_folder

    model = CLIPSegForImageSegmentation(clipseg_hf_config(architecture)).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer_folder()))

    def run(pixels: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        outs = []
        for start in range(0, len(prompts), batch):
            texts = list(prompts[start : start + batch])
            tokens = tokenizer(texts, padding=True, return_tensors="pt").to(device)
            out = model(**tokens, pixel_values=pixels.repeat(len(texts), 1, 1, 1))
            outs.append(out.logits.reshape(len(texts), *out.logits.shape[-2:]))
        return torch.cat(outs)

    return run
