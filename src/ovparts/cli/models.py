"""`ovparts models`: the registry's methods, configs and weights."""

from __future__ import annotations

import click


@click.command("models")
def list_models() -> None:
    """List the available methods and their named configs."""
    from ..models.registry import available_models, model_spec

    for name in available_models():
        spec = model_spec(name)
        weights = spec.default_weights or "none published (train or convert)"
        click.echo(
            f"{name:14s} {spec.description}\n{'':14s} configs: {', '.join(spec.configs)}; weights: {weights}"
        )
