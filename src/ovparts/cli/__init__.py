"""The `ovparts` command line: the group, its error handling, and one module per command.

Errors a user can fix print one sentence and exit with code 2."""

from __future__ import annotations

import click

from ..errors import EXIT_USER_ERROR, OvpartsError, VocabularyError


class OvpartsGroup(click.Group):
    """Turns ovparts' typed errors into one line on stderr and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except OvpartsError as err:
            click.echo(f"Error: {err}", err=True)
            ctx.exit(EXIT_USER_ERROR)


@click.group(cls=OvpartsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ovparts")
def main() -> None:
    """Open-vocabulary part segmentation: label every pixel of an image with parts named in plain text.

    \b
    Example:
      ovparts segment photo.jpg --vocab "cat: head, ear, leg, tail" --out out/
    """


def _turn_off_text_cache(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        from ..text import disk_cache

        disk_cache.set_enabled(False)


def no_text_cache_option(command):  # noqa: ANN001, ANN201 - a click decorator
    """``--no-text-cache``: encode every vocabulary afresh and write nothing to ``$OVPARTS_HOME/text``."""
    return click.option(
        "--no-text-cache",
        is_flag=True,
        expose_value=False,
        callback=_turn_off_text_cache,
        help="Do not read or write encoded vocabularies on disk ($OVPARTS_HOME/text); same as OVPARTS_TEXT_CACHE=0.",
    )(command)


def process_options(shared: str):  # noqa: ANN201 - a click decorator factory
    """``--devices``, ``--num-nodes`` and ``--workers`` of a command that shares its ``shared`` (e.g. "images")
    over processes: one definition, so the commands cannot drift apart."""
    options = [
        click.option(
            "--devices",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help=f"Processes per node sharing the {shared} (one per GPU with --device cuda; torchrun and SLURM "
            "are detected).",
        ),
        click.option(
            "--num-nodes", type=click.IntRange(min=1), default=1, show_default=True, help="Machines."
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=0),
            default=None,
            help=f"Loader processes decoding the {shared} per process [default: 0 on one device, 2 per process "
            "otherwise].",
        ),
    ]

    def decorate(command):  # noqa: ANN001, ANN202
        for option in reversed(options):  # click lists options in decorator order, top to bottom
            command = option(command)
        return command

    return decorate


def build_vocabulary(vocab: str | None, benchmark: str | None):
    from ..vocabulary import Vocabulary

    if (vocab is None) == (benchmark is None):
        raise VocabularyError("Give exactly one of --vocab 'dog: head, tail' or --benchmark NAME.")
    return Vocabulary.parse(vocab) if vocab is not None else Vocabulary.from_benchmark(benchmark)


def rank_zero() -> bool:
    """Whether this process prints and writes: rank 0 of a distributed run (Lightning's launcher, torchrun or
    SLURM set these variables), or a plain process."""
    import os

    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "SLURM_PROCID"))


def _register_commands() -> None:
    from .benchmark import benchmark
    from .convert import convert_group
    from .data_download import data_download
    from .evaluate import COMMANDS as EVALUATE_COMMANDS
    from .models import list_models
    from .segment import segment
    from .serve import serve
    from .train import COMMANDS as TRAIN_COMMANDS
    from .weights import weights_group

    for command in (
        segment,
        list_models,
        serve,
        *EVALUATE_COMMANDS,
        convert_group,
        *TRAIN_COMMANDS,
        benchmark,
        weights_group,
    ):
        main.add_command(command)
    main.commands["data"].add_command(data_download)


_register_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
