"""What a public demo must refuse, and how: typed errors that carry their HTTP status, and the gate that
bounds how much work the server accepts at once.

Every refusal is one sentence in the JSON ``detail`` field, so a client (or a person reading curl output)
knows what to change. The statuses follow their HTTP meaning: 413 the request is too big, 422 it is
well-formed but not acceptable (bad vocabulary, unreadable image), 429 the server is full right now,
503 the work did not finish in time.
"""

from __future__ import annotations

import asyncio
import ctypes
import io
import struct
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass
from typing import TypeVar

from PIL import Image, UnidentifiedImageError

from ..errors import ImageError, OvpartsError, VocabularyError
from ..imageio import load_image
from ..vocabulary import Vocabulary

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """Bounds on one request and on the whole server; the defaults suit a small public CPU demo."""

    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 4096 * 4096
    max_parts: int = 256  # ADE20K-Part-234, the largest benchmark vocabulary, still fits
    max_name_length: int = 64
    timeout_s: float = 60.0
    max_concurrency: int = 1  # model runs at once; torch already uses every core for one
    max_queue: int = 8  # requests waiting for a model slot before new ones get 429
    # The work of one request: larger images are segmented at a copy resized to this many pixels (aspect
    # kept) and the label map is scaled back; the labels come from a network that sees 352-640 pixels.
    working_pixels: int = 1024 * 1024
    max_pixel_parts: int = 1024 * 1024 * 256  # working pixels x parts: the full-resolution scoring work
    max_request_bytes: int = 3 * 1024**3  # estimated peak memory of one request (ovparts.serve.budget)

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value <= 0 and not (name == "max_queue" and value == 0):
                raise ValueError(f"The limit {name} must be positive, got {value}.")

    @property
    def max_body_bytes(self) -> int:
        """Largest HTTP body accepted: the image as base64 (4/3 larger) plus room for the other fields."""
        return self.max_upload_bytes * 4 // 3 + 64 * 1024

    @property
    def max_vocabulary_chars(self) -> int:
        """Longest vocabulary text worth parsing; anything longer must break the part or name limits."""
        return self.max_parts * (2 * self.max_name_length + 4)


class ServeError(OvpartsError):
    """A request the server refuses; ``status`` is the HTTP status that says why."""

    status = 422


class InvalidRequest(ServeError):
    """Well-formed HTTP, but the content cannot be used (422)."""

    status = 422


class TooLarge(ServeError):
    """The upload or the image it holds is larger than the server accepts (413)."""

    status = 413


class Busy(ServeError):
    """Every model slot and queue place is taken (429); the client should retry shortly."""

    status = 429


class TimedOut(ServeError):
    """The request was admitted but did not finish within the time limit (503)."""

    status = 503


def status_for(error: OvpartsError) -> int:
    """HTTP status for any ovparts error: its own for serve errors, 422 for bad user input."""
    return error.status if isinstance(error, ServeError) else 422


def image_header_size(data: bytes, limits: Limits) -> tuple[int, int]:
    """(height, width) of an uploaded image read from its header alone, after the byte and pixel limits.

    Nothing is decoded, so a small file that declares a huge canvas (a decompression bomb) costs nothing,
    and the request's work can be planned before it takes a model slot.
    """
    if not data:
        raise InvalidRequest("The image is empty; upload a JPEG, PNG or other picture file.")
    if len(data) > limits.max_upload_bytes:
        raise TooLarge(
            f"The image is {len(data)} bytes, more than the limit of {limits.max_upload_bytes} bytes."
        )
    with _decoder_errors(limits), Image.open(io.BytesIO(data)) as probe:
        width, height = probe.size
        size = exif_size(probe, width, height)
    if width * height > limits.max_pixels:
        raise TooLarge(
            f"The image is {width}x{height} pixels, more than the limit of {limits.max_pixels} pixels."
        )
    return size


def exif_size(probe: Image.Image, width: int, height: int) -> tuple[int, int]:
    """(height, width) after the EXIF rotation ``load_image`` applies (orientations 5-8 swap the sides)."""
    try:
        orientation = probe.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block is ignored by the decoder too
        orientation = 1
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


class _decoder_errors:  # noqa: N801 - used as a context manager, reads like one
    """Turns Pillow's failures into the server's one-sentence refusals."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, _traceback) -> bool:
        if error is None or isinstance(error, OvpartsError) or not isinstance(error, Exception):
            return False
        if isinstance(error, Image.DecompressionBombError):
            raise TooLarge(
                f"The image declares more pixels than the limit of {self.limits.max_pixels}."
            ) from error
        if isinstance(error, UnidentifiedImageError):
            raise ImageError("The upload is not an image format that Pillow can read.") from error
        if isinstance(error, (OSError, ValueError, SyntaxError, EOFError, struct.error)):
            raise ImageError(f"The image is corrupt or truncated ({error}).") from error
        return False


def check_image_bytes(data: bytes, limits: Limits) -> Image.Image:
    """Decode an uploaded image after checking its size in bytes and, from the header alone, in pixels."""
    image_header_size(data, limits)
    with _decoder_errors(limits), Image.open(io.BytesIO(data)) as probe:
        probe.load()
        return load_image(probe)


def check_vocabulary(vocab: Vocabulary, limits: Limits) -> Vocabulary:
    """Refuse vocabularies whose size would make one request cost more than the demo allows."""
    if len(vocab) > limits.max_parts:
        raise VocabularyError(
            f"The vocabulary has {len(vocab)} parts, more than the limit of {limits.max_parts}."
        )
    for name in (*vocab.objects, *(part.part for part in vocab.parts)):
        if len(name) > limits.max_name_length:
            raise VocabularyError(
                f"The name {shown(name)!r} is {len(name)} characters, more than the limit of "
                f"{limits.max_name_length}."
            )
    return vocab


def shown(name: str, width: int = 40) -> str:
    """A name short enough to quote in an error sentence."""
    return name if len(name) <= width else name[: width - 1] + "\u2026"


def parse_vocabulary(text: str | None, benchmark: str | None, limits: Limits) -> Vocabulary:
    """A vocabulary from text or a benchmark name (exactly one), within the limits."""
    if bool(text and text.strip()) == bool(benchmark):
        raise VocabularyError("Give exactly one of a vocabulary like 'cat: head, ear, tail' or a benchmark.")
    if benchmark:
        return check_vocabulary(Vocabulary.from_benchmark(benchmark), limits)
    assert text is not None
    if len(text) > limits.max_vocabulary_chars:
        raise VocabularyError(
            f"The vocabulary text is {len(text)} characters, more than the limit of "
            f"{limits.max_vocabulary_chars}."
        )
    return check_vocabulary(Vocabulary.parse(text), limits)


class Cancelled(BaseException):  # noqa: N818 - not an error: the job's own caller gave up on it
    """Raised inside a model thread whose request timed out, so the thread drops the job and serves the next.

    A ``BaseException``, so no ``except Exception`` on the way (a decoder's error handling, say) can swallow it.
    """


def _raise_in_thread(thread_id: int, error: type[BaseException] | None) -> bool:
    """Schedule ``error`` in another Python thread (``None`` clears one not yet delivered).

    CPython delivers it at the thread's next bytecode boundary: a torch operation already running in C++
    finishes first, so a job stops within one operation (the post-processing works in chunks of parts).
    """
    target = ctypes.py_object(error) if error is not None else None
    return ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), target) == 1


class _Job:
    """Which thread runs a job, so a time-out can stop that thread and nothing else."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.thread_id: int | None = None
        self.given_up = False  # the caller stopped waiting: do not start, or stop as soon as possible
        self.interrupted = False

    def run(self, work: Callable[[], T]) -> T:
        with self.lock:
            if self.given_up:
                raise Cancelled
            self.thread_id = threading.get_ident()
        try:
            return work()
        finally:
            with self.lock:
                self.thread_id = None
                if self.interrupted:  # drop a Cancelled scheduled but not delivered before the job ended
                    _raise_in_thread(threading.get_ident(), None)

    def give_up(self) -> None:
        with self.lock:
            self.given_up = True
            if self.thread_id is not None and not self.interrupted:
                self.interrupted = _raise_in_thread(self.thread_id, Cancelled)


class Gate:
    """Admission control shared by the web page and the API: a fixed pool of model threads and a bounded
    number of admitted jobs.

    A job holds its place from admission until its work really ends, not until its caller stops waiting;
    when the caller's time-out passes, the job is stopped inside its model thread (see ``Cancelled``), so a
    time-out frees the worker for the next request instead of leaving it busy with an abandoned one.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.capacity = limits.max_concurrency + limits.max_queue
        self._pool = ThreadPoolExecutor(
            max_workers=limits.max_concurrency, thread_name_prefix="ovparts-model"
        )
        self._lock = threading.Lock()
        self._admitted = 0

    @property
    def admitted(self) -> int:
        """Jobs queued or running now."""
        with self._lock:
            return self._admitted

    def submit(self, work: Callable[[], T]) -> Future[T]:
        """Queue ``work`` on a model thread, or raise ``Busy`` when the server is full."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise Busy(f"The server is busy with {self._admitted} requests; retry in a few seconds.")
            self._admitted += 1
        job = _Job()
        try:
            future = self._pool.submit(job.run, work)
        except BaseException:
            self._release(None)
            raise
        future.ovparts_job = job  # type: ignore[attr-defined]  # what give_up stops
        future.add_done_callback(self._release)
        return future

    def _release(self, _future: Future | None) -> None:
        with self._lock:
            self._admitted -= 1

    def give_up(self, future: Future) -> None:
        """The caller stopped waiting: drop the job if queued, stop it in its thread if running."""
        future.cancel()
        job = getattr(future, "ovparts_job", None)
        if job is not None:
            job.give_up()

    def wait(self, future: Future[T]) -> T:
        """Wait for an admitted job up to the time limit (for synchronous callers such as Gradio)."""
        try:
            return future.result(timeout=self.limits.timeout_s)
        except FutureTimeout:
            self.give_up(future)
            raise TimedOut(self.timeout_message()) from None

    async def wait_async(self, future: Future[T]) -> T:
        """Await an admitted job up to the time limit; on time-out the job is dropped or stopped."""
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout=self.limits.timeout_s)
        except asyncio.TimeoutError:  # TimeoutError's alias from 3.11 on, a class of its own on 3.10
            self.give_up(future)
            raise TimedOut(self.timeout_message()) from None
        except asyncio.CancelledError:  # the client went away: its job need not finish either
            self.give_up(future)
            raise

    def timeout_message(self) -> str:
        return f"The request did not finish within {self.limits.timeout_s:g} seconds; try a smaller image or vocabulary."

    def shutdown(self) -> None:
        """Stop accepting work; running jobs finish, queued ones are dropped."""
        self._pool.shutdown(wait=False, cancel_futures=True)
