"""A training process for the multi-process tests: ``python worker.py RECIPE [key=value ...]``.

Lightning's DDP launcher re-runs this very command line once per extra rank, so it must be a script. Each rank
saves the weights it ends with as ``OUT/rank<N>.pt``.
"""

import sys

import torch

from ovparts.training import load_recipe, train

if __name__ == "__main__":
    recipe = load_recipe(sys.argv[1], sys.argv[2:])
    result = train(recipe, export=False)
    state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    torch.save({"steps": result.steps, "state": state}, result.out_dir / f"rank{result.global_rank}.pt")
