# Entry points: `make demo` (main job), `make test` (the whole test suite: what CI runs) and `make test-fast`
# (the suite without the tests marked `slow`, for the edit-test loop). All build .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv demo test test-fast lint format clean

# open_clip_torch carries OpenAI's CLIP merges file and reference tokenizer for the real-tokenizer tests;
# --no-deps because open_clip's own dependencies (torchvision, timm) are not needed: it is never imported.
$(BIN)/ovparts: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps open_clip_torch==3.3.0
	touch $(BIN)/ovparts

venv: $(BIN)/ovparts

# Segments scikit-image's cat photo with a part vocabulary. Uses CIDAS/clipseg-rd64-refined from the
# Hugging Face cache or hub; set WEIGHTS=path/to/folder to use a local checkpoint instead.
WEIGHTS ?= CIDAS/clipseg-rd64-refined
VOCAB ?= cat: head, ear, eye, nose, leg, paw, torso, tail
demo: venv
	$(BIN)/python -c "import skimage.data, PIL.Image; PIL.Image.fromarray(skimage.data.chelsea()).save('chelsea.jpg')"
	$(BIN)/ovparts segment chelsea.jpg --vocab "$(VOCAB)" --weights "$(WEIGHTS)" --out demo-out

test: venv
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m pytest -q

# Everything but the `slow` tests (compile parity, learning checks, DDP, full-size models, subprocess and
# browser runs: see the marker in pyproject.toml); under 3 minutes on a 2-core CPU.
test-fast: venv
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m pytest -q -m "not slow"

lint: venv
	$(BIN)/python -m ruff check .

format: venv
	$(BIN)/python -m ruff format .
	$(BIN)/python -m ruff check --fix .

clean:
	rm -rf $(VENV) demo-out chelsea.jpg
