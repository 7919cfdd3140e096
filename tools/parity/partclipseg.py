"""Case ``partclipseg_voc``: kaist-cvml/part-clipseg's PartCLIPSeg, Pascal-Part zero-shot configs, on a photo.

The official test-time path, as ``train_net.py --eval-only`` runs it: the config from
``configs/zero_shot/partclipseg_voc_{pred_all,oracle}.yaml``, the meta-architecture built by detectron2's
``build_model``, the checkpoint loaded by ``DetectionCheckpointer``, the sample made by the official
``SemanticObjPartDatasetMapper`` from a dataset dict, and ``model([sample])``. The two configs differ only in
``ORACLE`` (which output the evaluator scores); both are run. Label maps follow the evaluator: ``argmax`` over
``sem_seg`` (Oracle-Obj) and over ``sem_seg_with_bg`` (Pred-All, background = index T).
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import fixtures, hf_clipseg, runtime

CONFIGS = {
    "pred_all": "configs/zero_shot/partclipseg_voc_pred_all.yaml",
    "oracle_obj": "configs/zero_shot/partclipseg_voc_oracle.yaml",
}
STRIDE = 3  # network outputs and image-size probabilities are stored every 3rd pixel
NOISE = 1.0  # the 'trained' weights: initialisation + noise of this many standard deviations per tensor
# ... and the heads' last transposed convolutions scaled up, so logits spread over a few units
GAINS = {"transposed_convolution.4.weight": 20.0, "part_obj_with_cond_embed.4.weight": 20.0}


def run_official(scratch: Path, seed: int, checkpoint: Path | None = None) -> dict:
    root = hf_clipseg.setup("partclipseg", scratch)
    with runtime.cpu_only():
        import baselines  # noqa: F401  (registers the meta-architectures and datasets)
        import transformers
        from baselines.data.datasets.register_pascal_part_116 import OBJ_CLASS_NAMES

        hf_clipseg.redirect_hub_downloads(
            transformers.PartCLIPSegProcessor,
            transformers.PartCLIPSegForImageSegmentation,
            transformers.PartCLIPSegConfig,
            root,
            scratch,
            seed,
        )
        hf_clipseg.register_test_metadata(OBJ_CLASS_NAMES)
        dataset_dict = hf_clipseg.write_annotations(scratch, OBJ_CLASS_NAMES)

        results = {}
        for protocol, config_file in CONFIGS.items():
            run = hf_clipseg.run_meta_architecture(
                root, config_file, scratch, seed, checkpoint, dataset_dict, "partclipseg_model", NOISE, GAINS
            )
            checkpoint = run["checkpoint"]
            results[protocol] = {key: run[key] for key in ("output", "network", "sigmoids")}
    return {"results": results, "checkpoint": checkpoint, "root": root, "cfg_files": CONFIGS}


def generate(case: str, out: Path, scratch: Path, seed: int = 0, fp32_text: bool = False) -> dict:
    if fp32_text:
        raise SystemExit(f"{case}: the official text encoder already runs in fp32; nothing to diagnose.")
    ran = run_official(scratch, seed)
    pred_all, oracle = ran["results"]["pred_all"], ran["results"]["oracle_obj"]
    tokens = len(hf_clipseg.CLASSES)
    # Both configs build the same network: their raw outputs agree exactly.
    for key in ("logits", "part_obj_logits"):
        assert torch.equal(pred_all["network"][key], oracle["network"][key]), key
    network = pred_all["network"]
    # inference's sigmoids, in order: object-specific parts (T), the same + background (T+1), generalized
    # parts (P), objects + background (O+1); recorded before the in-place gating.
    probs_parts, probs_with_bg = pred_all["sigmoids"][:2]
    torch.testing.assert_close(probs_parts, probs_with_bg[:, :tokens], atol=1e-6, rtol=0)
    # Oracle-Obj's output is those probabilities with the absent objects' parts zeroed: stored once.
    own = [i for i, c in enumerate(hf_clipseg.CLASSES) if c.split("'s")[0] == hf_clipseg.OBJECT]
    oracle_probs = oracle["output"]["sem_seg"]
    assert torch.equal(oracle_probs[own], probs_parts[0, own]) and not oracle_probs[tokens:].any()
    height, width = fixtures.photo().shape[:2]
    outputs = {
        "part_obj_logits": fixtures.subsample(network["part_obj_logits"][0], STRIDE),
        "class_logits": fixtures.subsample(network["logits"][0], STRIDE),
        "part_probs": fixtures.subsample(probs_with_bg[0], STRIDE),
        "oracle_obj_labels": oracle_probs.argmax(dim=0).to(torch.uint8),
        "oracle_obj_ties": fixtures.ties(oracle_probs),
        "pred_all_labels": pred_all["output"]["sem_seg_with_bg"].argmax(dim=0).to(torch.uint8),
        "pred_all_ties": fixtures.ties(pred_all["output"]["sem_seg_with_bg"]),
        "object_mask": torch.from_numpy(hf_clipseg.object_mask(height, width)),
    }
    state = torch.load(ran["checkpoint"], map_location="cpu", weights_only=True)["model"]
    info = {
        "case": case,
        "method": "partclipseg",
        "official_repo": "kaist-cvml/part-clipseg",
        "official_commit": fixtures.commit_of(runtime.mirror("partclipseg")),
        "config_files": CONFIGS,
        "meta_architecture": "baselines/partclipseg.py:PartCLIPSeg",
        "dataset_mapper": "baselines/data/dataset_mappers/object_part_mapper.py:SemanticObjPartDatasetMapper",
        "classes": hf_clipseg.CLASSES,
        "object": hf_clipseg.OBJECT,
        "object_mask": {"shape": "ellipse", **hf_clipseg.MASK_ELLIPSE},
        "architecture": hf_clipseg.ARCHITECTURE,
        "protocols": ["pred_all", "oracle_obj"],
        "photo_format": "PNG of the photo, read by the official inference with PIL .convert('RGB')",
        "stride": STRIDE,
        "seed": seed,
        "outputs": {
            "part_obj_logits": "(T+1, 352, 352)[::3, ::3] decoder output: object-specific parts, background",
            "class_logits": "(P+O+1, 352, 352)[::3, ::3] decoder output: generalized parts, objects, background",
            "part_probs": "(T+1, H, W)[::3, ::3] sigmoid of the bilinear upsampling, before any gating "
            "(Oracle-Obj's 'sem_seg' equals its object's channels of it, the others zeroed)",
            "oracle_obj_labels": "(H, W) argmax of 'sem_seg' (the evaluator scores it on GT part pixels)",
            "pred_all_labels": "(H, W) argmax of 'sem_seg_with_bg' (parts gated by the object head); T = background",
            "oracle_obj_ties, pred_all_ties": "(H, W) where the two best official scores are within 1e-6",
            "object_mask": "(H, W) the Oracle-Obj object mask (the official model uses only its category)",
        },
        "replaced_at_run_time": [
            "from_pretrained('CIDAS/clipseg-rd64-refined'): processor from a local folder (OpenAI BPE from "
            "baselines/third_party, the hub's preprocessor settings); model from a seeded random "
            "PartCLIPSegForImageSegmentation of reduced width saved by its own save_pretrained",
            "'cuda' devices -> CPU (torch function mode); np.float/np.int/np.bool restored",
            "vendored transformers 4.29 run with tokenizers 0.13.3 and huggingface_hub 0.14.1",
            "test-set metadata: the classes above registered as " + hf_clipseg.DATASET,
        ],
        "checkpoint": "seeded random weights, official layout {'model': state_dict}, fp16 tensors",
        "checkpoint_keys": len(state),
        "photo": fixtures.PHOTO,
        "generator_version": fixtures.GENERATOR_VERSION,
        "spread": fixtures.spread(probs_with_bg[0]),
    }
    fixtures.write_fixture(out / case, state, info, outputs)
    return info
