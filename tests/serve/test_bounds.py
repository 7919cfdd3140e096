"""The work of one request is planned from the image header and refused (413) before it runs; a time-out
stops the work; every surface judges options alike; the multipart parser's limits answer like the rest."""

from __future__ import annotations

import base64
import io
import json
import threading
import time

import numpy as np
import pytest
from PIL import Image

from ovparts.serve import Limits, ServedModel, create_app
from ovparts.serve.budget import estimate_bytes, pixel_weights, scale_labels, working_size
from ovparts.text.cache import TextEmbeddingCache, set_budget

from ..robustness.corpus_outputs import BAD_THRESHOLDS
from .test_api import assert_refused, client_for, post_image

VOCAB = "cat: head, ear, tail"


def png(width: int, height: int, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), 90 if mode != "RGB" else (90, 60, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client(tiny_clipseg):
    with client_for(tiny_clipseg) as c:
        yield c


def many_parts(count: int) -> str:
    return "cat: " + ", ".join(f"p{i}" for i in range(count))


# ------------------------------------------------------------------ planned before running
def test_pixel_parts_bound_refuses_before_any_work(tiny_clipseg):
    backbone = tiny_clipseg.backbone
    with client_for(tiny_clipseg, working_pixels=128 * 128, max_pixel_parts=128 * 128 * 8) as client:
        calls = backbone.text_encoder_calls
        detail = assert_refused(post_image(client, png(2048, 2048), vocabulary=many_parts(9)), 413, "parts")
        assert "128x128" in detail
        assert backbone.text_encoder_calls == calls, "the vocabulary was encoded for a refused request"
        assert client.app.state.service.gate.admitted == 0
        ok = post_image(client, png(2048, 2048), vocabulary=many_parts(8), label_format="none")
        assert ok.status_code == 200, ok.text


def test_memory_estimate_refuses_with_413(tiny_clipseg):
    with client_for(tiny_clipseg, max_request_bytes=64 * 2**20) as client:
        detail = assert_refused(post_image(client, png(4096, 4096), vocabulary=many_parts(256)), 413, "MiB")
        assert "64 MiB" in detail


def test_a_huge_canvas_runs_at_the_working_size(tiny_clipseg):
    # the request shape (a few kB of PNG declaring 4096x4096, many parts), kept fast for the test
    with client_for(tiny_clipseg, working_pixels=96 * 96) as client:
        response = post_image(client, png(4096, 4096), vocabulary=many_parts(24), label_format="none")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (4096, 4096)
    assert sum(row["pixels"] for row in body["parts"]) + round(body["no_part_share"] * 4096**2) == 4096**2


def test_label_map_is_scaled_back_and_counts_match_it(tiny_clipseg, chelsea):
    buffer = io.BytesIO()
    Image.fromarray(chelsea).save(buffer, format="PNG")
    with client_for(tiny_clipseg, working_pixels=50 * 33) as client:
        body = post_image(client, buffer.getvalue(), vocabulary=VOCAB, background_threshold="0").json()
    labels = np.array(Image.open(io.BytesIO(base64.b64decode(body["label_map"]["data"]))))
    assert labels.shape == chelsea.shape[:2]
    for row in body["parts"]:
        assert row["pixels"] == int((labels == row["id"]).sum())
    assert body["no_part_share"] == pytest.approx((labels == body["label_map"]["no_part"]).mean())


def test_working_size_keeps_aspect_and_bounds_pixels():
    for height, width, budget in [(4096, 4096, 2**20), (3000, 4000, 10**6), (1, 10**6, 1000), (7, 5, 100)]:
        h, w = working_size(height, width, budget)
        assert h * w <= max(budget, 1) or (h, w) == (height, width)
        assert h >= 1 and w >= 1
        if height * width > budget:
            assert abs(h / w - height / width) < 0.05 * height / width + 1 / w
    weights = pixel_weights((3, 5), (10, 11))
    assert weights.sum() == 110
    small = np.arange(15).reshape(3, 5)
    big = scale_labels(small, (10, 11), np.uint8)
    assert big.dtype == np.uint8 and big.shape == (10, 11)
    assert np.bincount(big.ravel(), minlength=15).tolist() == weights.ravel().tolist()


def test_estimate_grows_with_pixels_and_parts():
    base = estimate_bytes((1000, 1000), (500, 500), 10, 352 * 352, 1000)
    assert estimate_bytes((2000, 2000), (500, 500), 10, 352 * 352, 1000) > base
    assert estimate_bytes((1000, 1000), (800, 800), 10, 352 * 352, 1000) > base
    assert estimate_bytes((1000, 1000), (500, 500), 100, 352 * 352, 1000) > base


# ------------------------------------------------------------------ a time-out frees the worker
def test_timeout_stops_the_job_and_frees_the_worker(tiny_clipseg, monkeypatch):
    started = threading.Event()
    real_predict = tiny_clipseg.predict

    def predict(pixel_values, vocab):
        if "slow" in vocab.objects:
            started.set()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # Python-level work: the time-out can stop it
                sum(range(1000))
        return real_predict(pixel_values, vocab)

    monkeypatch.setattr(tiny_clipseg, "predict", predict)
    with client_for(tiny_clipseg, timeout_s=2.5, max_concurrency=1, max_queue=2) as client:
        begun = time.monotonic()
        assert_refused(post_image(client, png(32, 32), vocabulary="slow: head"), 503, "2.5 seconds")
        assert started.is_set()
        gate = client.app.state.service.gate
        deadline = time.monotonic() + 5
        while gate.admitted and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gate.admitted == 0, "the timed-out job still holds its place"
        ok = post_image(client, png(32, 32), vocabulary=VOCAB, label_format="none")
        assert ok.status_code == 200, ok.text
        assert time.monotonic() - begun < 10, "the next request waited for the abandoned one"


# ------------------------------------------------------------------ consistent validation
@pytest.mark.parametrize("value", BAD_THRESHOLDS, ids=repr)
def test_bad_thresholds_refused_like_the_cli(client, value):
    text = "nan" if value != value else repr(value)
    detail = assert_refused(post_image(client, png(16, 16), vocabulary=VOCAB, background_threshold=text), 422)
    assert "[0, 1]" in detail
    body = {"image": base64.b64encode(png(16, 16)).decode(), "vocabulary": VOCAB}
    raw = json.dumps(body)[:-1] + f', "background_threshold": {"NaN" if value != value else repr(value)}}}'
    raw = raw.replace("inf", "Infinity")
    response = client.post("/v1/segment", content=raw, headers={"content-type": "application/json"})
    assert "[0, 1]" in assert_refused(response, 422)


def test_duplicate_image_fields_are_refused(client):
    files = [("image", ("a.png", png(16, 16), "image/png")), ("image", ("b.png", png(20, 20), "image/png"))]
    assert_refused(
        client.post("/v1/segment", files=files, data={"vocabulary": VOCAB}), 422, "'image'", "once"
    )


def test_duplicate_option_fields_are_refused(client):
    files = {"image": ("a.png", png(16, 16), "image/png")}
    data = {"vocabulary": [VOCAB, "dog: tail"]}
    response = client.post("/v1/segment", files=files, data=data)
    assert_refused(response, 422, "'vocabulary'", "once")


def test_duplicate_json_keys_are_refused(client):
    image = base64.b64encode(png(16, 16)).decode()
    raw = f'{{"image": "{image}", "vocabulary": "{VOCAB}", "image": "{image}"}}'
    response = client.post("/v1/segment", content=raw, headers={"content-type": "application/json"})
    assert_refused(response, 422, "'image'", "once")


def test_deeply_nested_json_is_422(client):
    raw = '{"image": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = client.post("/v1/segment", content=raw, headers={"content-type": "application/json"})
    assert_refused(response, 422)


def test_multipart_parser_limits_are_413_not_400(client):
    files = {"image": ("a.png", png(16, 16), "image/png")}
    many = {f"f{i}": "x" for i in range(40)}
    assert_refused(client.post("/v1/segment", files=files, data=many), 413, "fields")
    big_field = {"vocabulary": "cat: " + "a" * (2 * 1024 * 1024)}
    assert_refused(client.post("/v1/segment", files=files, data=big_field), 413)
    three = [("image", ("a.png", png(8, 8), "image/png"))] * 3
    assert_refused(client.post("/v1/segment", files=three, data={"vocabulary": VOCAB}), 413)


def test_broken_multipart_is_422(client):
    body = b"--xyz\r\nContent-Disposition: form-data\r\n\r\nvalue\r\n--xyz--\r\n"
    response = client.post(
        "/v1/segment", content=body, headers={"content-type": "multipart/form-data; boundary=xyz"}
    )
    assert_refused(response, 422)


# ------------------------------------------------------------------ bit depth follows the vocabulary
@pytest.mark.parametrize(
    ("parts", "no_part", "mode"), [(254, 255, "L"), (255, 65535, "I;16"), (400, 65535, "I;16")]
)
def test_label_png_depth_follows_vocabulary_size(parts, no_part, mode):
    from ovparts.inference import SegmentationResult
    from ovparts.serve.service import result_payload
    from ovparts.vocabulary import Vocabulary

    part_map = np.array([[0, 1, -1], [2, -1, 0]])  # only small ids occur
    result = SegmentationResult(
        part_map,
        part_map,
        np.ones(part_map.shape, np.float32),
        None,
        Vocabulary.parse(many_parts(parts)),
        "pred_all",
    )
    for size in (None, (4, 6)):  # as segmented, and scaled back from a working size
        label_map = result_payload(result, "m", "png", size=size)["label_map"]
        assert label_map["no_part"] == no_part
        decoded = Image.open(io.BytesIO(base64.b64decode(label_map["data"])))
        assert decoded.mode == mode and np.array(decoded)[0, -1] == no_part


# ------------------------------------------------------------------ the text-embedding cache is bounded
def test_text_cache_is_lru_by_bytes():
    import torch

    cache = TextEmbeddingCache(max_bytes=3 * 400)
    for key in "abc":
        cache.put(key, torch.zeros(100))  # 400 bytes each
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("d", torch.zeros(100))
    assert "b" not in cache and {"a", "c", "d"} <= {k for k in "abcd" if k in cache}
    cache.put("huge", torch.zeros(1000))
    assert "huge" not in cache and cache.nbytes <= 1200
    cache.resize(400)
    assert len(cache) == 1 and "d" in cache


def test_model_cache_stays_within_its_budget(tiny_clipseg):
    import torch

    backbone = tiny_clipseg.backbone
    assert set_budget(tiny_clipseg, 16 * 1024) >= 1
    try:
        for index in range(12):
            with torch.no_grad():
                backbone.encode_text([f"thing {index} {j}" for j in range(8)])
            assert backbone._text_cache.nbytes <= 16 * 1024
        assert len(backbone._text_cache) >= 1
    finally:
        set_budget(tiny_clipseg, 256 * 2**20)


def test_text_cache_env_var(monkeypatch):
    from ovparts.errors import ConfigError

    monkeypatch.setenv("OVPARTS_TEXT_CACHE_MB", "1.5")
    assert TextEmbeddingCache().max_bytes == int(1.5 * 2**20)
    for bad in ("lots", "-1", "nan", "inf"):
        monkeypatch.setenv("OVPARTS_TEXT_CACHE_MB", bad)
        with pytest.raises(ConfigError, match="OVPARTS_TEXT_CACHE_MB"):
            TextEmbeddingCache()


def test_app_builds_with_bounds(tiny_clipseg):
    app = create_app([ServedModel("clipseg", tiny_clipseg)], limits=Limits(working_pixels=10), ui=False)
    assert app.state.service.limits.working_pixels == 10
    with pytest.raises(ValueError, match="max_request_bytes"):
        Limits(max_request_bytes=0)
