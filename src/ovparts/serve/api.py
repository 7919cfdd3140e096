"""The JSON HTTP API: ``POST /v1/segment``, ``GET /v1/models``, ``GET /healthz``.

``/v1/segment`` takes the image either as a multipart upload (what ``curl -F image=@photo.jpg`` sends) or
as base64 inside a JSON body (what a browser or a script without multipart support sends); both carry the
same option fields. All CPU work for a request (decoding, the model, encoding the answer) runs on the
gate's model threads, so the limits bound the whole cost of a request, not only the network part.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Literal

from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.requests import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import MaskError, OvpartsError
from ..vocabulary import BENCHMARKS
from . import service as svc
from .limits import (
    InvalidRequest,
    Limits,
    TooLarge,
    parse_vocabulary,
    shown,
    status_for,
)

Benchmark = Literal[BENCHMARKS]  # type: ignore[valid-type]


class SegmentOptions(BaseModel):
    """Fields shared by the JSON body and the multipart form."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    vocabulary: str | None = Field(
        None,
        description="Parts to find, e.g. 'cat: head, ear, leg, tail; dog: head'.",
        examples=["cat: head, ear, tail"],
    )
    benchmark: Benchmark | None = Field(None, description="Use a benchmark's whole vocabulary instead.")
    protocol: Literal["pred_all", "oracle_obj"] | None = Field(
        None,
        description="pred_all: the model also decides which object each pixel shows; oracle_obj: the object "
        "is given (by `object` for the whole image or by `object_mask`). Default: oracle_obj when an object "
        "or mask is given, else pred_all.",
    )
    object: str | None = Field(None, description="Oracle-Obj: the whole image is this vocabulary object.")
    label_format: Literal["png", "coco_rle", "none"] = Field(
        "png",
        description="png: part ids as a base64 PNG (255 = no part, or 65535 with 16 bits for vocabularies "
        "of 255 parts or more; the answer's label_map.no_part says which); coco_rle: one COCO RLE per part.",
    )
    model: str | None = Field(None, description="A model loaded on this server; default: the first one.")
    background_threshold: float | None = Field(
        None,
        description="Probability in [0, 1] below which a pixel is no part (models without a background "
        "class); checked by the library, so the CLI and the server accept the same values.",
    )


class SegmentJSON(SegmentOptions):
    """JSON body: the options plus the image (and optional object mask) as base64."""

    image: str = Field(description="The image file's bytes as base64 (a data: URL prefix is accepted).")
    object_mask: str | None = Field(
        None,
        description="Oracle-Obj: a single-channel PNG of object ids (255 = none) as base64, same size as the image.",
    )


class PartOut(BaseModel):
    id: int = Field(description="Part id: its index in the vocabulary and its value in the label map.")
    name: str
    object: str
    part: str
    pixels: int
    share: float = Field(description="Fraction of the image's pixels labelled with this part.")
    mean_score: float = Field(description="Mean probability of this part over its pixels.")


class RLESegment(BaseModel):
    id: int
    name: str
    rle: dict = Field(
        description="COCO RLE: {'size': [H, W], 'counts': compact string}; pycocotools decodes it."
    )


class LabelMap(BaseModel):
    format: Literal["png", "coco_rle"]
    no_part: int | None = Field(None, description="png: the value of pixels with no part.")
    data: str | None = Field(None, description="png: the label map PNG as base64.")
    size: list[int] | None = Field(None, description="coco_rle: [height, width].")
    segments: list[RLESegment] | None = None


class SegmentResponse(BaseModel):
    model: str
    protocol: str
    width: int
    height: int
    vocabulary: str = Field(description="The vocabulary as text; part ids follow its order.")
    no_part_share: float
    parts: list[PartOut] = Field(description="Parts present in the image, by id.")
    label_map: LabelMap | None = None
    elapsed_ms: float | None = None


class ErrorResponse(BaseModel):
    detail: str = Field(description="One sentence saying what to change.")


ERROR_RESPONSES = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        413: "The upload or the image in it is too large.",
        422: "The image, vocabulary or options cannot be used.",
        429: "The server is full; retry after the Retry-After seconds.",
        503: "The request did not finish within the time limit.",
    }.items()
}

MULTIPART_SCHEMA = {
    "type": "object",
    "required": ["image"],
    "properties": {
        "image": {"type": "string", "format": "binary"},
        "object_mask": {"type": "string", "format": "binary"},
        **{
            name: {"type": "string", "description": field.description or ""}
            for name, field in SegmentOptions.model_fields.items()
        },
    },
}


def one_sentence(error: ValidationError | RequestValidationError) -> str:
    """Pydantic's first complaint as one sentence naming the field."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    message = str(first.get("msg", "is invalid")).rstrip(".")
    return f"The field {where!r} is invalid: {message}."


def decode_base64(text: str, what: str) -> bytes:
    """Bytes from base64, with or without a ``data:...;base64,`` prefix."""
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise InvalidRequest(f"The {what} is not valid base64.") from err


async def read_segment_request(
    request: Request, limits: Limits
) -> tuple[SegmentOptions, bytes, bytes | None]:
    """Options, image bytes and optional mask bytes from a JSON or multipart request."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await read_form(request)
        try:
            repeated = sorted({key for key, _ in form.multi_items() if len(form.getlist(key)) > 1})
            if repeated:
                raise InvalidRequest(f"The form field {repeated[0]!r} is given more than once; send it once.")
            fields = {k: v for k, v in form.items() if not isinstance(v, UploadFile)}
            files = {k: v for k, v in form.items() if isinstance(v, UploadFile)}
            unknown = set(files) - {"image", "object_mask"}
            if unknown:
                raise InvalidRequest(
                    f"Unexpected file field {sorted(unknown)[0]!r}; send 'image' and optionally 'object_mask'."
                )
            if "image" not in files:
                raise InvalidRequest("The form has no 'image' file; send it as -F image=@photo.jpg.")
            options = SegmentOptions.model_validate({k: v for k, v in fields.items() if v != ""})
            image = await files["image"].read(limits.max_upload_bytes + 1)
            mask = (
                await files["object_mask"].read(limits.max_upload_bytes + 1)
                if "object_mask" in files
                else None
            )
        finally:
            await form.close()
        return options, image, mask
    if content_type.startswith("application/json"):
        payload = parse_json_body(await request.body())
        image = decode_base64(payload.image, "image")
        mask = decode_base64(payload.object_mask, "object mask") if payload.object_mask else None
        options = SegmentOptions.model_validate(payload.model_dump(exclude={"image", "object_mask"}))
        return options, image, mask
    raise InvalidRequest("Send the request as multipart/form-data or application/json.")


# Starlette's multipart parser: at most this many parts, and this many bytes in a part that is not a file.
MAX_FORM_FILES = 2
MAX_FORM_FIELDS = 16
MAX_FORM_FIELD_BYTES = 1024 * 1024


async def read_form(request: Request) -> FormData:
    """The multipart form within the parser's limits; a form past them is refused like every other limit
    (413 for too many or too large parts, 422 for a body that is not a multipart form), never a bare 400."""
    try:
        return await request.form(
            max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_FIELD_BYTES
        )
    except (StarletteHTTPException, MultiPartException) as err:
        text = str(getattr(err, "detail", None) or getattr(err, "message", "")).lower()
        if "too many" in text or "exceeded" in text:
            raise TooLarge(
                f"The form has more parts or larger fields than the server accepts (at most "
                f"{MAX_FORM_FILES} files and {MAX_FORM_FIELDS} fields of up to {MAX_FORM_FIELD_BYTES} bytes)."
            ) from err
        raise InvalidRequest(
            "The body is not a readable multipart form; send the image with -F image=@photo.jpg."
        ) from err


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object's keys, refused when one is repeated (JSON parsers would silently keep the last)."""
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise InvalidRequest(f"The JSON field {shown(key)!r} is given more than once; send it once.")
        seen[key] = value
    return seen


def parse_json_body(body: bytes) -> SegmentJSON:
    """The JSON request, with repeated keys and unparseable or absurdly nested bodies refused (422)."""
    try:
        data = json.loads(body, object_pairs_hook=_unique_keys)
    except RecursionError as err:
        raise InvalidRequest("The JSON body is nested too deeply; send one flat object.") from err
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidRequest("The body is not valid JSON; send one object with an 'image' field.") from err
    if not isinstance(data, dict):
        raise InvalidRequest("The JSON body must be one object with an 'image' field.")
    return SegmentJSON.model_validate(data)


def build_router(service: svc.SegmentService) -> APIRouter:
    """Routes bound to one service (models + limits)."""
    router = APIRouter()
    limits = service.limits

    @router.post(
        "/v1/segment",
        response_model=SegmentResponse,
        responses=ERROR_RESPONSES,
        summary="Segment an image into the parts of a vocabulary",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {"schema": MULTIPART_SCHEMA},
                    "application/json": {"schema": {"$ref": "#/components/schemas/SegmentJSON"}},
                },
            }
        },
    )
    async def segment(request: Request) -> JSONResponse:
        started = time.perf_counter()
        options, image_bytes, mask_bytes = await read_segment_request(request, limits)
        vocabulary = parse_vocabulary(options.vocabulary, options.benchmark, limits)
        oracle = options.object is not None or mask_bytes is not None
        protocol = options.protocol or ("oracle_obj" if oracle else "pred_all")
        if protocol == "oracle_obj" and not oracle:
            raise MaskError(
                "Oracle-Obj needs the object: give 'object' (whole image) or an 'object_mask' PNG."
            )
        if protocol == "pred_all" and oracle:
            raise MaskError("Pred-All takes no object or object mask; drop them or ask for oracle_obj.")
        request_ = svc.Request(
            image_bytes,
            vocabulary,
            model=options.model,
            object_name=options.object,
            object_mask=mask_bytes,
            background_threshold=options.background_threshold,
        )
        name = service.served(options.model).name

        def answer(_image, result) -> dict:
            elapsed = (time.perf_counter() - started) * 1000
            return svc.result_payload(result, name, options.label_format, elapsed)

        payload = await service.segment_async(request_, answer)
        return JSONResponse(payload)

    @router.get("/v1/models", summary="Models loaded here and all models ovparts knows")
    def models() -> dict:
        from ..models.registry import available_models, model_spec

        available = []
        for name in available_models():
            spec = model_spec(name)
            available.append(
                {
                    "name": name,
                    "description": spec.description,
                    "configs": list(spec.configs),
                    "default_weights": spec.default_weights,
                    "loaded": name in service.models,
                }
            )
        loaded = [
            {"name": s.name, "weights": s.weights, "default": s.name == service.default_model, **s.details}
            for s in service.models.values()
        ]
        return {"loaded": loaded, "available": available}

    @router.get("/healthz", summary="Liveness and load")
    def healthz() -> dict:
        return {
            "status": "ok",
            "models": list(service.models),
            "in_flight": service.gate.admitted,
            "capacity": service.gate.capacity,
        }

    return router


class BodyLimit:
    """Refuses API bodies larger than ``max_bytes`` with 413 before they are read into memory.

    A declared Content-Length is checked up front; a chunked body is counted as it arrives and cut off
    at the limit. Paths outside ``prefix`` (the web page's own uploads) pass untouched.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, prefix: str = "/v1/") -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"The request body is larger than the limit of {self.max_bytes} bytes."},
            status_code=413,
        )
        await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


class _BodyTooLarge(Exception):
    """Raised inside the app's receive when the body passes the limit."""


def install_error_handlers(app: FastAPI) -> None:
    """Every refusal becomes ``{"detail": one sentence}`` with the status that says why."""

    @app.exception_handler(OvpartsError)
    async def ovparts_error(_request: Request, error: OvpartsError) -> JSONResponse:
        status = status_for(error)
        headers = {"Retry-After": "2"} if status == 429 else None
        return JSONResponse({"detail": str(error)}, status_code=status, headers=headers)

    @app.exception_handler(ValidationError)
    async def pydantic_error(_request: Request, error: ValidationError) -> JSONResponse:
        return JSONResponse({"detail": one_sentence(error)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def request_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": one_sentence(error)}, status_code=422)
