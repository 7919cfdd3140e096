"""Published weights by name over a real HTTP transport: fetch, verify, convert, cache, load offline."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from click.testing import CliRunner

import ovparts
from ovparts.errors import CheckpointError, WeightsNotFoundError
from ovparts.weights import download, store
from ovparts.weights.catalog import PublishedWeights, Source

PATH = "/files/catseg_test.pth"


def entry_for(server, tokenizer_folder, name="test-b", path=PATH, sha256=None, kind="url"):
    location = server.url + path if kind == "url" else "drive-file-id"
    return PublishedWeights(
        "catseg",
        name,
        Source(kind, location, path.rsplit("/", 1)[1]),
        "A synthetic official CAT-Seg file served locally.",
        trained_on="nothing",
        class_order="none",
        licence="MIT",
        tokenizer=tokenizer_folder,
        sha256=sha256,
    )


@pytest.fixture
def online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("OVPARTS_OFFLINE", raising=False)


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "locks" not in p.parts)


def test_first_pull_converts_and_later_loads_need_no_network(
    server, official_pth, tokenizer_folder, register, online, monkeypatch, _ovparts_home
):
    server.served.files[PATH] = official_pth
    entry = register(entry_for(server, tokenizer_folder))
    model = ovparts.load_model("catseg", weights="test-b")
    folder = store.converted_dir(entry)
    assert (folder / "model.safetensors").is_file() and (folder / store.MARKER).is_file()
    marker = json.loads((folder / store.MARKER).read_text())
    assert marker["raw_sha256"] == hashlib.sha256(official_pth).hexdigest()
    record = store.raw_path(entry).with_name("catseg_test.pth.sha256")
    assert record.read_text().split()[0] == marker["raw_sha256"]
    assert len(server.served.gets(PATH)) == 1

    # the same numbers as converting the file by hand
    from ovparts.methods.catseg.convert import convert_catseg_checkpoint

    by_hand = store.raw_path(entry).parent / "by-hand"
    convert_catseg_checkpoint(store.raw_path(entry), by_hand, tokenizer=tokenizer_folder)
    reference = ovparts.load_model("catseg", weights=str(by_hand))
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)

    # offline, server gone: the cache serves it; the qualified name works too
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    server.served.files.clear()
    again = ovparts.load_model("catseg", weights="catseg:test-b")
    assert again.config == model.config
    assert len(server.served.gets(PATH)) == 1


def test_offline_with_nothing_cached_is_one_sentence_naming_file_and_place(
    server, tokenizer_folder, register, monkeypatch, _ovparts_home
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    entry = register(entry_for(server, tokenizer_folder))
    with pytest.raises(WeightsNotFoundError) as caught:
        ovparts.load_model("catseg", weights="test-b")
    message = str(caught.value)
    assert entry.source.url in message and str(store.raw_path(entry)) in message
    assert "\n" not in message
    assert server.served.requests == []
    assert tree(_ovparts_home) == []


def test_a_hand_placed_file_is_used_offline(official_pth, server, tokenizer_folder, register, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    entry = register(entry_for(server, tokenizer_folder))
    raw = store.raw_path(entry)
    raw.parent.mkdir(parents=True)
    raw.write_bytes(official_pth)
    assert store.ensure(entry) == store.converted_dir(entry)
    assert server.served.requests == []


def test_a_truncated_download_is_refused_and_nothing_is_kept(
    server, official_pth, tokenizer_folder, register, online, _ovparts_home
):
    server.served.files[PATH] = official_pth[: len(official_pth) // 2]  # complete per HTTP, not a checkpoint
    entry = register(entry_for(server, tokenizer_folder))
    with pytest.raises(CheckpointError, match="could not be converted.*removed"):
        ovparts.load_model("catseg", weights="test-b")
    assert tree(_ovparts_home) == []
    assert store.cached_path(entry) is None


def test_a_published_hash_is_checked(server, official_pth, tokenizer_folder, register, online, _ovparts_home):
    server.served.files[PATH] = official_pth
    entry = register(entry_for(server, tokenizer_folder, sha256="0" * 64))
    with pytest.raises(CheckpointError, match="not the published"):
        store.ensure(entry)
    assert tree(_ovparts_home) == []
    good = entry_for(
        server, tokenizer_folder, name="test-good", sha256=hashlib.sha256(official_pth).hexdigest()
    )
    assert store.ensure(good).is_dir()


def test_a_raw_file_changed_after_its_first_download_is_refused(
    server, official_pth, tokenizer_folder, register, online, _ovparts_home
):
    from ovparts.cli import main

    server.served.files[PATH] = official_pth
    entry = register(entry_for(server, tokenizer_folder))
    store.ensure(entry)
    from tests.weights.conftest import official_bytes

    store.raw_path(entry).write_bytes(official_bytes(seed=1))  # another valid checkpoint in its place
    with pytest.raises(CheckpointError, match="changed since its first download"):
        store.ensure(entry, force=True)
    assert store.cached_path(entry) is not None  # the earlier conversion is untouched
    result = CliRunner().invoke(main, ["weights", "pull", "--force", "catseg:test-b"])
    assert result.exit_code == 2
    assert "changed since its first download" in result.output and "Traceback" not in result.output


def test_an_interrupted_download_resumes_where_it_stopped(
    server, official_pth, tokenizer_folder, online, _ovparts_home
):
    server.served.files[PATH] = official_pth
    server.served.cut[PATH] = 5000
    entry = entry_for(server, tokenizer_folder)
    with pytest.raises(WeightsNotFoundError, match="stopped after 5000 .*resume"):
        store.ensure(entry)
    partial = store.raw_path(entry).with_name("catseg_test.pth" + download.PART)
    assert partial.stat().st_size == 5000
    assert store.cached_path(entry) is None
    folder = store.ensure(entry)
    assert server.served.gets(PATH) == [None, "bytes=5000-"]
    assert store.raw_path(entry).read_bytes() == official_pth
    assert (folder / "model.safetensors").is_file()


PULLER = textwrap.dedent(
    """
    import sys
    from ovparts.weights import store
    from ovparts.weights.catalog import PublishedWeights, Source
    url, tokenizer = sys.argv[1], sys.argv[2]
    entry = PublishedWeights("catseg", "test-b", Source("url", url, "catseg_test.pth"), "", "", "", "MIT", tokenizer)
    print(store.ensure(entry))
    """
)


def test_two_processes_pulling_one_name_download_and_convert_once(
    server, official_pth, tokenizer_folder, online, _ovparts_home
):
    server.served.files[PATH] = official_pth
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PULLER, server.url + PATH, tokenizer_folder],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    paths = {out.decode().strip().splitlines()[-1] for out, _ in outputs}
    assert len(paths) == 1
    assert len(server.served.gets(PATH)) == 1
    leftovers = [p.name for p in (_ovparts_home / "weights" / "catseg").iterdir()]
    assert leftovers == ["test-b"]


def test_gdrive_sources_go_through_gdown_with_resume(
    server, official_pth, tokenizer_folder, online, monkeypatch, _ovparts_home
):
    import types
    import urllib.request

    server.served.files["/uc"] = official_pth
    calls = []

    def fake_download(id, output, quiet, resume):  # noqa: A002 - gdown's own keyword
        calls.append((id, resume))
        with urllib.request.urlopen(f"{server.url}/uc?id={id}") as response, open(output, "wb") as handle:
            handle.write(response.read())
        return output

    monkeypatch.setitem(sys.modules, "gdown", types.SimpleNamespace(download=fake_download))
    entry = entry_for(server, tokenizer_folder, kind="gdrive")
    folder = store.ensure(entry)
    assert calls == [("drive-file-id", True)]
    assert (folder / "config.json").is_file()
    assert not store.raw_path(entry).with_name("catseg_test.pth" + download.PART).exists()


def test_without_gdown_the_sentence_says_how_to_install_or_fetch(
    server, tokenizer_folder, online, monkeypatch, _ovparts_home
):
    monkeypatch.setitem(sys.modules, "gdown", None)
    entry = entry_for(server, tokenizer_folder, kind="gdrive")
    with pytest.raises(WeightsNotFoundError, match=r"ovparts\[weights\].*by hand"):
        store.ensure(entry)


def test_unsupported_entries_are_refused_with_their_reason():
    entry = ovparts.weights.require("catseg:vit-l-old")
    with pytest.raises(CheckpointError, match="Swin-B"):
        store.ensure(entry)


def test_an_existing_folder_wins_over_a_published_name(tmp_path, tiny_clipseg_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ov-parts-pascal_part_116").symlink_to(tiny_clipseg_dir)
    model = ovparts.load_model("clipseg", weights="ov-parts-pascal_part_116")
    assert model.name == "clipseg"


HUB_PULLER = textwrap.dedent(
    """
    import sys
    from ovparts.weights import store
    from ovparts.weights.catalog import PublishedWeights, Source
    tokenizer = sys.argv[1]
    source = Source("hub", "org/catseg-weights", "model_base.pth", repo_type="space")
    entry = PublishedWeights("catseg", "hub-b", source, "", "", "", "MIT", tokenizer)
    print(store.ensure(entry))
    """
)


def test_hub_sources_use_huggingface_hub_against_the_endpoint(
    server, official_pth, tokenizer_folder, register, monkeypatch, _ovparts_home
):
    import os

    hub_path = "/spaces/org/catseg-weights/resolve/main/model_base.pth"
    server.served.files[hub_path] = official_pth
    env = {
        **os.environ,
        "HF_ENDPOINT": server.url,
        "HF_HUB_OFFLINE": "0",
        "HF_HOME": str(_ovparts_home / "hf"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", HUB_PULLER, tokenizer_folder], env=env, capture_output=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert [m for m, p, _ in server.served.requests if p == hub_path] == ["HEAD", "GET"]
    entry = register(
        PublishedWeights(
            "catseg",
            "hub-b",
            Source("hub", "org/catseg-weights", "model_base.pth", repo_type="space"),
            "",
            "",
            "",
            "MIT",
            tokenizer_folder,
        )
    )
    assert store.raw_path(entry).read_bytes() == official_pth
    server.served.files.clear()
    model = ovparts.load_model("catseg", weights="hub-b")  # HF_HUB_OFFLINE=1 here: from the cache
    assert model.name == "catseg"


def test_weights_cli_list_path_pull_rm(
    server, official_pth, tokenizer_folder, register, online, _ovparts_home
):
    from ovparts.cli import main

    server.served.files[PATH] = official_pth
    register(entry_for(server, tokenizer_folder))
    runner = CliRunner()
    listing = runner.invoke(main, ["weights", "list"])
    assert listing.exit_code == 0
    for name in (
        "catseg:vit-b",
        "partcatseg:pascal_part_116",
        "partclipseg:ade20k_part_234",
        "clipseg:rd64-refined",
    ):
        assert name in listing.output
    assert "1JUJjJQLMKE96H5SLNs4EMm4jiU6fPgRb" in listing.output  # PartCATSeg Pascal's Google Drive id
    assert runner.invoke(main, ["weights", "path", "catseg:test-b"]).exit_code == 1
    pulled = runner.invoke(main, ["weights", "pull", "test-b"])
    assert pulled.exit_code == 0, pulled.output
    path = runner.invoke(main, ["weights", "path", "test-b"])
    assert path.exit_code == 0 and pulled.output.rstrip().endswith(path.output.strip())
    assert "converted" in runner.invoke(main, ["weights", "list", "--model", "catseg"]).output
    unknown = runner.invoke(main, ["weights", "pull", "no-such-name"])
    assert unknown.exit_code == 2 and "No published checkpoint" in unknown.output
    ambiguous = runner.invoke(main, ["weights", "pull", "pascal_part_116"])
    assert ambiguous.exit_code == 2 and "partcatseg:pascal_part_116" in ambiguous.output
    removed = runner.invoke(main, ["weights", "rm", "test-b"])
    assert removed.exit_code == 0 and "Removed" in removed.output
    assert tree(_ovparts_home) == []


def test_segment_takes_a_published_name(
    server, official_pth, tokenizer_folder, register, online, chelsea_path, tmp_path
):
    from ovparts.cli import main

    server.served.files[PATH] = official_pth
    register(entry_for(server, tokenizer_folder))
    result = CliRunner().invoke(
        main,
        [
            "segment",
            str(chelsea_path),
            "--model",
            "catseg",
            "--weights",
            "test-b",
            "--vocab",
            "cat: head, ear",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "chelsea.parts.png").is_file()


def test_a_missing_tokenizer_is_one_sentence_before_any_download(server, official_pth, register, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    entry = register(entry_for(server, "nobody/no-such-tokenizer"))
    raw = store.raw_path(entry)
    raw.parent.mkdir(parents=True)
    raw.write_bytes(official_pth)
    with pytest.raises(
        WeightsNotFoundError, match="needs the tokenizer nobody/no-such-tokenizer.*huggingface-cli"
    ):
        store.ensure(entry)
    assert store.cached_path(entry) is None and raw.is_file()  # a hand-placed file is kept
