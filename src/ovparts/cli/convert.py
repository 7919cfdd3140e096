"""`ovparts convert <method>`: one command per registered model with a converter, made from its converter.

The commands are built when the group is used, from the registry (a method with a converter gets its
command with no change here): ``CHECKPOINT OUT_DIR [--tokenizer ...]``, plus ``--config NAME`` for converters
that take a base config. ``convert_<method>`` names the command of a method, for callers that mount one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # pragma: no cover
    from ..convert.converter import Converter


def converter_command(converter: Converter) -> click.Command:
    """``ovparts convert NAME CHECKPOINT OUT_DIR [--tokenizer ...] [--config NAME]`` for one converter."""

    def run(checkpoint: str, out_dir: str, tokenizer: str, **options: Any) -> None:
        from ..convert import write_checkpoint  # noqa: PLC0415

        options = converter.resolve_options(options)  # an unknown --config before the file is read
        conversion = converter.convert(converter.read(checkpoint), **options)
        click.echo(conversion.report())
        for line in conversion.warnings():
            click.echo(line, err=True)
        path = write_checkpoint(conversion, out_dir, tokenizer, source=checkpoint)
        click.echo(converter.saved.format(out_dir=out_dir, path=path, method=converter.method))

    params: list[click.Parameter] = [
        click.Argument(["checkpoint"], type=click.Path(dir_okay=False)),
        click.Argument(["out_dir"], type=click.Path(file_okay=False)),
        click.Option(
            ["--tokenizer"],
            default=converter.default_tokenizer,
            show_default=True,
            help="Folder or hub id with the CLIP tokenizer files to store beside the weights.",
        ),
    ]
    if converter.base_config is not None:
        params.append(
            click.Option(
                ["--config", "base_config"],
                default=converter.base_config,
                show_default=True,
                help=f"Named {converter.method} config for what shapes cannot tell (attention heads, CLIP "
                "layers read).",
            )
        )
    return click.Command(converter.method, callback=run, params=params, help=converter.help)


class ConvertGroup(click.Group):
    """The `convert` group, whose commands come from the model registry (read only when the group runs)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from ..convert import available_converters  # noqa: PLC0415

        return sorted(available_converters())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from ..convert import available_converters, converter_for  # noqa: PLC0415

        if cmd_name not in available_converters():
            return None
        return converter_command(converter_for(cmd_name))


@click.group("convert", cls=ConvertGroup)
def convert_group() -> None:
    """Convert official checkpoints (.pth) into ovparts folders (safetensors + config.json).

    Files are read with torch.load(weights_only=True): no code in a checkpoint ever runs.
    """


def __getattr__(name: str) -> click.Command:
    """``convert_<method>``: the command of one method (e.g. ``convert_catseg``), made from its converter."""
    if name.startswith("convert_") and name != "convert_group":
        from ..convert import available_converters, converter_for  # noqa: PLC0415

        method = name[len("convert_") :]
        if method in available_converters():
            return converter_command(converter_for(method))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
