"""`ovparts segment`: label the pixels of one or many images with a vocabulary's parts."""

from __future__ import annotations

import sys

import click

from ..errors import EXIT_USER_ERROR
from ..methods import DEFAULT_MODEL
from ..vocabulary import BENCHMARKS
from . import build_vocabulary, no_text_cache_option, process_options, rank_zero


@click.command("segment")
@no_text_cache_option
@click.argument("images", nargs=-1, required=True)
@click.option("--vocab", help='Parts to find, e.g. "dog: head, torso, leg; cat: ear".')
@click.option(
    "--benchmark",
    type=click.Choice(BENCHMARKS),
    help="Use a benchmark's whole vocabulary instead of --vocab.",
)
@click.option(
    "--model", "model_name", default=DEFAULT_MODEL, show_default=True, help="Method; see `ovparts models`."
)
@click.option(
    "--weights",
    help="Checkpoint folder, published name (`ovparts weights list`, e.g. pascal_part_116) or hub id. Default: clipseg's rd64-refined.",
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
@process_options("images")
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
    devices: int,
    num_nodes: int,
    workers: int | None,
) -> None:
    """Segment IMAGES (files, folders or quoted glob patterns) into parts; writes NAME.parts.png,
    NAME.overlay.png and NAME.json into --out.

    NAME.parts.png holds part ids (the order of the vocabulary; 255 = no part, or 65535 with 16 bits for
    vocabularies of 255+ parts), NAME.overlay.png the photo tinted by part with a legend, NAME.json each
    part's pixel share and mean probability, the no-part value, and a record of what was written. Outputs
    never replace an input or a file ovparts did not write; outputs of another image of the same name are
    kept and the new ones take the next free name (NAME-2). With --devices N the images are shared by N
    processes; the files are the same as with one.
    """
    from ..batch import expand_inputs, segment_batch

    vocabulary = build_vocabulary(vocab, benchmark)
    files = expand_inputs(images)
    single = len(files) < 2
    result = segment_batch(
        files,
        vocabulary,
        model=model_name,
        weights=weights,
        config=config_name,
        revision=revision,
        out=out_dir,
        object_mask=object_mask,
        device=device,
        background_threshold=background_threshold,
        skip_existing=skip_existing,
        compile=compile_model,
        devices=devices,
        num_nodes=num_nodes,
        num_workers=workers,
        progress=not single,
        echo=click.echo if single else None,
    )
    if result.failures:
        if rank_zero():
            click.echo(
                f"{result.failures} of {len(files)} images could not be segmented; see the errors above.",
                err=True,
            )
        sys.exit(EXIT_USER_ERROR)
