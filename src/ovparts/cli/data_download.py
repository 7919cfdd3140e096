"""`ovparts data download NAME --root DIR`: a benchmark by name, fetched, verified, unpacked and checked."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import EXIT_USER_ERROR


@click.command("download")
@click.argument("name")
@click.option(
    "--root", type=click.Path(file_okay=False, path_type=Path), default=Path("datasets"), show_default=True
)
@click.option("--remove-archive", is_flag=True, help="Delete the downloaded archive once unpacked.")
def data_download(name: str, root: Path, remove_archive: bool) -> None:
    """Download benchmark NAME into ROOT and run `ovparts data check` on it.

    Resumable (run it again after an interruption) and idempotent (a dataset already in place is left alone).
    Archives are kept under $OVPARTS_HOME/downloads/data unless --remove-archive.
    """
    from ..data.download import download_dataset

    result = download_dataset(
        name, root, keep_archive=not remove_archive, log=lambda t: click.echo(t, err=True)
    )
    click.echo(result.text())
    if not result.ok:
        sys.exit(EXIT_USER_ERROR)
