"""`ovparts segment`: label the pixels of one or many images with a vocabulary's parts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import EXIT_USER_ERROR, OvpartsError, VocabularyError
from ..segment_outputs import RECORD_KEY as RECORD
from ..segment_outputs import file_sha256
from ..vocabulary import BENCHMARKS
from . import build_vocabulary


@click.command("segment")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--vocab", help='Parts to find, e.g. "dog: head, torso, leg; cat: ear".')
@click.option(
    "--benchmark",
    type=click.Choice(BENCHMARKS),
    help="Use a benchmark's whole vocabulary instead of --vocab.",
)
@click.option(
    "--model", "model_name", default="clipseg", show_default=True, help="Method; see `ovparts models`."
)
@click.option(
    "--weights",
    help="Checkpoint folder or hub id. Default: the method's published weights (clipseg: CIDAS/clipseg-rd64-refined).",
)
@click.option(
    "--config",
    "config_name",
    help="Named config for a randomly initialised model (e.g. 'tiny'); testing only.",
)
@click.option("--revision", help="Pin a hub revision (commit hash or tag) for --weights.")
@click.option("--out", "out_dir", default="ovparts-out", show_default=True, help="Output folder.")
@click.option(
    "--object-mask",
    type=click.Path(dir_okay=False),
    help="PNG of object ids (none = 255 in 8-bit, 65535 in 16-bit) for Oracle-Obj: each pixel may only take parts of its object. One image only.",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, mps ...")
@click.option("--background-threshold", type=float, help="Probability below which a pixel is background.")
@click.option(
    "--skip-existing",
    is_flag=True,
    help="Skip images whose outputs already exist from the same image content, model, weights, vocabulary "
    "and options (resume a batch).",
)
@click.option(
    "--compile",
    "compile_model",
    is_flag=True,
    help="Compile the image encoder and decoder with torch.compile (inductor; on CPU needs a C++ compiler). "
    "The first image pays the compile time (tens of seconds to minutes), so it pays off on batches only.",
)
def segment(
    images: tuple[str, ...],
    vocab: str | None,
    benchmark: str | None,
    model_name: str,
    weights: str | None,
    config_name: str | None,
    revision: str | None,
    out_dir: str,
    object_mask: str | None,
    device: str,
    background_threshold: float | None,
    skip_existing: bool,
    compile_model: bool,
) -> None:
    """Segment IMAGES into parts; writes NAME.parts.png, NAME.overlay.png and NAME.json into --out.

    NAME.parts.png holds part ids (the order of the vocabulary; 255 = no part, or 65535 with 16 bits for
    vocabularies of 255+ parts), NAME.overlay.png the photo tinted by part with a legend, NAME.json each
    part's pixel share and mean probability, the no-part value, and a record of what was written. Outputs
    never replace an input or a file ovparts did not write; outputs of another image of the same name are
    kept and the new ones take the next free name (NAME-2).
    """
    from tqdm import tqdm

    from ..imageio import load_image, save_png, save_text
    from ..inference import Segmenter
    from ..models.registry import load_model
    from ..outputs import check_output_dir, terminate_cleanly
    from ..segment_outputs import make_record, plan_outputs
    from ..validation import check_background_threshold
    from ..visualize import label_png, no_part_value, overlay

    vocabulary = build_vocabulary(vocab, benchmark)
    if object_mask is not None and len(images) > 1:
        raise VocabularyError("--object-mask applies to a single image; run one image at a time with it.")
    check_background_threshold(background_threshold)
    out = check_output_dir(out_dir)
    settings = {
        "model": model_name,
        "weights": weights or ("random:" + config_name if config_name else "default"),
        "revision": revision,
        "vocabulary": vocabulary.format(),
        "background_threshold": background_threshold,
        "object_mask_sha256": file_sha256(object_mask) if object_mask is not None else None,
    }
    protected = [Path(p) for p in images] + ([Path(object_mask)] if object_mask else [])
    targets = plan_outputs(images, out, protected, settings, skip_existing)
    model = load_model(model_name, weights=weights, config=config_name, device=device, revision=revision)
    segmenter = Segmenter(model, background_threshold=background_threshold, compile=compile_model)
    failures = 0
    no_part = no_part_value(len(vocabulary))
    with terminate_cleanly():
        for target in tqdm(targets, disable=len(images) < 2, unit="image"):
            if target.skip:
                continue
            try:
                picture = load_image(target.image)
                result = segmenter(picture, vocabulary, object_mask=object_mask)
            except OvpartsError as err:
                failures += 1
                tqdm.write(f"Error: {err}", file=sys.stderr)
                continue
            parts_path, overlay_path, json_path = target.paths
            report = {
                "image": str(target.image),
                "size": [picture.width, picture.height],
                "model": model_name,
                "weights": settings["weights"],
                "protocol": result.protocol,
                "vocabulary": vocabulary.format(),
                "no_part": no_part,
                "no_part_share": float((result.part_map < 0).mean()),
                "parts": result.summary(),
            }
            # A pending record first (it claims the two PNGs), the complete one last: its presence and
            # the PNGs' recorded hashes mark an image as finished for --skip-existing.
            save_text(json_path, json.dumps({RECORD: make_record(target, settings, False)}, indent=2))
            save_png(parts_path, label_png(result.part_map, len(vocabulary)))
            save_png(overlay_path, overlay(picture, result.part_map, vocabulary))
            report[RECORD] = make_record(target, settings, True)
            save_text(json_path, json.dumps(report, indent=2))
            if len(images) < 2:
                click.echo(
                    f"Wrote {out / target.stem}.parts.png, .overlay.png and .json "
                    f"({len(report['parts'])} parts found)."
                )
    if failures:
        click.echo(
            f"{failures} of {len(images)} images could not be segmented; see the errors above.", err=True
        )
        sys.exit(EXIT_USER_ERROR)
