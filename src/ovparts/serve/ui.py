"""The web page: a Gradio Blocks app that calls the same service (models, cache, limits) as the API.

Gradio is imported here only, so the API and its tests do not pay for it unless the page is mounted.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home from a demo server

import gradio as gr  # noqa: E402
from PIL import Image  # noqa: E402

from ..errors import MaskError, OvpartsError  # noqa: E402
from ..visualize import palette  # noqa: E402
from ..vocabulary import BENCHMARKS  # noqa: E402
from . import service as svc  # noqa: E402
from .limits import InvalidRequest, parse_vocabulary  # noqa: E402

TYPED = "(the vocabulary typed above)"
PRED_ALL = "Pred-All"
ORACLE_OBJ = "Oracle-Obj"
KEEP_RESULT_DIRS = 32  # downloads of the last requests kept on disk; Gradio copies what it serves

# scikit-image's bundled photos, each with a vocabulary that fits it.
EXAMPLES = {
    "chelsea": "cat: head, ear, eye, nose, leg, paw, torso, tail",
    "astronaut": "person: head, hair, eye, hand, arm, torso",
    "coffee": "cup: handle, rim, body; saucer",
    "rocket": "rocket: body, nose, fin, engine",
}

INTRO = """# ovparts: open-vocabulary part segmentation
Upload a photo (or pick an example below), name the parts to find as text, and press **Segment**.
Write the vocabulary as `object: part, part; object: part`, e.g. `cat: head, ear, tail; dog: head, leg`.
Scripts can use the same models through the JSON API: see [/docs](/docs).
"""

ORACLE_HELP = (
    "Pred-All: the model also decides which object each pixel shows. Oracle-Obj: the object is given; "
    "on this page the whole image is treated as the object named below (the API also takes a per-pixel "
    "object mask)."
)

# System fonts only: the page must render on a closed network, with nothing fetched from font services.
THEME = gr.themes.Default(
    font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
)


def write_examples(folder: Path) -> list[list[str]]:
    """The example photos as files (Gradio examples are files), with their vocabularies."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, vocabulary in EXAMPLES.items():
        path = folder / f"{name}.jpg"
        if not path.exists():
            Image.fromarray(getattr(data, name)()).save(path, quality=92)
        rows.append([str(path), vocabulary])
    return rows


def hex_colour(rgb: np.ndarray) -> str:
    return "#" + "".join(f"{int(c):02x}" for c in rgb)


class Page:
    """Holds the service and a scratch folder; ``run`` is the Segment button's handler."""

    def __init__(self, service: svc.SegmentService, workdir: Path) -> None:
        self.service = service
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)

    def run(
        self,
        image: str | None,
        vocabulary_text: str,
        benchmark: str,
        protocol: str,
        object_name: str,
        threshold: float,
        model: str,
    ):
        """Segment and return (annotated image, table, downloads, status line); errors become a toast."""
        try:
            return self._run(image, vocabulary_text, benchmark, protocol, object_name, threshold, model)
        except OvpartsError as err:
            raise gr.Error(str(err), title="Cannot segment") from None

    def _run(self, image, vocabulary_text, benchmark, protocol, object_name, threshold, model):
        limits = self.service.limits
        if not image:
            raise InvalidRequest("No image yet; upload a photo or pick an example first.")
        vocab = parse_vocabulary(
            None if benchmark != TYPED else vocabulary_text, None if benchmark == TYPED else benchmark, limits
        )
        oracle = protocol == ORACLE_OBJ
        if oracle and not (object_name or "").strip():
            vocab_objects = ", ".join(vocab.objects[:8])
            raise MaskError(f"Oracle-Obj needs an object name from the vocabulary ({vocab_objects}).")
        # The page hands over the uploaded file untouched, so the API's checks (bytes, then pixels from the
        # header, before any decoding) guard the page too.
        request = svc.Request(
            Path(image).read_bytes(),
            vocab,
            model=model,
            object_name=object_name if oracle else None,
            background_threshold=threshold,
        )
        picture, result = self.service.segment(request)
        payload = svc.result_payload(result, self.service.served(model).name, "coco_rle")

        colours = palette(len(vocab))
        annotations = [(result.part_map == row["id"], row["name"]) for row in payload["parts"]]
        colour_map = {row["name"]: hex_colour(colours[row["id"]]) for row in payload["parts"]}
        table = [
            [row["name"], row["pixels"], round(100 * row["share"], 2), round(row["mean_score"], 3)]
            for row in payload["parts"]
        ]
        folder = self._result_dir()
        label_path = folder / "parts.png"
        json_path = folder / "segmentation.json"
        labels, _ = svc.label_array(result, (payload["height"], payload["width"]))
        Image.fromarray(labels).save(label_path)
        json_path.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        found = len(payload["parts"])
        status = (
            f"{found} of {len(vocab)} parts found by **{payload['model']}** "
            f"({'Oracle-Obj' if oracle else 'Pred-All'}); {100 * payload['no_part_share']:.1f}% of pixels are no part."
        )
        return (
            gr.AnnotatedImage(value=(np.asarray(picture), annotations), color_map=colour_map),
            table,
            [str(label_path), str(json_path)],
            status,
        )

    def _result_dir(self) -> Path:
        """A fresh folder for one request's downloads; the oldest are removed beyond a fixed count."""
        folder = Path(tempfile.mkdtemp(prefix="result-", dir=self.workdir))
        older = sorted(self.workdir.glob("result-*"), key=lambda p: p.stat().st_mtime)
        for stale in older[:-KEEP_RESULT_DIRS]:
            shutil.rmtree(stale, ignore_errors=True)
        return folder


def build_ui(service: svc.SegmentService, workdir: Path) -> gr.Blocks:
    """The Blocks page; mount it with ``gradio.mount_gradio_app`` (``create_app`` does)."""
    page = Page(service, workdir / "results")
    examples = write_examples(workdir / "examples")
    # delete_cache: Gradio keeps a copy of every served file; drop those older than an hour, hourly.
    with gr.Blocks(
        title="ovparts: part segmentation", analytics_enabled=False, delete_cache=(3600, 3600)
    ) as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1):
                # A file path, not pixels: Gradio then reads only the header, and our limits decode it.
                image = gr.Image(
                    label="Image", type="filepath", image_mode=None, sources=["upload", "clipboard"]
                )
                vocabulary = gr.Textbox(
                    label="Vocabulary", value=EXAMPLES["chelsea"], lines=2, elem_id="vocabulary"
                )
                benchmark = gr.Dropdown(
                    [TYPED, *BENCHMARKS], value=TYPED, label="Or a benchmark's whole vocabulary"
                )
                with gr.Row():
                    protocol = gr.Radio(
                        [PRED_ALL, ORACLE_OBJ], value=PRED_ALL, label="Protocol", info=ORACLE_HELP
                    )
                    object_name = gr.Textbox(label="Object (Oracle-Obj only)", placeholder="cat")
                with gr.Accordion("Options", open=False):
                    model = gr.Dropdown(
                        list(service.models),
                        value=service.default_model,
                        label="Model",
                        info="Models loaded by this server; start it with --model NAME (repeatable) for others.",
                    )
                    threshold = gr.Slider(
                        0.0,
                        1.0,
                        value=0.5,
                        step=0.01,
                        label="Background threshold",
                        info="Below this probability a pixel is no part (models without a background class).",
                        elem_id="threshold",
                    )
                run = gr.Button("Segment", variant="primary", elem_id="segment")
                gr.Examples(examples, inputs=[image, vocabulary], label="Examples (scikit-image photos)")
            with gr.Column(scale=1):
                status = gr.Markdown(elem_id="status")
                annotated = gr.AnnotatedImage(label="Parts (hover the legend)", elem_id="overlay")
                table = gr.Dataframe(
                    headers=["part", "pixels", "area %", "mean score"],
                    label="Part areas and scores",
                    interactive=False,
                    elem_id="parts-table",
                )
                downloads = gr.File(
                    label="Label map PNG and JSON", file_count="multiple", elem_id="downloads"
                )
        run.click(
            page.run,
            inputs=[image, vocabulary, benchmark, protocol, object_name, threshold, model],
            outputs=[annotated, table, downloads, status],
            api_name=False,
        )
    demo.queue(
        max_size=service.limits.max_queue or None, default_concurrency_limit=service.limits.max_concurrency
    )
    return demo
