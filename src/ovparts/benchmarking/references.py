"""Peer machinery shared by several methods' benchmark peers.

Each method's peers (how its official code or transformers compute the same logits) live in its folder,
``ovparts/methods/<name>/peers.py``, and are named in its registry entry; what more than one method's peers
need sits here. Keeping peers in the package (not in scripts) lets the CLI and the scripts share one copy.
"""

from __future__ import annotations

import torch


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
