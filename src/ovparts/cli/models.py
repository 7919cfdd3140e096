"""`ovparts models`: the registry's methods, configs and weights."""

from __future__ import annotations

import click


@click.command("models")
def list_models() -> None:
    """List the available methods, their named configs (what each one is) and weights."""
    from ..models.registry import available_models, model_spec

    for name in available_models():
        spec = model_spec(name)
        names = [e.name for e in spec.published if not e.unsupported]
        weights = ", ".join(names) if names else (spec.default_weights or "none published (train or convert)")
        if spec.default_weights and names:
            weights += f" (default {spec.default_weights})"
        click.echo(f"{name:14s} {spec.description}\n{'':14s} weights (`ovparts weights list`): {weights}")
        for config in spec.configs:
            note = spec.config_notes.get(config, "")
            click.echo(f"{'':14s} config {config}" + (f": {note}" if note else ""))
