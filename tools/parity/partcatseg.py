"""PartCATSeg parity case: the official model built from ``configs/zero_shot/partcatseg_voc.yaml`` (and its
base), loaded from a seeded official-format checkpoint, fed by the official test mapper
(``SemanticObjPartDatasetMapper``) on the test photo with an object mask, run through its own eval forward.

Run-time replacements (nothing of the official files is edited):

* ``clip.load``: as for CAT-Seg (:mod:`tools.parity.openai_clip`): a seeded OpenAI-layout CLIP instead of
  the download. PartCATSeg's CLIP is frozen, so the archive and the checkpoint hold the same CLIP.
* ``torch.hub.load('facebookresearch/dinov2', 'dinov2_vits14')``: builds the hub's own
  ``DinoVisionTransformer`` from the dinov2 repository (extracted from its mirror) with the hub's
  ``dinov2_vits14`` arguments except the widths (reduced), without downloading weights; the checkpoint's
  ``backbone.dinov2.*`` tensors then load into it.
* ``Tensor.cuda`` is a no-op and ``PartCATSeg.device = "cuda"`` in its constructor keeps the CPU.
* Pillow 10 removed ``Image.LINEAR`` (an alias of ``BILINEAR``) that a transform file names as a default;
  the alias is restored (:func:`tools.parity.runtime.restore_pillow_aliases`).
* The dataset: a metadata entry with this case's class names (``stuff_classes``, ``obj_classes``) replaces
  Pascal-Part-116's as ``DATASETS.TEST``; the mapper reads the photo and two ground-truth PNGs (an object
  mask and a part map covering it) as the ``*_obj_condition`` dataset entries name them.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import fixtures, openai_clip, runtime
from .catseg import CLASS_NAMES, CLIP_SIZES, VOCABULARY

CONFIG = "configs/zero_shot/partcatseg_voc.yaml"
OBJECTS = ["cat", "dog"]
DATASET = "ovparts_parity_obj_part_sem_seg_val_obj_condition"
IGNORE = 255
OBJECT_ID = 0  # the ground-truth object: "cat"
TORSO_ID = CLASS_NAMES.index("cat's torso")

# DINOv2 ViT-S/14 as the hub builds it, widths reduced (hub: embed_dim 384, depth 12, heads 6).
DINO_SIZES = {"embed_dim": 64, "depth": 4, "num_heads": 1}
HUB_ARGUMENTS = {  # dinov2.hub.backbones._make_dinov2_model defaults for dinov2_vits14
    "img_size": 518,
    "patch_size": 14,
    "init_values": 1.0,
    "ffn_layer": "mlp",
    "block_chunks": 0,
    "num_register_tokens": 0,
    "interpolate_antialias": False,
    "interpolate_offset": 0.1,
    "mlp_ratio": 4,
}

OPTIONS = {
    "MODEL.SEM_SEG_HEAD.TEXT_GUIDANCE_DIM": CLIP_SIZES["embed_dim"],  # 512
    "MODEL.SEM_SEG_HEAD.TEXT_GUIDANCE_PROJ_DIM": 16,  # 128
    "MODEL.SEM_SEG_HEAD.APPEARANCE_GUIDANCE_DIM": DINO_SIZES["embed_dim"],  # 384
    "MODEL.SEM_SEG_HEAD.APPEARANCE_GUIDANCE_PROJ_DIM": 16,  # 128
    "MODEL.SEM_SEG_HEAD.DECODER_DIMS": [32, 16],  # [64, 32]
    "MODEL.SEM_SEG_HEAD.DECODER_GUIDANCE_DIMS": [DINO_SIZES["embed_dim"]] * 2,  # [384, 384]
    "MODEL.SEM_SEG_HEAD.DECODER_GUIDANCE_PROJ_DIMS": [8, 4],  # [32, 16]
    "MODEL.SEM_SEG_HEAD.HIDDEN_DIMS": 32,  # 128
    "DATASETS.TEST": f"('{DATASET}',)",
    "MODEL.WEIGHTS": "",  # the whole checkpoint is loaded afterwards, as train_net's eval-only path
    "MODEL.DEVICE": "cpu",
}
HEAD_GAIN = 4.0


def object_masks(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The ground truth: an ellipse over the cat (object id 0, 255 elsewhere) and its part map."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((xx - 0.5 * w) / (0.42 * w)) ** 2 + ((yy - 0.55 * h) / (0.42 * h)) ** 2 <= 1.0
    obj = np.where(inside, OBJECT_ID, IGNORE).astype(np.uint8)
    part = np.where(inside, TORSO_ID, IGNORE).astype(np.uint8)
    return obj, part


@contextlib.contextmanager
def offline_dinov2(scratch: Path) -> Iterator[None]:
    """``torch.hub.load`` of DINOv2 ViT-S/14 built from the local dinov2 mirror, reduced widths, no weights."""
    hub_load = torch.hub.load

    def load(repo: str, model: str, *args, **kwargs):
        if (repo, model) != ("facebookresearch/dinov2", "dinov2_vits14"):
            raise RuntimeError(f"The parity harness only stands in for dinov2_vits14, not {repo}:{model}.")
        runtime.add_to_path(runtime.extract("dinov2", scratch))
        from dinov2.layers import MemEffAttention  # noqa: PLC0415
        from dinov2.models.vision_transformer import Block, DinoVisionTransformer  # noqa: PLC0415

        block = partial(Block, attn_class=MemEffAttention)
        return DinoVisionTransformer(block_fn=block, **HUB_ARGUMENTS, **DINO_SIZES)

    torch.hub.load = load
    try:
        yield
    finally:
        torch.hub.load = hub_load


@contextlib.contextmanager
def device_stays_cpu(cls: type) -> Iterator[None]:
    """``self.device = "cuda"`` in the constructor moves nothing: the device setter gets "cpu"."""
    prop = cls.device
    cls.device = property(prop.fget, lambda self, value: prop.fset(self, "cpu"))
    try:
        yield
    finally:
        cls.device = prop


def generate(
    case: str,
    out: Path,
    scratch: Path,
    seed: int = 0,
    head_gain: float | None = None,
    fp32_text: bool = False,
) -> dict:
    runtime.install_detectron2(scratch)
    runtime.restore_pillow_aliases()
    root = runtime.extract("partcatseg", scratch)
    runtime.add_to_path(root)
    for name in [m for m in sys.modules if m == "baselines" or m.startswith("baselines.")]:
        del sys.modules[name]
    import baselines  # noqa: PLC0415  (registers datasets, mappers, heads, meta-architectures)
    from baselines import partcatseg as official  # noqa: PLC0415
    from baselines.data.dataset_mappers import SemanticObjPartDatasetMapper  # noqa: PLC0415
    from baselines.third_party import clip as clip_module  # noqa: PLC0415
    from baselines.third_party import imagenet_templates, model_vpt  # noqa: PLC0415
    from detectron2.checkpoint import DetectionCheckpointer  # noqa: PLC0415
    from detectron2.config import get_cfg  # noqa: PLC0415
    from detectron2.data import MetadataCatalog  # noqa: PLC0415
    from detectron2.modeling import build_model  # noqa: PLC0415
    from detectron2.projects.deeplab import add_deeplab_config  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    MetadataCatalog.get(DATASET).set(
        stuff_classes=list(CLASS_NAMES),
        obj_classes=list(OBJECTS),
        ignore_label=IGNORE,
        evaluator_type="sem_seg",
    )
    cfg = get_cfg()  # as train_net.setup
    add_deeplab_config(cfg)
    baselines.add_mask_former_config(cfg)
    cfg.set_new_allowed(True)
    cfg.merge_from_file(str(root / CONFIG))
    cfg.merge_from_list([x for k, v in OPTIONS.items() for x in (k, str(v))])
    cfg.freeze()
    templates = {
        "single": ["A photo of a {} in the scene"],
        "imagenet": list(imagenet_templates.IMAGENET_TEMPLATES),
    }[cfg.MODEL.PROMPT_ENSEMBLE_TYPE]

    work = scratch / case
    work.mkdir(parents=True, exist_ok=True)
    gen = fixtures.seeded(seed)
    torch.manual_seed(seed)  # the constructor draws the background embedding from the global generator
    parts = sorted({n.split("'s")[1].strip() for n in CLASS_NAMES})
    objects = sorted({n.split("'s")[0].strip() for n in CLASS_NAMES})
    train = MetadataCatalog.get(cfg.DATASETS.TRAIN[0]).stuff_classes
    train_parts = sorted({n.split("'s")[1].strip() for n in train})
    train_objects = sorted({n.split("'s")[0].strip() for n in train})
    names = CLASS_NAMES + parts + objects + list(train) + train_parts + train_objects
    tokens = openai_clip.official_tokens(clip_module, templates, names)
    clip_state = openai_clip.archive_state(model_vpt.CLIP, CLIP_SIZES, gen, tokens)
    with (
        openai_clip.cpu_only(),
        openai_clip.offline_clip(clip_module, clip_state, fp32_text=fp32_text, builder=model_vpt),
        offline_dinov2(scratch),
        device_stays_cpu(official.PartCATSeg),
    ):
        model = build_model(cfg)

    state = model.state_dict()
    kept = ("sem_seg_head.predictor.clip_model.", "sem_seg_head.predictor.non_object_embedding")
    others = {k: v for k, v in state.items() if not k.startswith(kept)}
    randomized = fixtures.randomize(others, gen, fixtures.norm_modules(model), keep=("attn_mask",))
    gain = HEAD_GAIN if head_gain is None else head_gain
    head_key = "sem_seg_head.predictor.transformer.head.weight"
    randomized[head_key] = randomized[head_key] * gain
    checkpoint = fixtures.fp16_rounded({**state, **randomized})
    # the constructor already turned its fp32 draw into the background text feature: store it exactly
    bg_key = "sem_seg_head.predictor.non_object_embedding"
    checkpoint[bg_key] = state[bg_key].detach().clone()
    ckpt_path = work / "official.pth"
    torch.save({"model": checkpoint}, ckpt_path)
    DetectionCheckpointer(model).load(str(ckpt_path))
    model.eval()

    png = fixtures.save_photo_png(work)
    h, w = fixtures.photo().shape[:2]
    obj_gt, part_gt = object_masks((h, w))
    Image.fromarray(obj_gt).save(work / "gt_obj.png")
    Image.fromarray(part_gt).save(work / "gt_part.png")
    entry = {  # a *_obj_condition entry (datasets/utils.py:load_binary_mask)
        "file_name": str(png),
        "sem_seg_file_name": str(work / "gt_part.png"),
        "obj_sem_seg_file_name": str(work / "gt_obj.png"),
        "category_id": OBJECT_ID,
    }
    inputs = SemanticObjPartDatasetMapper(cfg, False)(entry)

    recorded: dict[str, torch.Tensor] = {}

    def record(module, args, output):
        recorded["part_object_logits"] = output[0].detach().clone()
        recorded["specific_logits"] = output[1].detach().clone()

    hook = model.sem_seg_head.register_forward_hook(record)
    try:
        with openai_clip.cpu_only(), torch.no_grad():
            result = model([inputs])[0]
    finally:
        hook.remove()

    oracle, everything = result["sem_seg"], result["sem_seg_all"]
    # the evaluator (partcatseg_evaluation.py:process): argmax; ground truth at the mapper's resolution,
    # nearest-resized to the output; Oracle-Obj predictions count only where the ground truth is valid
    gt = torch.full(inputs["obj_part_instances"].gt_masks.shape[-2:], float(IGNORE))
    for cls_id, mask in zip(
        inputs["obj_part_instances"].gt_classes, inputs["obj_part_instances"].gt_masks, strict=True
    ):
        gt[mask.bool()] = float(cls_id)
    gt = F.interpolate(gt[None, None], size=oracle.shape[-2:], mode="nearest")[0, 0].int()
    valid = gt != IGNORE
    labels_oracle = torch.where(valid, oracle.argmax(0), torch.tensor(-1))
    labels_all = everything.argmax(0)  # the last channel is the background
    outputs = {
        "specific_logits": recorded["specific_logits"].float(),
        "part_object_logits": recorded["part_object_logits"].float(),
        "probabilities_all_s4": everything[:, ::4, ::4].float().contiguous(),
        "labels_pred_all": labels_all.to(torch.int16),
        "labels_oracle_obj": labels_oracle.to(torch.int16),
        "object_mask": torch.where(valid, OBJECT_ID, IGNORE).to(torch.uint8),
        "ties_pred_all": fixtures.ties(everything).to(torch.uint8),
        "ties_oracle_obj": (fixtures.ties(oracle) & valid).to(torch.uint8),
    }
    info = {
        "case": case,
        "method": "partcatseg",
        "official_repository": "github.com/kaist-cvml/part-catseg",
        "official_commit": fixtures.commit_of(runtime.mirror("partcatseg")),
        "dinov2_repository": "github.com/facebookresearch/dinov2",
        "dinov2_commit": fixtures.commit_of(runtime.mirror("dinov2")),
        "detectron2_commit": fixtures.commit_of(runtime.mirror("detectron2")),
        "config_files": [CONFIG, "configs/base_partcatseg_config.yaml"],
        "config_options": OPTIONS,
        "class_names": CLASS_NAMES,
        "object_classes": OBJECTS,
        "ground_truth_object": OBJECTS[OBJECT_ID],
        "ovparts_vocabulary": VOCABULARY,
        "prompt_templates": templates,
        "photo": fixtures.PHOTO,
        "photo_file": "PNG (lossless) read by the official mapper, INPUT.FORMAT RGB",
        "protocols": ["pred_all", "oracle_obj"],
        "labels_rule": (
            "Pred-All: argmax over the K parts + background (index K) of sem_seg_all, whole image; "
            "Oracle-Obj: argmax of sem_seg (other objects' parts at -1), -1 where the evaluator's "
            "ground truth is ignore (object_mask 255)"
        ),
        "checkpoint": (
            "seeded random weights, official layout {'model': state_dict}, fp16 tensors except "
            "non_object_embedding (fp32: the constructor's draw, which its text features already hold)"
        ),
        "text_features": openai_clip.text_precision_note(fp32_text),
        "clip_sizes": CLIP_SIZES,
        "dino_sizes": DINO_SIZES,
        "replaced_at_run_time": [
            "clip.load: torch.jit.load returns a seeded OpenAI-layout CLIP state dict (no download); the "
            "unused torchvision transform is a no-op",
            "torch.hub.load('facebookresearch/dinov2', 'dinov2_vits14'): the hub's DinoVisionTransformer "
            f"with the hub arguments and reduced widths {DINO_SIZES}, no pretrained download",
            "Tensor.cuda is a no-op; PartCATSeg's device setter keeps the CPU",
            f"DATASETS.TEST is a metadata entry {DATASET!r} with this case's classes",
        ],
        "outputs": {
            "specific_logits": "(1, K+1, 96, 96) stage-B head output (background last), before the sigmoid",
            "part_object_logits": "(1, P_g+O+1, 96, 96) stage-A head output",
            "probabilities_all_s4": "(K+1, 75, 113): sem_seg_all (K+1, 300, 451) [:, ::4, ::4]",
            "labels_pred_all": "(300, 451) int16, background = K",
            "labels_oracle_obj": "(300, 451) int16, -1 outside the evaluated object",
            "object_mask": "(300, 451) uint8: 0 = the ground-truth object (cat), 255 = ignore",
            "ties_pred_all": f"(300, 451) uint8: 1 where the two best of sem_seg_all differ by <= {fixtures.TIE_GAP}",
            "ties_oracle_obj": "(300, 451) uint8: the same for sem_seg inside the evaluated object",
        },
        "generator_version": fixtures.GENERATOR_VERSION,
        "seed": seed,
        "head_gain": gain,
        "spread": fixtures.spread(everything),
    }
    fixtures.write_fixture(out / case, checkpoint, info, outputs)
    return info
