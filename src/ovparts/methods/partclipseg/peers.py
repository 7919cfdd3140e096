"""PartCLIPSeg's benchmark peers: the official decoder's batching and the per-class reference.

They compute the same logits as ovparts (tests check that), the straightforward way: the official decoder
repeats the image activations per class and keeps every attention map; the reference re-encodes the image
once per class, as a per-class query does.
"""

from __future__ import annotations

import torch

from ...benchmarking.cases import Case, PeerContext
from ...models.registry import BenchmarkPeer


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


def _build(forward):
    def build(context: PeerContext) -> Case:
        model = context.model
        layout = model.layout(context.vocab)
        conditions = model.conditions(layout)
        return context.case(lambda pixels: forward(model, pixels, conditions, layout))

    return build


PEERS = {
    "reference": BenchmarkPeer("image re-encoded per class", _build(per_class_partclipseg_forward)),
    "official": BenchmarkPeer(
        "official: image encoded once, activations repeated per class", _build(official_partclipseg_forward)
    ),
}
