"""Official checkpoints -> ovparts checkpoints (safetensors + config.json), one pure function per method."""
