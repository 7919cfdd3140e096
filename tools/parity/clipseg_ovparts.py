"""Case ``clipseg_ovparts``: OpenRobotLab/OV_PARTS's CLIPSeg baseline (VA+L+F+D), Pascal-Part zero-shot.

OV-PARTS published this baseline's checkpoints (``clipseg_model.`` keys: transformers' CLIPSeg with the
OV-PARTS visual adapter and learned non-object vector). Its test-time path, as ``train_net.py --eval-only``
runs it: ``configs/zero_shot/clipseg_voc.yaml`` (``ORACLE: True``), detectron2's ``build_model``,
``DetectionCheckpointer``, the official ``SemanticObjPartDatasetMapper`` and ``model([sample])``. Its only
protocol is Oracle-Obj: ``sem_seg`` holds the sigmoid of the bilinearly upsampled part logits with the parts
of absent objects zeroed, and ``GeneralizedSemSegEvaluator.process`` takes ``argmax`` and ignores every
pixel outside the sample's object mask (its first instance mask, nearest-resized to the image).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from . import fixtures, hf_clipseg, runtime

CONFIG = "configs/zero_shot/clipseg_voc.yaml"
# part-clipseg's copy of the baseline adds a Pred-All output (all parts + the non-object map, argmax)
COPY_CONFIG = "configs/zero_shot/clipseg_voc_pred_all.yaml"
STRIDE = 3
NOISE = 1.0
GAINS = {"transposed_convolution.4.weight": 20.0}
IGNORE = 255
# Imported at module level by OV_PARTS's other baselines (ZSseg+: mmseg; CAT-Seg: open_clip, whose installed
# release would import the repository's trimmed transformers copy), never called on CLIPSeg's path.
STAND_INS = ("mmseg", "open_clip")


def run_official(repo: str, config: str, scratch: Path, seed: int, checkpoint: Path | None = None) -> dict:
    """The baseline's test-time path in repository ``repo`` (``ov_parts``, or ``partclipseg`` for its copy);
    writes ``scratch/official.pth`` unless an existing ``checkpoint`` is given."""
    root = hf_clipseg.setup(repo, scratch)
    runtime.install_stand_ins(STAND_INS)
    with runtime.cpu_only():
        import baselines  # noqa: F401  (registers the meta-architectures and datasets)
        import transformers
        from baselines.data.datasets.register_pascal_part_116 import OBJ_CLASS_NAMES

        hf_clipseg.redirect_hub_downloads(
            transformers.CLIPSegProcessor,
            transformers.CLIPSegForImageSegmentation,
            transformers.CLIPSegConfig,
            root,
            scratch,
            seed,
        )
        hf_clipseg.register_test_metadata(OBJ_CLASS_NAMES)
        dataset_dict = hf_clipseg.write_annotations(scratch, OBJ_CLASS_NAMES)

        return hf_clipseg.run_meta_architecture(
            root, config, scratch, seed, checkpoint, dataset_dict, "clipseg_model", NOISE, GAINS
        )


def run_partclipseg_copy(scratch: Path, seed: int, checkpoint: Path) -> dict[str, torch.Tensor]:
    """part-clipseg's copy of the baseline on the same checkpoint, for its Pred-All output ``sem_seg_all``.

    Both repositories define top-level ``baselines`` and ``transformers`` and register the same detectron2
    names, so the copy runs in a process of its own.
    """
    from safetensors.torch import load_file  # noqa: PLC0415

    result = scratch / "partclipseg_copy.safetensors"
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
        "from tools.parity.clipseg_ovparts import copy_main; copy_main(Path(sys.argv[2]), int(sys.argv[3]), "
        "Path(sys.argv[4]), Path(sys.argv[5]))"
    )
    repo = Path(__file__).resolve().parents[2]
    args = [str(repo), str(scratch / "partclipseg-copy"), str(seed), str(checkpoint), str(result)]
    subprocess.run([sys.executable, "-c", code, *args], check=True)
    return load_file(str(result))


def copy_main(scratch: Path, seed: int, checkpoint: Path, result: Path) -> None:
    from safetensors.torch import save_file  # noqa: PLC0415

    scratch.mkdir(parents=True, exist_ok=True)
    ran = run_official("partclipseg", COPY_CONFIG, scratch, seed, checkpoint)
    assert not ran["cfg"].ORACLE
    tensors = {"logits": ran["network"]["logits"][0], "sem_seg_all": ran["output"]["sem_seg_all"]}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(result))


def evaluator_labels(probs: torch.Tensor, sample: dict) -> torch.Tensor:
    """``GeneralizedSemSegEvaluator.process``'s label map: argmax, ignore outside the first object mask."""
    labels = probs.argmax(dim=0)
    mask = sample["instances"].gt_masks[0].float()[None, None]
    mask = F.interpolate(mask, size=labels.shape[-2:], mode="nearest")[0, 0]
    return torch.where(mask == 0.0, IGNORE, labels).to(torch.uint8)


def generate(case: str, out: Path, scratch: Path, seed: int = 0, fp32_text: bool = False) -> dict:
    if fp32_text:
        raise SystemExit(f"{case}: the official text encoder already runs in fp32; nothing to diagnose.")
    ran = run_official("ov_parts", CONFIG, scratch, seed)
    assert ran["cfg"].ORACLE
    copy = run_partclipseg_copy(scratch, seed, ran["checkpoint"])
    # the same model in both repositories: the same logits from the same checkpoint
    torch.testing.assert_close(copy["logits"], ran["network"]["logits"][0], atol=1e-5, rtol=0)
    tokens = len(hf_clipseg.CLASSES)
    probs = ran["sigmoids"][0][0]  # the inference's one sigmoid: (T, H, W) before absent objects are zeroed
    oracle = ran["output"]["sem_seg"]
    own = [i for i, c in enumerate(hf_clipseg.CLASSES) if c.split("'s")[0] == hf_clipseg.OBJECT]
    others = [i for i in range(tokens) if i not in own]
    assert torch.equal(oracle[own], probs[own]) and not oracle[others].any()
    height, width = fixtures.photo().shape[:2]
    outputs = {
        "logits": fixtures.subsample(ran["network"]["logits"][0], STRIDE),
        "part_probs": fixtures.subsample(probs, STRIDE),
        "oracle_obj_labels": evaluator_labels(oracle, ran["sample"]),
        "oracle_obj_ties": fixtures.ties(oracle),
        "pred_all_labels": copy["sem_seg_all"].argmax(dim=0).to(torch.uint8),
        "pred_all_ties": fixtures.ties(copy["sem_seg_all"]),
        "object_mask": torch.from_numpy(hf_clipseg.object_mask(height, width)),
    }
    state = torch.load(ran["checkpoint"], map_location="cpu", weights_only=True)["model"]
    info = {
        "case": case,
        "method": "clipseg",
        "official_repo": "OpenRobotLab/OV_PARTS",
        "official_commit": fixtures.commit_of(runtime.mirror("ov_parts")),
        "config_files": {
            "oracle_obj": CONFIG,
            "pred_all": "kaist-cvml/part-clipseg@"
            + fixtures.commit_of(runtime.mirror("partclipseg"))
            + ":"
            + COPY_CONFIG,
        },
        "meta_architecture": "baselines/clipseg.py:CLIPSeg",
        "dataset_mapper": "baselines/data/dataset_mappers/object_part_mapper.py:SemanticObjPartDatasetMapper",
        "evaluator": "baselines/evaluation/generalized_sem_seg_evaluation.py:GeneralizedSemSegEvaluator.process",
        "classes": hf_clipseg.CLASSES,
        "text_inputs": 'the class names with "\'s" removed ("cat tail"), then the learned non-object vector',
        "object": hf_clipseg.OBJECT,
        "object_mask": {"shape": "ellipse", **hf_clipseg.MASK_ELLIPSE},
        "architecture": hf_clipseg.ARCHITECTURE,
        "protocols": ["oracle_obj", "pred_all"],
        "pred_all_source": "part-clipseg's copy of baselines/clipseg.py (its PartCLIPSeg paper reran the "
        "baseline with it) on the same checkpoint; its CLIPSegEvaluator takes argmax of 'sem_seg_all'",
        "photo_format": "PNG of the photo, read by the official inference with PIL .convert('RGB')",
        "stride": STRIDE,
        "seed": seed,
        "outputs": {
            "logits": "(T+1, 352, 352)[::3, ::3] decoder output: parts, then the non-object vector",
            "part_probs": "(T, H, W)[::3, ::3] sigmoid of the bilinear upsampling of the part logits "
            "(Oracle-Obj's 'sem_seg' is its object's channels of it, the others zeroed)",
            "oracle_obj_labels": "(H, W) the evaluator's argmax of 'sem_seg'; 255 outside its object mask "
            "(the mapper's 800-short-side mask, nearest-resized back)",
            "pred_all_labels": "(H, W) argmax of 'sem_seg_all' (the parts and the non-object map, no gating); "
            "T = non-object",
            "oracle_obj_ties, pred_all_ties": "(H, W) where the two best official scores are within 1e-6",
            "object_mask": "(H, W) the object mask the sample was made from (category only reaches the model)",
        },
        "replaced_at_run_time": [
            "from_pretrained('CIDAS/clipseg-rd64-refined'): processor from a local folder (OpenAI BPE from "
            "baselines/third_party, the hub's preprocessor settings); model from a seeded random "
            "CLIPSegForImageSegmentation (the repository's patched copy) of reduced width saved by its own "
            "save_pretrained",
            "'cuda' devices -> CPU (torch function mode); np.float/np.int/np.bool and Pillow's LINEAR/CUBIC/"
            "ANTIALIAS aliases restored",
            "vendored transformers 4.29 run with tokenizers 0.13.3 and huggingface_hub 0.14.1",
            "test-set metadata: the classes above registered as " + hf_clipseg.DATASET,
        ],
        "checkpoint": "seeded random weights, official layout {'model': state_dict}, fp16 tensors",
        "checkpoint_keys": len(state),
        "photo": fixtures.PHOTO,
        "generator_version": fixtures.GENERATOR_VERSION,
        "spread": fixtures.spread(probs),
    }
    fixtures.write_fixture(out / case, state, info, outputs)
    return info
