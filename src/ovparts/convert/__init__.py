"""Converters from official checkpoints to ovparts checkpoints (safetensors + config.json)."""
