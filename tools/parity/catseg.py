"""CAT-Seg parity cases: the official model (CVPR release or the old one), built from its own yaml configs,
loaded from a seeded official-format checkpoint and run through detectron2's test-time mapper and the
official sliding-window evaluation on the test photo.

Run-time replacements (nothing of the official files is edited):

* ``clip.load`` downloads OpenAI's TorchScript archive; the harness answers ``torch.jit.load`` with an object
  whose ``state_dict()`` is a seeded OpenAI-layout CLIP (reduced widths), so the official ``build_model``
  builds the model from it. The official checkpoint then overwrites every CLIP weight, as in the official
  evaluation. The unused torchvision preprocessing that ``clip.load`` builds is replaced by a no-op.
* ``Tensor.cuda`` is a no-op (the predictor moves tokens with ``.cuda()``); everything runs on the CPU.
* CVPR release: ``CATSeg.__init__`` hard-codes the upsamplers' input width to 768 (ViT-B/16); they are
  rebuilt with the reduced CLIP width (same kernel, stride and output widths) before the checkpoint loads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn

from . import fixtures, openai_clip, runtime

VOCABULARY = "cat: head, ear, eye, nose, torso, leg, tail; dog: head, torso"
CLASS_NAMES = [
    "cat's head",
    "cat's ear",
    "cat's eye",
    "cat's nose",
    "cat's torso",
    "cat's leg",
    "cat's tail",
    "dog's head",
    "dog's torso",
]

# Reduced widths; depth and patch as ViT-B/16 (the guidance hooks are hard-coded at blocks 3 and 7).
CLIP_SIZES = {
    "embed_dim": 32,
    "image_resolution": 224,
    "vision_layers": 12,
    "vision_width": 64,
    "vision_patch_size": 16,
    "context_length": 77,
    "vocab_size": 49408,
    "transformer_width": 64,
    "transformer_heads": 1,
    "transformer_layers": 3,
}

# Head widths given through the config (what the official yaml files set; defaults in their comments).
HEAD_OPTIONS = {
    "MODEL.SEM_SEG_HEAD.TEXT_GUIDANCE_DIM": CLIP_SIZES["embed_dim"],  # 512
    "MODEL.SEM_SEG_HEAD.TEXT_GUIDANCE_PROJ_DIM": 16,  # 128
    "MODEL.SEM_SEG_HEAD.APPEARANCE_GUIDANCE_PROJ_DIM": 16,  # 128
    "MODEL.SEM_SEG_HEAD.DECODER_DIMS": [32, 16],  # [64, 32]
    "MODEL.SEM_SEG_HEAD.DECODER_GUIDANCE_PROJ_DIMS": [8, 4],  # [32, 16]
    "MODEL.SEM_SEG_HEAD.HIDDEN_DIMS": 32,  # 128
}

RELEASES = {
    "catseg_cvpr": {
        "commit": "6d3a188",
        "config": "configs/vitb_384.yaml",
        "head_gain": 4.0,  # spreads the probabilities (std 0.05 at gain 1)
        "options": {"MODEL.SEM_SEG_HEAD.APPEARANCE_GUIDANCE_DIM": CLIP_SIZES["embed_dim"]},  # 512
    },
    "catseg_old": {
        "commit": "af4fa0b",
        "config": "configs/vitb_r101_384.yaml",
        "head_gain": 4.0,
        "options": {
            # ResNet-101 depth kept; widths reduced (defaults 64 / 64 / 256): res2/res3/res4 = 16/32/64.
            "MODEL.RESNETS.STEM_OUT_CHANNELS": 8,
            "MODEL.RESNETS.WIDTH_PER_GROUP": 4,
            "MODEL.RESNETS.RES2_OUT_CHANNELS": 16,
            "MODEL.SEM_SEG_HEAD.APPEARANCE_GUIDANCE_DIM": 64,  # 1024
            "MODEL.SEM_SEG_HEAD.DECODER_GUIDANCE_DIMS": [32, 16],  # [512, 256]
        },
    },
}

# eval.sh: every benchmark is evaluated with these.
EVAL_OPTIONS = {"TEST.SLIDING_WINDOW": True, "MODEL.SEM_SEG_HEAD.POOLING_SIZES": [1, 1]}


def build_cfg(root: Path, release: dict, class_json: Path):
    import cat_seg  # noqa: PLC0415
    from detectron2.config import get_cfg  # noqa: PLC0415
    from detectron2.projects.deeplab import add_deeplab_config  # noqa: PLC0415

    cfg = get_cfg()
    add_deeplab_config(cfg)  # as train_net.setup
    cat_seg.add_cat_seg_config(cfg)
    cfg.merge_from_file(str(root / release["config"]))
    options = {
        **HEAD_OPTIONS,
        **release["options"],
        **EVAL_OPTIONS,
        "MODEL.SEM_SEG_HEAD.TRAIN_CLASS_JSON": str(class_json),
        "MODEL.SEM_SEG_HEAD.TEST_CLASS_JSON": str(class_json),
        "MODEL.WEIGHTS": "",
        "MODEL.DEVICE": "cpu",
    }
    cfg.merge_from_list([x for k, v in options.items() for x in (k, str(v))])
    cfg.freeze()
    return cfg, options


def rebuild_upsamplers(model: nn.Module, width: int) -> None:
    """CVPR: the 768 input width hard-coded for ViT-B/16 becomes the reduced CLIP width."""
    for name in ("upsample1", "upsample2"):
        old = getattr(model, name)
        setattr(
            model,
            name,
            nn.ConvTranspose2d(width, old.out_channels, kernel_size=old.kernel_size, stride=old.stride),
        )


def generate(
    case: str,
    out: Path,
    scratch: Path,
    seed: int = 0,
    head_gain: float | None = None,
    fp32_text: bool = False,
) -> dict:
    release = RELEASES[case]
    runtime.install_detectron2(scratch)
    root = runtime.extract("catseg", scratch, release["commit"])
    runtime.add_to_path(root)
    for name in [m for m in sys.modules if m == "cat_seg" or m.startswith("cat_seg.")]:
        del sys.modules[name]
    import cat_seg  # noqa: PLC0415, F401  (registers the meta-architecture and head)
    from cat_seg import cat_seg_model  # noqa: PLC0415
    from cat_seg.third_party import clip as clip_module  # noqa: PLC0415
    from cat_seg.third_party import imagenet_templates, model_vpt  # noqa: PLC0415
    from detectron2.checkpoint import DetectionCheckpointer  # noqa: PLC0415
    from detectron2.data import DatasetMapper  # noqa: PLC0415
    from detectron2.modeling import build_model  # noqa: PLC0415

    work = scratch / case
    work.mkdir(parents=True, exist_ok=True)
    class_json = work / "classes.json"
    class_json.write_text(json.dumps(CLASS_NAMES))
    cfg, options = build_cfg(root, release, class_json)
    templates = {
        "single": ["A photo of a {} in the scene"],
        "imagenet": list(imagenet_templates.IMAGENET_TEMPLATES),
    }[cfg.MODEL.PROMPT_ENSEMBLE_TYPE]

    gen = fixtures.seeded(seed)
    torch.manual_seed(seed)
    tokens = openai_clip.official_tokens(clip_module, templates, CLASS_NAMES)
    clip_state = openai_clip.archive_state(model_vpt.CLIP, CLIP_SIZES, gen, tokens)
    offline = openai_clip.offline_clip(clip_module, clip_state, fp32_text=fp32_text, builder=model_vpt)
    with openai_clip.cpu_only(), offline:
        model = build_model(cfg)
    if case == "catseg_cvpr":
        rebuild_upsamplers(model, CLIP_SIZES["vision_width"])

    # The checkpoint: CLIP as built from the archive, everything else seeded random.
    state = model.state_dict()
    clip_prefix = "sem_seg_head.predictor.clip_model."
    others = {k: v for k, v in state.items() if not k.startswith(clip_prefix)}
    randomized = fixtures.randomize(others, gen, fixtures.norm_modules(model), keep=("attn_mask",))
    gain = release.get("head_gain", 1.0) if head_gain is None else head_gain
    head_key = "sem_seg_head.predictor.transformer.head.weight"
    randomized[head_key] = randomized[head_key] * gain
    checkpoint = fixtures.fp16_rounded({**state, **randomized})
    ckpt_path = work / "official.pth"
    torch.save({"model": checkpoint}, ckpt_path)
    DetectionCheckpointer(model).load(str(ckpt_path))  # as train_net's eval-only path (resume_or_load)
    model.eval()

    png = fixtures.save_photo_png(work)
    h, w = fixtures.photo().shape[:2]
    inputs = DatasetMapper(cfg, is_train=False)({"file_name": str(png), "height": h, "width": w})

    recorded: dict[str, torch.Tensor] = {}
    postprocess = cat_seg_model.sem_seg_postprocess

    def record_postprocess(result, img_size, output_height, output_width):
        recorded["canvas"] = result.detach().clone()
        return postprocess(result, img_size, output_height, output_width)

    hook = model.sem_seg_head.register_forward_hook(
        lambda m, args, output: recorded.setdefault("head_logits", output.detach().clone())
    )
    cat_seg_model.sem_seg_postprocess = record_postprocess
    try:
        with openai_clip.cpu_only(), torch.no_grad():
            result = model([inputs])[0]["sem_seg"]
    finally:
        cat_seg_model.sem_seg_postprocess = postprocess
        hook.remove()

    labels = result.argmax(dim=0)  # SemSegEvaluator: output.argmax(dim=0)
    outputs = {
        "head_logits": recorded["head_logits"].float(),
        "canvas_probabilities_s4": recorded["canvas"][:, ::4, ::4].float().contiguous(),
        "probabilities_s4": result[:, ::4, ::4].float().contiguous(),
        "labels": labels.to(torch.int16),
        "label_ties": fixtures.ties(result).to(torch.uint8),
    }
    info = {
        "case": case,
        "method": "catseg",
        "release": "CVPR 2024" if case == "catseg_cvpr" else "old (arXiv, before the CVPR update)",
        "official_repository": "github.com/cvlab-kaist/CAT-Seg",
        "official_commit": fixtures.commit_of(runtime.mirror("catseg"), release["commit"]),
        "detectron2_commit": fixtures.commit_of(runtime.mirror("detectron2")),
        "config_files": [release["config"], "configs/config.yaml"],
        "config_options": {k: v for k, v in options.items() if "CLASS_JSON" not in k},
        "class_names": CLASS_NAMES,
        "ovparts_vocabulary": VOCABULARY,
        "prompt_templates": templates,
        "photo": fixtures.PHOTO,
        "photo_file": "PNG (lossless) read by detectron2's DatasetMapper, INPUT.FORMAT RGB",
        "protocols": ["pred_all"],
        "labels_rule": "argmax over classes of the official sem_seg output (SemSegEvaluator)",
        "checkpoint": "seeded random weights, official layout {'model': state_dict}, fp16 tensors",
        "text_features": openai_clip.text_precision_note(fp32_text),
        "clip_sizes": CLIP_SIZES,
        "replaced_at_run_time": [
            "clip.load: torch.jit.load returns a seeded OpenAI-layout CLIP state dict (no download); the "
            "unused torchvision transform is a no-op",
            "Tensor.cuda is a no-op (CPU run)",
        ]
        + (
            ["CATSeg.upsample1/2 rebuilt with the reduced CLIP width instead of the hard-coded 768"]
            if case == "catseg_cvpr"
            else []
        ),
        "outputs": {
            "head_logits": "(5, K, 96, 96) official head output for the 4 windows + global view",
            "canvas_probabilities_s4": "(K, 160, 160): the (K, 640, 640) folded probabilities [:, ::4, ::4]",
            "probabilities_s4": "(K, 75, 113): the final (K, 300, 451) probabilities [:, ::4, ::4]",
            "labels": "(300, 451) int16 label map",
            "label_ties": f"(300, 451) uint8: 1 where the two best probabilities differ by <= {fixtures.TIE_GAP}",
        },
        "generator_version": fixtures.GENERATOR_VERSION,
        "seed": seed,
        "head_gain": gain,
        "spread": fixtures.spread(result),
    }
    fixtures.write_fixture(out / case, checkpoint, info, outputs)
    return info
