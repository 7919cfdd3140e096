"""`ovparts weights list | pull NAME | path NAME | rm NAME`: published checkpoints by name."""

from __future__ import annotations

import click


@click.group("weights")
def weights_group() -> None:
    """Published checkpoints: list them, fetch + convert one into the cache, show or remove it.

    NAME is METHOD:NAME (e.g. partcatseg:pascal_part_116), or a bare name that only one method publishes.
    The cache is $OVPARTS_HOME (default ~/.cache/ovparts); once pulled, a name loads with no network:
    `ovparts segment photo.jpg --model partcatseg --weights pascal_part_116 ...`.
    """


@weights_group.command("list")
@click.option("--model", "method", help="Only this method's checkpoints.")
def list_weights(method: str | None) -> None:
    """Every published checkpoint: name, local state, source, training data, licence, size."""
    from ..models.registry import model_spec
    from ..weights.catalog import all_published
    from ..weights.store import status

    entries = list(model_spec(method).published) if method else all_published()
    for entry in entries:
        size = entry.size or "size unknown"
        click.echo(f"{entry.qualified:42s} {status(entry):11s} {entry.source.describe()}")
        detail = f"trained on {entry.trained_on}; licence {entry.licence}; {size}"
        click.echo(f"{'':42s} {entry.description} ({detail})")
        if entry.unsupported:
            click.echo(f"{'':42s} not convertible: {entry.unsupported}")


@weights_group.command("pull")
@click.argument("name")
@click.option("--force", is_flag=True, help="Convert again from the (verified) raw file.")
def pull(name: str, force: bool) -> None:
    """Download (with a progress bar), verify and convert NAME into the cache; prints the folder."""
    from ..weights.catalog import require
    from ..weights.store import ensure

    click.echo(str(ensure(require(name), force=force)))


@weights_group.command("path")
@click.argument("name")
def path(name: str) -> None:
    """The converted folder of NAME (exit code 1 when it has not been pulled yet); never downloads."""
    from ..weights.catalog import require
    from ..weights.store import cached_path, converted_dir

    entry = require(name)
    if entry.native:
        click.echo(entry.source.location)
        return
    found = cached_path(entry)
    if found is None:
        click.echo(f"{entry.qualified} is not pulled yet (it would go to {converted_dir(entry)}).", err=True)
        raise SystemExit(1)
    click.echo(str(found))


@weights_group.command("rm")
@click.argument("name")
def remove(name: str) -> None:
    """Delete NAME's converted folder and raw download from the cache."""
    from ..weights.catalog import require
    from ..weights.store import remove as remove_entry

    removed = remove_entry(require(name))
    for folder in removed:
        click.echo(f"Removed {folder}")
    if not removed:
        click.echo("Nothing to remove.")
