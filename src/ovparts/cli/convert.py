"""Click commands that wrap the converters; the main CLI mounts them under `ovparts convert`."""

from __future__ import annotations

import click


@click.group("convert")
def convert_group() -> None:
    """Convert official checkpoints (.pth) into ovparts folders (safetensors + config.json).

    Files are read with torch.load(weights_only=True): no code in a checkpoint ever runs.
    """


def converter_command(name: str, default_tokenizer: str):
    """``ovparts convert NAME CHECKPOINT OUT_DIR [--tokenizer ...]``: the arguments every converter takes."""

    def decorate(function):
        function = click.option(
            "--tokenizer",
            default=default_tokenizer,
            show_default=True,
            help="Folder or hub id with the CLIP tokenizer files to store beside the weights.",
        )(function)
        function = click.argument("out_dir", type=click.Path(file_okay=False))(function)
        function = click.argument("checkpoint", type=click.Path(dir_okay=False))(function)
        return convert_group.command(name)(function)

    return decorate


@converter_command("catseg", "openai/clip-vit-base-patch16")
def convert_catseg(checkpoint: str, out_dir: str, tokenizer: str) -> None:
    """Convert an official CAT-Seg checkpoint (CVPR 2024 or old release, .pth) into OUT_DIR.

    \b
    Example:
      ovparts convert catseg model_base.pth catseg-vitb/
      ovparts segment photo.jpg --model catseg --weights catseg-vitb/ --vocab "cat: head, ear"
    """
    from ..methods.catseg.convert import convert_catseg_checkpoint

    result = convert_catseg_checkpoint(checkpoint, out_dir, tokenizer=tokenizer)
    click.echo(result.report())
    click.echo(f"Saved to {out_dir}.")


@converter_command("partclipseg", "CIDAS/clipseg-rd64-refined")
@click.option(
    "--config",
    "base_config",
    default="default",
    show_default=True,
    help="Named partclipseg config for what shapes cannot tell (attention heads, CLIP layers read).",
)
def convert_partclipseg(checkpoint: str, out_dir: str, tokenizer: str, base_config: str) -> None:
    """Convert an official PartCLIPSeg checkpoint (e.g. partclipseg_voc_oracle.pth) into OUT_DIR.

    OUT_DIR then loads with `--model partclipseg --weights OUT_DIR`; it keeps the official class order and
    object-embedding index (faithful=true in its config.json), which the published weights depend on.
    """
    from ..errors import CheckpointError
    from ..methods.partclipseg.convert import convert_state_dict, read_official_checkpoint, write_checkpoint
    from ..methods.partclipseg.model import CONFIGS

    if base_config not in CONFIGS:
        raise CheckpointError(
            f"Unknown partclipseg config {base_config!r}; choose from {', '.join(CONFIGS)}."
        )
    conversion = convert_state_dict(read_official_checkpoint(checkpoint), CONFIGS[base_config])
    click.echo(conversion.summary())
    if conversion.unconsumed:
        click.echo(f"Warning: not converted: {', '.join(conversion.unconsumed)}", err=True)
    path = write_checkpoint(conversion, out_dir, tokenizer)
    click.echo(f"Wrote {path} (load it with --model partclipseg --weights {path}).")


@converter_command("partcatseg", "openai/clip-vit-base-patch16")
def convert_partcatseg(checkpoint: str, out_dir: str, tokenizer: str) -> None:
    """Convert an official PartCATSeg checkpoint (.pth, CLIP + DINOv2 + aggregator) into OUT_DIR.

    \b
    Example:
      ovparts convert partcatseg partcatseg_voc.pth partcatseg-voc/
      ovparts segment photo.jpg --model partcatseg --weights partcatseg-voc/ --vocab "cat: head, ear"
    """
    from ..methods.partcatseg.convert import convert_partcatseg_checkpoint

    result = convert_partcatseg_checkpoint(checkpoint, out_dir, tokenizer=tokenizer)
    click.echo(result.report())
    click.echo(f"Saved to {out_dir}.")


@converter_command("clipseg", "CIDAS/clipseg-rd64-refined")
@click.option(
    "--config",
    "base_config",
    default="ov-parts",
    show_default=True,
    help="Named clipseg config for what shapes cannot tell (attention heads, CLIP layers read).",
)
def convert_clipseg(checkpoint: str, out_dir: str, tokenizer: str, base_config: str) -> None:
    """Convert an OV-PARTS CLIPSeg baseline checkpoint (.pth with clipseg_model. keys) into OUT_DIR.

    The visual adapter and the learned non-object (background) vector come with it.

    \b
    Example:
      ovparts convert clipseg clipseg_voc.pth clipseg-ovparts-voc/
      ovparts segment photo.jpg --model clipseg --weights clipseg-ovparts-voc/ --vocab "cat: head, ear"
    """
    from ..errors import CheckpointError
    from ..methods.clipseg.convert import convert_state_dict, read_official_checkpoint, write_checkpoint
    from ..methods.clipseg.model import CONFIGS

    if base_config not in CONFIGS:
        raise CheckpointError(f"Unknown clipseg config {base_config!r}; choose from {', '.join(CONFIGS)}.")
    conversion = convert_state_dict(read_official_checkpoint(checkpoint), CONFIGS[base_config])
    click.echo(conversion.summary())
    if conversion.unconsumed:
        click.echo(f"Warning: not converted: {', '.join(conversion.unconsumed)}", err=True)
    path = write_checkpoint(conversion, out_dir, tokenizer)
    click.echo(f"Wrote {path} (load it with --model clipseg --weights {path}).")
