"""The CLIPSeg family's official code base: detectron2 meta-architectures on a vendored transformers 4.29.

Both kaist-cvml/part-clipseg (PartCLIPSeg, and its copy of the CLIPSeg baseline) and OpenRobotLab/OV_PARTS (the
CLIPSeg baseline it published) ship a patched ``transformers`` 4.29.0.dev0 at the repository root, which
shadows any installed transformers when the code runs from there. That copy checks ``tokenizers < 0.14`` and
needs ``huggingface_hub < 1.0`` and ``requests`` at import, so those live in a folder of their own
(``$OVPARTS_PARITY_HF4_SITE``, default ``/work/offenv-hf429``), put first on ``sys.path`` for these cases only:

    /work/offenv/bin/pip install --target /work/offenv-hf429 --no-deps tokenizers==0.13.3 \\
        huggingface_hub==0.14.1 requests urllib3 idna charset_normalizer certifi fsspec

Run-time replacements (nothing else is changed):
* ``*.from_pretrained("CIDAS/clipseg-rd64-refined")`` (processor and model) read local folders: the processor
  folder holds OpenAI's BPE files (from the repository's own ``baselines/third_party``) and the hub's
  preprocessor settings; the model folder holds a seeded random model of reduced width written by the
  official model class itself (``save_pretrained``).
* ``"cuda"`` devices become the CPU (:func:`runtime.cpu_only`); numpy's removed aliases are restored.
* The benchmark's dataset registration is used for its class names; the test set's metadata is a small
  subset of Pascal-Part-116 registered under its own name.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from . import fixtures, runtime

HUB_ID = "CIDAS/clipseg-rd64-refined"
HF4_SITE = Path(os.environ.get("OVPARTS_PARITY_HF4_SITE", "/work/offenv-hf429"))
# The hub's preprocessor_config.json for CIDAS/clipseg-rd64-refined: ViTImageProcessor, 352 x 352 bilinear
# (PIL resample 2), x 1/255, ImageNet mean and std.
PREPROCESSOR = {
    "image_processor_type": "ViTImageProcessor",
    "do_resize": True,
    "size": {"height": 352, "width": 352},
    "resample": 2,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225],
}
# Reduced widths: what the official code takes from the config. The vision width (768, the visual adapter)
# and the projection width (512, the background vector) are hard-coded there and stay.
ARCHITECTURE: dict[str, Any] = {
    "text_config": {
        "vocab_size": 49408,
        "hidden_size": 8,
        "intermediate_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 8,
        "max_position_embeddings": 77,
    },
    "vision_config": {
        "hidden_size": 768,
        "intermediate_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 12,
        "image_size": 64,
        "patch_size": 16,
    },
    "projection_dim": 512,
    "extract_layers": [-1, 0, 0],
    "reduce_dim": 16,
    "decoder_num_attention_heads": 4,
    "decoder_intermediate_size": 32,
    "conditional_layer": 0,
    "use_complex_transposed_convolution": True,
}
DATASET = "parity_voc_cat_dog_val_obj_condition"
# Pascal-Part-116 classes, in the benchmark's order; first appearance differs from sorted() order.
CLASSES = [
    "cat's tail",
    "cat's head",
    "cat's eye",
    "cat's torso",
    "cat's leg",
    "cat's ear",
    "dog's head",
    "dog's torso",
    "dog's leg",
    "dog's muzzle",
]
OBJECT = "cat"
# The object mask given for Oracle-Obj, as (y, x) fractions of the photo: an ellipse over the cat.
MASK_ELLIPSE = {"centre": (0.55, 0.5), "radii": (0.45, 0.4)}


def setup(name: str, scratch: Path) -> Path:
    """Official repository ``name`` importable with its vendored transformers; returns its folder."""
    if not (HF4_SITE / "tokenizers").is_dir():
        raise SystemExit(
            f"No tokenizers<0.14 under {HF4_SITE}; see tools/parity/hf_clipseg.py for the install."
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("DETECTRON2_DATASETS", str(scratch / "datasets"))
    if str(HF4_SITE) not in sys.path:
        sys.path.insert(0, str(HF4_SITE))
    runtime.install_detectron2(scratch)
    root = runtime.extract(name, scratch)
    runtime.add_to_path(root)
    runtime.numpy_aliases()
    runtime.restore_pillow_aliases()
    return root


def processor_folder(root: Path, scratch: Path) -> Path:
    folder = fixtures.write_clip_tokenizer(
        root / "baselines" / "third_party" / "bpe_simple_vocab_16e6.txt.gz", scratch / "clipseg-processor"
    )
    (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR))
    return folder


def pretrained_folder(model_class: type, config_class: type, scratch: Path, seed: int) -> Path:
    """The stand-in for the hub's weights: the official class's own seeded initialisation, saved by it."""
    import torch  # noqa: PLC0415

    folder = scratch / f"clipseg-standin-{model_class.__name__}-{seed}"
    if not (folder / "config.json").is_file():
        torch.manual_seed(seed)
        model_class(config_class(**ARCHITECTURE)).save_pretrained(str(folder))
    return folder


def redirect_hub_downloads(
    processor_class: type, model_class: type, config_class: type, root: Path, scratch: Path, seed: int
) -> None:
    """Point the official ``from_pretrained(HUB_ID)`` calls of the processor and the model at local folders:
    the repository's own BPE files, and a seeded random model of reduced width (see the module docstring)."""
    runtime.redirect_from_pretrained(processor_class, {HUB_ID: processor_folder(root, scratch)})
    standin = pretrained_folder(model_class, config_class, scratch, seed)
    runtime.redirect_from_pretrained(model_class, {HUB_ID: standin})


def run_meta_architecture(
    root: Path,
    config_file: str,
    scratch: Path,
    seed: int,
    checkpoint: Path | None,
    dataset_dict: dict[str, Any],
    inner: str,
    noise: float,
    gains: dict[str, float],
) -> dict[str, Any]:
    """One official test-time run, as ``train_net.py --eval-only`` makes it: ``build_model`` from the config,
    the checkpoint loaded (written first, as ``scratch/official.pth`` from the perturbed initialisation, when
    ``checkpoint`` is None), the official mapper's sample, ``model([sample])``. ``inner`` names the wrapped
    transformers model whose outputs are recorded (the network's own resolution)."""
    import torch
    from baselines.data.dataset_mappers.object_part_mapper import SemanticObjPartDatasetMapper
    from detectron2.modeling import build_model

    cfg = build_cfg(root, config_file)
    model = build_model(cfg)
    if checkpoint is None:
        checkpoint = scratch / "official.pth"
        state = perturbed(model.state_dict(), seed + 1, noise, gains)
        torch.save({"model": fixtures.fp16_rounded(state)}, checkpoint)
    load_official_checkpoint(model, checkpoint)
    model.eval()
    sample = SemanticObjPartDatasetMapper(cfg, False)(dataset_dict)
    captured: dict = {}
    hook = getattr(model, inner).register_forward_hook(
        lambda module, args, kwargs, out, into=captured: into.update(out), with_kwargs=True
    )
    with torch.no_grad(), SigmoidRecorder(fixtures.photo().shape[:2]) as sigmoids:
        output = model([sample])[0]
    hook.remove()
    return {
        "cfg": cfg,
        "output": output,
        "network": captured,
        "sigmoids": sigmoids.results,
        "sample": sample,
        "checkpoint": checkpoint,
    }


def register_test_metadata(obj_classes: list[str]) -> None:
    from detectron2.data import MetadataCatalog

    meta = MetadataCatalog.get(DATASET)
    if not hasattr(meta, "stuff_classes"):
        meta.set(
            stuff_classes=list(CLASSES),
            obj_classes=list(obj_classes),
            ignore_label=255,
            evaluator_type="sem_seg",
        )


def build_cfg(root: Path, config_file: str):
    """detectron2's config as train_net.py builds it, test set and device overridden from the command line."""
    from baselines import add_mask_former_config
    from detectron2.config import get_cfg
    from detectron2.projects.deeplab import add_deeplab_config

    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_mask_former_config(cfg)
    cfg.set_new_allowed(True)
    cfg.merge_from_file(str(root / config_file))
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "DATASETS.TEST", f"('{DATASET}',)"])
    cfg.freeze()
    return cfg


def perturbed(state: dict, seed: int, scale: float, gains: dict[str, float] | None = None) -> dict:
    """'Trained' weights: every floating tensor plus seeded noise of ``scale`` x its own spread.

    ``gains`` multiplies the tensors whose names end with a key afterwards (e.g. the last transposed
    convolution, so that logits spread over a few units instead of a few hundredths and label maps do not
    hinge on rounding).
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in state.items():
        if not value.is_floating_point():
            out[key] = value
            continue
        spread = float(value.float().std()) if value.numel() > 1 else 0.0
        spread = spread if spread > 0 else 0.02
        noise = torch.randn(value.shape, generator=generator) * spread * scale
        gain = next((g for suffix, g in (gains or {}).items() if key.endswith(suffix)), 1.0)
        out[key] = ((value.float() + noise) * gain).half().float()  # fp16-representable, as in the file
    return out


def load_official_checkpoint(model, path: Path) -> None:
    """As ``train_net.py --eval-only`` does; then check every tensor arrived."""
    import torch
    from detectron2.checkpoint import DetectionCheckpointer

    DetectionCheckpointer(model).resume_or_load(str(path), resume=False)
    stored = torch.load(path, map_location="cpu", weights_only=True)["model"]
    current = model.state_dict()
    if set(stored) != set(current):
        raise SystemExit(f"Checkpoint keys differ from the model's: {sorted(set(stored) ^ set(current))[:5]}")
    for key, value in stored.items():
        if not torch.equal(current[key].float(), value.float()):
            raise SystemExit(f"{key} did not load.")


def write_annotations(folder: Path, obj_classes: list[str]) -> dict[str, Any]:
    """A dataset dict as the Pascal-Part obj-condition loader makes it, with its label PNGs.

    Object GT: the ellipse labelled with the object's id, 255 elsewhere. Part GT (used by the official
    attention visualisation only): the upper half of the ellipse the object's first part, the lower half its
    second part.
    """
    from PIL import Image

    image = fixtures.save_photo_png(folder)
    height, width = fixtures.photo().shape[:2]
    mask = object_mask(height, width)
    obj_id = obj_classes.index(OBJECT)
    objects = np.where(mask == 1, obj_id, 255).astype(np.uint8)
    parts = np.full((height, width), 255, dtype=np.uint8)
    own = [i for i, c in enumerate(CLASSES) if c.split("'s")[0] == OBJECT]
    upper = np.zeros_like(mask, dtype=bool)
    upper[: int(height * MASK_ELLIPSE["centre"][0])] = True
    parts[(mask == 1) & upper] = own[1]
    parts[(mask == 1) & ~upper] = own[3]
    Image.fromarray(objects).save(folder / "obj.png")
    Image.fromarray(parts).save(folder / "part.png")
    return {
        "file_name": str(image),
        "sem_seg_file_name": str(folder / "part.png"),
        "obj_sem_seg_file_name": str(folder / "obj.png"),
        "height": height,
        "width": width,
        "category_id": obj_id,
    }


def object_mask(height: int, width: int) -> np.ndarray:
    return fixtures.ellipse_mask(height, width, MASK_ELLIPSE["centre"], MASK_ELLIPSE["radii"])


class SigmoidRecorder:
    """Records a copy of every ``torch.sigmoid`` result of spatial size ``size`` inside the block, in order.

    The official inference gates its probabilities in place after computing them; the copies keep the
    probabilities as computed (the same tensors, before the gating).
    """

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = tuple(size)
        self.results: list = []

    def __enter__(self):
        import torch
        from torch.overrides import TorchFunctionMode

        recorder = self

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                is_sigmoid = func in (torch.sigmoid, torch.Tensor.sigmoid)
                if is_sigmoid and tuple(out.shape[-2:]) == recorder.size:
                    recorder.results.append(out.detach().clone())
                return out

        self._mode = Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self._mode.__exit__(*exc)
