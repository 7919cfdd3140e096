"""``ovparts train CONFIG [key=value ...]``: run a recipe on one CPU, one GPU, many GPUs or a SLURM cluster.

The command line only builds the recipe (file + overrides + device flags), prints it resolved, and hands it to
``ovparts.training.train``; everything else is the recipe. Under ``torchrun`` or ``srun`` the same command runs
once per process and Lightning reads the rank from the environment.
"""

from __future__ import annotations

import click

from ..errors import ConfigError
from . import rank_zero


def device_overrides(
    devices: str | None,
    num_nodes: int | None,
    strategy: str | None,
    accelerator: str | None,
    precision: str | None,
    out: str | None,
) -> list[str]:
    """Command-line flags as recipe overrides, so the printed recipe is the one that runs."""
    pairs = {
        "trainer.devices": devices,
        "trainer.num_nodes": num_nodes,
        "trainer.strategy": strategy,
        "trainer.accelerator": accelerator,
        "trainer.precision": precision,
        "out_dir": out,
    }
    return [f"{key}={value}" for key, value in pairs.items() if value is not None]


@click.command("train", context_settings={"ignore_unknown_options": False})
@click.argument("config")
@click.argument("overrides", nargs=-1)
@click.option("--devices", help="Devices per node: a count, 'auto', or a list like [0,1].")
@click.option("--num-nodes", type=int, help="Number of machines (SLURM / torchrun multi-node).")
@click.option("--strategy", help="auto, ddp, fsdp (or any Lightning strategy name).")
@click.option("--accelerator", help="auto, cpu, gpu, mps.")
@click.option("--precision", help="32-true, bf16-mixed, 16-mixed or auto.")
@click.option("--out", help="Output folder (default: the recipe's out_dir).")
@click.option(
    "--resume",
    "resume",
    is_flag=False,
    flag_value="last",
    default=None,
    help="Continue the run: alone, from OUT/checkpoints/last.ckpt; or --resume=PATH for a given checkpoint.",
)
@click.option("--dry-run", is_flag=True, help="Print the resolved recipe and stop.")
def train_command(
    config: str,
    overrides: tuple[str, ...],
    devices: str | None,
    num_nodes: int | None,
    strategy: str | None,
    accelerator: str | None,
    precision: str | None,
    out: str | None,
    resume: str | None,
    dry_run: bool,
) -> None:
    """Train with the recipe CONFIG (a YAML file, or the name of a recipe shipped with ovparts), e.g.

    \b
      ovparts train tiny trainer.max_steps=200 optim.lr=5e-4
      ovparts train my_recipe.yaml --out runs/mine
      ovparts train partclipseg_voc_oracle --devices 8 --strategy ddp
    """
    from ..training.config import load_recipe

    flags = device_overrides(devices, num_nodes, strategy, accelerator, precision, out)
    recipe = load_recipe(config, [*overrides, *flags])
    if rank_zero():
        click.echo("# resolved recipe")
        click.echo(recipe.to_yaml())
    if dry_run:
        return
    from ..output_files import check_output_dir

    check_output_dir(recipe.output_dir, "--out")  # before the (long) run, not at its first checkpoint
    try:
        from ..training.runner import train
    except ImportError as err:
        raise ConfigError(f"Training needs the train extra: pip install 'ovparts[train]' ({err}).") from err
    result = train(recipe, resume=resume)
    if rank_zero():
        numbers = ", ".join(f"{k} {v:.2f}" for k, v in result.metrics.items())
        click.echo(f"Trained {result.steps} steps; outputs in {result.out_dir}.")
        if numbers:
            click.echo(f"Evaluation: {numbers}.")
        if result.export_dir is not None:
            click.echo(f"Model saved to {result.export_dir} (use: ovparts segment IMAGE --weights ...).")


COMMANDS = (train_command,)
"""What ``ovparts.cli`` registers."""
