"""`ovparts models`: the registry's methods, configs and weights."""

from __future__ import annotations

import click


@click.command("models")
def list_models() -> None:
    """List the available methods and their named configs."""
    from ..models.registry import available_models, model_spec

    for name in available_models():
        spec = model_spec(name)
        names = [e.name for e in spec.published if not e.unsupported]
        weights = ", ".join(names) if names else (spec.default_weights or "none published (train or convert)")
        if spec.default_weights and names:
            weights += f" (default {spec.default_weights})"
        click.echo(
            f"{name:14s} {spec.description}\n{'':14s} configs: {', '.join(spec.configs)}; weights (`ovparts weights list`): {weights}"
        )
