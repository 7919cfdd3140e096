"""The per-request memory estimate is an upper bound of what a request really takes (measured in a fresh
process with its peak RSS reset before the request, so nothing else blurs the peak; Linux /proc)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import io, json
    from PIL import Image
    import numpy as np
    import ovparts
    from ovparts.serve import Limits, ServedModel
    from ovparts.serve.service import Request, SegmentService, result_payload
    from ovparts.vocabulary import Vocabulary

    def status(field):
        with open("/proc/self/status") as handle:
            line = next(line for line in handle if line.startswith(field + ":"))
        return int(line.split()[1]) * 1024

    def reset_peak():
        # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS, so the peak
        # measured next is the request's own, not that of loading or warming up
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return status("VmRSS")

    def png(width, height, seed):
        noise = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(noise).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()

    model = ovparts.load_model("clipseg", config="tiny")
    service = SegmentService([ServedModel("m", model)], Limits(working_pixels=384 * 384))
    vocab = Vocabulary.parse("cat: " + ", ".join(f"p{i}" for i in range(32)))
    for data in (png(64, 48, 0),):  # warm up: kernels, text embeddings, allocator pools
        request = Request(data, vocab)
        result_payload(service.run(request)[1], "m", "coco_rle")
    before = reset_peak()
    request = Request(png(1600, 1200, 1), vocab)
    plan = service.check(request)
    result_payload(service.run(request, plan)[1], "m", "coco_rle")
    print(json.dumps({"grew": status("VmHWM") - before, "estimate": plan.bytes, "resized": plan.resized}))
    """
)


@pytest.mark.slow
def test_estimate_bounds_the_measured_peak():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    numbers = json.loads(done.stdout.strip().splitlines()[-1])
    assert numbers["resized"]
    assert 0 < numbers["grew"] <= numbers["estimate"], numbers
