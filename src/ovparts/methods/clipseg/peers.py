"""CLIPSeg's benchmark peer: transformers' CLIPSeg used as documented.

As the model card shows, the image is repeated once per prompt and re-encoded, and the prompts are tokenized
and encoded on every call; it computes the same logits as ovparts on the same weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ...benchmarking.cases import Case, PeerContext
from ...models.registry import BenchmarkPeer
from ...text.tiny_tokenizer import tiny_tokenizer_folder
from .config import RD64_REFINED, TINY_CLIPSEG, clipseg_hf_config


def transformers_clipseg(
    architecture: dict, device: torch.device, batch: int = 16
) -> Callable[[torch.Tensor, Sequence[str]], torch.Tensor]:
    """A function (pixels, prompts) -> logits running transformers' CLIPSeg the documented way.

    As the model card shows, the image is repeated once per prompt (the processor does this) and the model
    re-encodes it, and the prompts are tokenized and encoded on every call. Prompts go ``batch`` at a time to
    bound its memory; the work per prompt is the same.
    """
    from transformers import AutoTokenizer, CLIPSegForImageSegmentation

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


def _transformers_case(context: PeerContext) -> Case:
    """transformers' CLIPSeg at the benchmark size, random weights, on at most ``peer_classes`` prompts
    (the time is then scaled to all K: it is linear in K)."""
    tiny = context.config == "tiny"
    architecture = TINY_CLIPSEG if tiny else RD64_REFINED
    side = 64 if tiny else 352
    torch.manual_seed(0)
    run = transformers_clipseg(architecture, context.device)
    prompts = context.vocab.part_texts()
    measured = len(prompts) if not context.peer_classes else min(context.peer_classes, len(prompts))
    return Case(
        None,
        context.vocab,
        (side, side),
        forward=lambda pixels: run(pixels, prompts[:measured]),
        scale=len(prompts) / measured,
        classes_measured=measured,
    )


PEERS = {
    "transformers": BenchmarkPeer(
        "transformers CLIPSeg (image re-encoded per prompt)",
        _transformers_case,
        own_model=True,
        text_per_call=True,
    ),
}
