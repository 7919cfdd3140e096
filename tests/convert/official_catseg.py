"""Synthetic official CAT-Seg state dicts: the official key names (as the official module definitions name them), tiny shapes.

Written from the documented layout, not from our modules, so that the converter's key map is checked against
an independent description of the official files.
"""

from __future__ import annotations

import torch

VISION, TEXT, PROJ, PATCH, GRID = 64, 64, 32, 16, 4  # heads = width / 64 = 1, as OpenAI CLIP
VOCAB, CONTEXT = 514, 77  # the tiny tokenizer's vocabulary (OpenAI's BPE: 49408, passed as ``vocab``)
HIDDEN, TEXT_G, APP_G, DEC, DEC_P = 32, 16, 16, (32, 16), (8, 4)
WINDOW = 2  # a 4x4 grid with window 2: 4 windows, shifted by 1


def _r(*shape: int) -> torch.Tensor:
    return torch.randn(*shape) * 0.1


def _ln(sd: dict, key: str, width: int) -> None:
    sd[f"{key}.weight"] = 1 + _r(width)
    sd[f"{key}.bias"] = _r(width)


def _block(sd: dict, prefix: str, width: int, split: bool) -> None:
    if split:
        for name in "qkv":
            sd[f"{prefix}.attn.{name}_proj_weight"] = _r(width, width)
    else:
        sd[f"{prefix}.attn.in_proj_weight"] = _r(3 * width, width)
    sd[f"{prefix}.attn.in_proj_bias"] = _r(3 * width)
    sd[f"{prefix}.attn.out_proj.weight"] = _r(width, width)
    sd[f"{prefix}.attn.out_proj.bias"] = _r(width)
    _ln(sd, f"{prefix}.ln_1", width)
    _ln(sd, f"{prefix}.ln_2", width)
    sd[f"{prefix}.mlp.c_fc.weight"] = _r(4 * width, width)
    sd[f"{prefix}.mlp.c_fc.bias"] = _r(4 * width)
    sd[f"{prefix}.mlp.c_proj.weight"] = _r(width, 4 * width)
    sd[f"{prefix}.mlp.c_proj.bias"] = _r(width)


def official_clip(
    split: bool, vision_layers: int = 3, text_layers: int = 2, vocab: int = VOCAB
) -> dict[str, torch.Tensor]:
    sd: dict[str, torch.Tensor] = {
        "visual.class_embedding": _r(VISION),
        "visual.positional_embedding": _r(GRID * GRID + 1, VISION),
        "visual.conv1.weight": _r(VISION, 3, PATCH, PATCH),
        "visual.proj": _r(VISION, PROJ),
        "token_embedding.weight": _r(vocab, TEXT),
        "positional_embedding": _r(CONTEXT, TEXT),
        "text_projection": _r(TEXT, PROJ),
        "logit_scale": torch.tensor(4.6052),
    }
    _ln(sd, "visual.ln_pre", VISION)
    _ln(sd, "visual.ln_post", VISION)
    _ln(sd, "ln_final", TEXT)
    for i in range(vision_layers):
        _block(sd, f"visual.transformer.resblocks.{i}", VISION, split)
    for i in range(text_layers):
        _block(sd, f"transformer.resblocks.{i}", TEXT, split)
    return sd


def swin_mask(grid: int, window: int) -> torch.Tensor:
    """The official shifted-window mask, computed by labelling the nine shifted regions by hand."""
    shift = window // 2
    labels = torch.zeros(grid, grid)
    cuts = [0, grid - window, grid - shift, grid]
    label = 0
    for i in range(3):
        for j in range(3):
            labels[cuts[i] : cuts[i + 1], cuts[j] : cuts[j + 1]] = label
            label += 1
    n = grid // window
    windows = labels.reshape(n, window, n, window).permute(0, 2, 1, 3).reshape(n * n, window * window)
    diff = windows[:, None, :] - windows[:, :, None]
    return torch.where(diff != 0, torch.tensor(-100.0), torch.tensor(0.0))


def official_aggregator(
    prompts: int, appearance: int, decoder_guidance: tuple[int, int], pad: bool, layers: int = 2
) -> dict[str, torch.Tensor]:
    sd: dict[str, torch.Tensor] = {
        "conv1.weight": _r(HIDDEN, prompts, 7, 7),
        "conv1.bias": _r(HIDDEN),
        "guidance_projection.0.weight": _r(APP_G, appearance, 3, 3),
        "guidance_projection.0.bias": _r(APP_G),
        "text_guidance_projection.0.weight": _r(TEXT_G, PROJ),
        "text_guidance_projection.0.bias": _r(TEXT_G),
        "head.weight": _r(1, DEC[1], 3, 3),
        "head.bias": _r(1),
    }
    for i, (dim, proj) in enumerate(zip(decoder_guidance, DEC_P, strict=True)):
        sd[f"decoder_guidance_projection.{i}.0.weight"] = _r(proj, dim, 3, 3)
        sd[f"decoder_guidance_projection.{i}.0.bias"] = _r(proj)
    for d, (cin, cout, g) in enumerate(((HIDDEN, DEC[0], DEC_P[0]), (DEC[0], DEC[1], DEC_P[1])), start=1):
        sd[f"decoder{d}.up.weight"] = _r(cin, cin - g, 2, 2)
        sd[f"decoder{d}.up.bias"] = _r(cin - g)
        sd[f"decoder{d}.conv.double_conv.0.weight"] = _r(cout, cin, 3, 3)
        _ln(sd, f"decoder{d}.conv.double_conv.1", cout)
        sd[f"decoder{d}.conv.double_conv.3.weight"] = _r(cout, cout, 3, 3)
        _ln(sd, f"decoder{d}.conv.double_conv.4", cout)
    for layer in range(layers):
        p = f"layers.{layer}"
        for b in (1, 2):
            q = f"{p}.swin_block.block_{b}"
            _ln(sd, f"{q}.norm1", HIDDEN)
            _ln(sd, f"{q}.norm2", HIDDEN)
            for name, cin in (("q", HIDDEN + APP_G), ("k", HIDDEN + APP_G), ("v", HIDDEN), ("proj", HIDDEN)):
                sd[f"{q}.attn.{name}.weight"] = _r(HIDDEN, cin)
                sd[f"{q}.attn.{name}.bias"] = _r(HIDDEN)
            sd[f"{q}.mlp.fc1.weight"] = _r(4 * HIDDEN, HIDDEN)
            sd[f"{q}.mlp.fc1.bias"] = _r(4 * HIDDEN)
            sd[f"{q}.mlp.fc2.weight"] = _r(HIDDEN, 4 * HIDDEN)
            sd[f"{q}.mlp.fc2.bias"] = _r(HIDDEN)
        sd[f"{p}.swin_block.block_2.attn_mask"] = swin_mask(GRID, WINDOW)
        _ln(sd, f"{p}.swin_block.guidance_norm", APP_G)
        a = f"{p}.attention"
        for name, cin in (("q", HIDDEN + TEXT_G), ("k", HIDDEN + TEXT_G), ("v", HIDDEN)):
            sd[f"{a}.attention.{name}.weight"] = _r(HIDDEN, cin)
            sd[f"{a}.attention.{name}.bias"] = _r(HIDDEN)
        sd[f"{a}.MLP.0.weight"] = _r(4 * HIDDEN, HIDDEN)
        sd[f"{a}.MLP.0.bias"] = _r(4 * HIDDEN)
        sd[f"{a}.MLP.2.weight"] = _r(HIDDEN, 4 * HIDDEN)
        sd[f"{a}.MLP.2.bias"] = _r(HIDDEN)
        _ln(sd, f"{a}.norm1", HIDDEN)
        _ln(sd, f"{a}.norm2", HIDDEN)
        if pad:
            sd[f"{a}.padding_tokens"] = _r(1, 1, HIDDEN)
            sd[f"{a}.padding_guidance"] = _r(1, 1, TEXT_G)
    return sd


def official_resnet(blocks=(1, 2, 1), stem: int = 8, width: int = 4) -> dict[str, torch.Tensor]:
    sd: dict[str, torch.Tensor] = {}

    def conv(key: str, cout: int, cin: int, k: int) -> None:
        sd[f"{key}.weight"] = _r(cout, cin, k, k)
        sd[f"{key}.norm.weight"] = 1 + _r(cout)
        sd[f"{key}.norm.bias"] = _r(cout)
        sd[f"{key}.norm.running_mean"] = _r(cout)
        sd[f"{key}.norm.running_var"] = 1 + _r(cout).abs()

    conv("backbone.stem.conv1", stem, 3, 7)
    cin = stem
    for s, n in enumerate(blocks):
        mid, cout = width * 2**s, width * 4 * 2**s
        for j in range(n):
            key = f"backbone.res{s + 2}.{j}"
            conv(f"{key}.conv1", mid, cin if j == 0 else cout, 1)
            conv(f"{key}.conv2", mid, mid, 3)
            conv(f"{key}.conv3", cout, mid, 1)
            if j == 0:
                conv(f"{key}.shortcut", cout, cin, 1)
        cin = cout
    return sd


def official_catseg(variant: str, seed: int = 0, vocab: int = VOCAB) -> dict[str, torch.Tensor]:
    """A whole official-layout state dict of the CVPR ("cvpr") or old ("old") release (``vocab`` token rows)."""
    torch.manual_seed(seed)
    cvpr = variant == "cvpr"
    clip = official_clip(split=cvpr, vocab=vocab)
    if cvpr:
        agg = official_aggregator(1, PROJ, (24, 12), pad=True)
        top = {
            "upsample1.weight": _r(VISION, 24, 2, 2),
            "upsample1.bias": _r(24),
            "upsample2.weight": _r(VISION, 12, 4, 4),
            "upsample2.bias": _r(12),
        }
    else:
        agg = official_aggregator(80, 64, (32, 16), pad=False)  # ResNet res4 / res3 / res2 widths
        top = official_resnet()
    sd = {f"sem_seg_head.predictor.clip_model.{k}": v for k, v in clip.items()}
    sd.update({f"sem_seg_head.predictor.transformer.{k}": v for k, v in agg.items()})
    sd.update(top)
    return sd
