"""The JSON API: answers, label-map formats, the embedding cache, and every limit with its status."""

from __future__ import annotations

import base64
import io
import threading
from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image

from ovparts.data import coco_rle
from ovparts.serve import Limits, ServedModel, create_app

from .conftest import encode

VOCAB = "cat: head, ear, eye, nose, leg, tail"


@contextmanager
def client_for(model, **limits):
    """A TestClient on an API-only app with the given limits (the rest default)."""
    from fastapi.testclient import TestClient

    app = create_app([ServedModel("clipseg", model)], limits=Limits(**limits), ui=False)
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def client(tiny_clipseg):
    with client_for(tiny_clipseg) as c:
        yield c


def post_image(client, data: bytes, **fields):
    return client.post("/v1/segment", files={"image": ("photo.jpg", data, "image/jpeg")}, data=fields)


def assert_refused(response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail.endswith("."), detail
    assert detail.count(". ") == 0, f"not one sentence: {detail}"
    for word in words:
        assert word in detail, detail
    return detail


# ------------------------------------------------------------------ answers


def test_multipart_png_label_map_matches_parts(client, chelsea, chelsea_jpeg):
    response = post_image(client, chelsea_jpeg, vocabulary=VOCAB, background_threshold="0")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (chelsea.shape[1], chelsea.shape[0])
    assert body["protocol"] == "pred_all" and body["model"] == "clipseg"
    label = np.array(Image.open(io.BytesIO(base64.b64decode(body["label_map"]["data"]))))
    assert label.shape == chelsea.shape[:2]
    no_part = body["label_map"]["no_part"]
    ids, counts = np.unique(label[label != no_part], return_counts=True)
    assert [p["id"] for p in body["parts"]] == ids.tolist()
    assert [p["pixels"] for p in body["parts"]] == counts.tolist()
    names = [f"cat's {p.strip()}" for p in VOCAB.split(":")[1].split(",")]
    for part in body["parts"]:
        assert part["name"] == names[part["id"]]
        assert part["share"] == pytest.approx(part["pixels"] / label.size)
        assert 0.0 <= part["mean_score"] <= 1.0
    assert body["no_part_share"] == pytest.approx(float((label == no_part).mean()))


def test_json_base64_with_coco_rle(client, chelsea, chelsea_jpeg):
    payload = {
        "image": "data:image/jpeg;base64," + base64.b64encode(chelsea_jpeg).decode(),
        "vocabulary": VOCAB,
        "label_format": "coco_rle",
        "background_threshold": 0.0,
    }
    body = client.post("/v1/segment", json=payload).json()
    reference = post_image(client, chelsea_jpeg, vocabulary=VOCAB, background_threshold="0").json()
    label = np.array(Image.open(io.BytesIO(base64.b64decode(reference["label_map"]["data"]))))
    assert body["label_map"]["size"] == list(chelsea.shape[:2])
    segments = body["label_map"]["segments"]
    assert [s["id"] for s in segments] == [p["id"] for p in reference["parts"]]
    for segment in segments:
        np.testing.assert_array_equal(coco_rle.decode(segment["rle"]), label == segment["id"])


@pytest.mark.slow
def test_benchmark_vocabulary_and_no_label_map(client, chelsea_jpeg):
    from ovparts import Vocabulary

    body = post_image(client, chelsea_jpeg, benchmark="partimagenet", label_format="none").json()
    assert "label_map" not in body
    vocab = Vocabulary.from_benchmark("partimagenet")
    assert body["vocabulary"] == vocab.format()
    assert all(vocab.names[p["id"]] == p["name"] for p in body["parts"])


def test_oracle_obj_by_name_and_by_mask(client, chelsea, chelsea_jpeg):
    vocab = "cat: head, ear; dog: head, tail"
    whole = post_image(client, chelsea_jpeg, vocabulary=vocab, object="dog", background_threshold="0").json()
    assert whole["protocol"] == "oracle_obj"
    assert {p["object"] for p in whole["parts"]} <= {"dog"} and whole["no_part_share"] == 0.0
    mask = np.full(chelsea.shape[:2], 255, np.uint8)
    mask[:, : chelsea.shape[1] // 2] = 0  # left half cat, right half nothing
    files = {
        "image": ("c.jpg", chelsea_jpeg, "image/jpeg"),
        "object_mask": ("m.png", encode(mask, "PNG"), "image/png"),
    }
    body = client.post("/v1/segment", files=files, data={"vocabulary": vocab}).json()
    assert body["protocol"] == "oracle_obj"
    assert {p["object"] for p in body["parts"]} <= {"cat"}
    assert body["no_part_share"] >= 0.5 - 1 / chelsea.shape[1]
    as_json = {
        "image": base64.b64encode(chelsea_jpeg).decode(),
        "object_mask": base64.b64encode(encode(mask, "PNG")).decode(),
        "vocabulary": vocab,
        "label_format": "none",
    }
    assert client.post("/v1/segment", json=as_json).json()["parts"] == body["parts"]
    both = {**as_json, "object": "cat"}
    assert_refused(client.post("/v1/segment", json=both), 422, "not both")
    pred_all = {**as_json, "protocol": "pred_all"}
    assert_refused(client.post("/v1/segment", json=pred_all), 422, "Pred-All takes no object")


def test_models_healthz_openapi_and_page(client, tiny_clipseg, chelsea_jpeg):
    import ovparts

    models = client.get("/v1/models").json()
    assert [m["name"] for m in models["available"]] == ovparts.available_models()
    assert models["loaded"][0]["name"] == "clipseg" and models["loaded"][0]["default"]
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["in_flight"] == 0
    schema = client.get("/openapi.json").json()
    assert {"/v1/segment", "/v1/models", "/healthz"} <= set(schema["paths"])
    content = schema["paths"]["/v1/segment"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(content)
    assert {"413", "422", "429", "503"} <= set(schema["paths"]["/v1/segment"]["post"]["responses"])


def test_text_embeddings_encoded_once_per_vocabulary(client, tiny_clipseg, chelsea_jpeg):
    backbone = tiny_clipseg.backbone
    vocab = "bird: beak, wing, foot"  # not used by any other test, so the first request must encode it
    before = backbone.text_encoder_calls
    assert post_image(client, chelsea_jpeg, vocabulary=vocab).status_code == 200
    after_first = backbone.text_encoder_calls
    assert after_first > before
    for _ in range(2):
        assert post_image(client, chelsea_jpeg, vocabulary=vocab, label_format="none").status_code == 200
    assert backbone.text_encoder_calls == after_first


# ------------------------------------------------------------------ bad input: 422


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"vocabulary": ""}, ["exactly one"]),
        ({"vocabulary": "cat: head", "benchmark": "pascal_part_116"}, ["exactly one"]),
        ({"vocabulary": "cat: "}, ["No parts"]),
        ({"vocabulary": "cat: head", "benchmark": "coco"}, ["benchmark"]),
        ({"vocabulary": "cat: head", "object": "dog"}, ["'dog'", "not in the vocabulary"]),
        ({"vocabulary": "cat: head", "protocol": "oracle_obj"}, ["Oracle-Obj needs"]),
        ({"vocabulary": "cat: head", "model": "catseg"}, ["not loaded"]),
        ({"vocabulary": "cat: head", "label_format": "svg"}, ["label_format"]),
        ({"vocabulary": "cat: head", "background_threshold": "2"}, ["background threshold", "[0, 1]"]),
        ({"vocabulary": "cat: head", "colour": "red"}, ["colour"]),
    ],
)
def test_unusable_options_are_422(client, chelsea_jpeg, fields, words):
    assert_refused(post_image(client, chelsea_jpeg, **fields), 422, *words)


def test_unreadable_images_are_422(client, chelsea_jpeg):
    assert_refused(post_image(client, b"not an image at all", vocabulary="cat: head"), 422, "not an image")
    assert_refused(
        post_image(client, chelsea_jpeg[: len(chelsea_jpeg) // 2], vocabulary="cat: head"), 422, "truncated"
    )
    assert_refused(post_image(client, b"", vocabulary="cat: head"), 422, "empty")
    bad64 = client.post("/v1/segment", json={"image": "%%%not base64", "vocabulary": "cat: head"})
    assert_refused(bad64, 422, "base64")
    missing = client.post("/v1/segment", json={"vocabulary": "cat: head"})
    assert_refused(missing, 422, "image")
    no_file = client.post("/v1/segment", data={"vocabulary": "cat: head"}, files={"other": ("x", b"1")})
    assert_refused(no_file, 422)
    plain = client.post("/v1/segment", content=b"hello", headers={"content-type": "text/plain"})
    assert_refused(plain, 422, "multipart")


def test_object_mask_of_wrong_size_is_422(client, chelsea, chelsea_jpeg):
    small = encode(np.zeros((10, 10), np.uint8), "PNG")
    files = {"image": ("c.jpg", chelsea_jpeg, "image/jpeg"), "object_mask": ("m.png", small, "image/png")}
    assert_refused(client.post("/v1/segment", files=files, data={"vocabulary": "cat: head"}), 422, "10x10")


# ------------------------------------------------------------------ limits


def test_vocabulary_limits_are_422(tiny_clipseg, chelsea_jpeg):
    with client_for(tiny_clipseg, max_parts=5, max_name_length=12) as client:
        many = "cat: " + ", ".join(f"p{i}" for i in range(6))
        assert_refused(post_image(client, chelsea_jpeg, vocabulary=many), 422, "6 parts", "limit of 5")
        long_name = "cat: " + "x" * 13
        assert_refused(post_image(client, chelsea_jpeg, vocabulary=long_name), 422, "13 characters", "12")
        long_object = "y" * 20 + ": head"
        assert_refused(post_image(client, chelsea_jpeg, vocabulary=long_object), 422, "20 characters")
        huge_text = "cat: head" + ";" * 5000
        assert_refused(post_image(client, chelsea_jpeg, vocabulary=huge_text), 422, "characters")
        big_benchmark = post_image(client, chelsea_jpeg, benchmark="pascal_part_116")
        assert_refused(big_benchmark, 422, "116 parts")
        assert post_image(client, chelsea_jpeg, vocabulary="cat: head, tail").status_code == 200


def test_upload_bytes_limit_is_413(tiny_clipseg, chelsea, chelsea_jpeg):
    limit = len(chelsea_jpeg) - 1
    with client_for(tiny_clipseg, max_upload_bytes=limit) as client:
        assert_refused(post_image(client, chelsea_jpeg, vocabulary="cat: head"), 413, "limit")
        as_json = {"image": base64.b64encode(chelsea_jpeg).decode(), "vocabulary": "cat: head"}
        assert_refused(client.post("/v1/segment", json=as_json), 413, "limit")
        # A body far past the limit is cut off by its declared length, before it is parsed.
        huge = b"x" * (limit * 2 + 128 * 1024)
        assert_refused(post_image(client, huge, vocabulary="cat: head"), 413, "request body")


def test_chunked_body_over_the_limit_is_413(tiny_clipseg):
    with client_for(tiny_clipseg, max_upload_bytes=1000) as client:

        def chunks():
            for _ in range(100):
                yield b"y" * 1000

        response = client.post("/v1/segment", content=chunks(), headers={"content-type": "application/json"})
        assert_refused(response, 413, "request body")


def test_decompression_bomb_is_413_before_decoding(tiny_clipseg):
    bomb = io.BytesIO()
    Image.new("1", (4000, 4000)).save(bomb, format="PNG")  # a few KB on disk, 16 megapixels declared
    assert len(bomb.getvalue()) < 20_000
    with client_for(tiny_clipseg, max_pixels=1_000_000) as client:
        detail = assert_refused(post_image(client, bomb.getvalue(), vocabulary="cat: head"), 413, "4000x4000")
        assert "1000000" in detail


@contextmanager
def occupied(gate, slots: int):
    """Hold ``slots`` places of the gate with jobs that wait until released."""
    release = threading.Event()
    futures = [gate.submit(lambda: release.wait(10)) for _ in range(slots)]
    try:
        yield
    finally:
        release.set()
        for future in futures:
            future.result(timeout=10)


def test_full_queue_is_429_with_retry_after(tiny_clipseg, chelsea_jpeg):
    with client_for(tiny_clipseg, max_concurrency=1, max_queue=1) as client:
        gate = client.app.state.service.gate
        with occupied(gate, 2):
            response = post_image(client, chelsea_jpeg, vocabulary="cat: head")
            assert_refused(response, 429, "busy", "retry")
            assert int(response.headers["retry-after"]) > 0
        assert post_image(client, chelsea_jpeg, vocabulary="cat: head").status_code == 200


def test_timeout_is_503_and_frees_its_place(tiny_clipseg, chelsea_jpeg):
    with client_for(tiny_clipseg, max_concurrency=1, max_queue=2, timeout_s=0.3) as client:
        gate = client.app.state.service.gate
        with occupied(gate, 1):
            response = post_image(client, chelsea_jpeg, vocabulary="cat: head")
            assert_refused(response, 503, "0.3 seconds")
            assert gate.admitted == 1, "the timed-out request still holds its queue place"
        assert gate.admitted == 0
        assert post_image(client, chelsea_jpeg, vocabulary="cat: head").status_code == 200


def test_slow_model_run_times_out_with_503(tiny_clipseg, chelsea_jpeg, monkeypatch):
    release = threading.Event()
    original = tiny_clipseg.predict

    def slow_predict(*args, **kwargs):
        release.wait(5)
        return original(*args, **kwargs)

    monkeypatch.setattr(tiny_clipseg, "predict", slow_predict)
    with client_for(tiny_clipseg, timeout_s=0.3) as client:
        assert_refused(post_image(client, chelsea_jpeg, vocabulary="cat: head"), 503, "did not finish")
        gate = client.app.state.service.gate
        assert gate.admitted == 1, "a running model call keeps its slot until it really ends"
        release.set()


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="max_pixels"):
        Limits(max_pixels=0)
