"""`ovparts data download` over a local HTTP server: fetch, unpack safely, lay out, check, and do it once."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest
from click.testing import CliRunner

from ovparts.cli import main
from ovparts.data import download as data_download
from ovparts.data.archives import extract
from ovparts.data.synthetic import write_synthetic
from ovparts.errors import DatasetError
from ovparts.weights.catalog import Source

ARCHIVE = "/data/PascalPart116.tar.gz"


@pytest.fixture(scope="module")
def pascal_archive(tmp_path_factory) -> bytes:
    """A synthetic Pascal-Part-116 in the official layout, packed as the official tarball is (one top folder)."""
    source = tmp_path_factory.mktemp("pascal-src")
    folder = write_synthetic("pascal_part_116", source, images_per_split=2)
    (folder / "images" / "val" / "._resource_fork.jpg").write_bytes(b"macOS junk")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(folder, arcname="PascalPart116")
    return buffer.getvalue()


@pytest.fixture
def served_pascal(server, pascal_archive, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    server.served.files[ARCHIVE] = pascal_archive
    entry = data_download.DatasetSource(
        "pascal_part_116", Source("url", server.url + ARCHIVE, "PascalPart116.tar.gz")
    )
    monkeypatch.setitem(data_download.SOURCES, "pascal_part_116", entry)
    return server


def test_download_unpacks_checks_and_a_second_run_does_nothing(served_pascal, tmp_path):
    root = tmp_path / "datasets"
    runner = CliRunner()
    first = runner.invoke(main, ["data", "download", "pascal_part_116", "--root", str(root)])
    assert first.exit_code == 0, first.output
    assert "OK" in first.output or "ok" in first.output.lower()
    assert len(list((root / "PascalPart116" / "images" / "val").glob("*.jpg"))) == 2
    assert not list(root.rglob("._*"))
    assert [p.name for p in root.iterdir()] == ["PascalPart116"]  # no staging folder left
    second = runner.invoke(main, ["data", "download", "pascal", "--root", str(root)])
    assert second.exit_code == 0 and "nothing to do" in second.output
    assert len(served_pascal.served.gets(ARCHIVE)) == 1


def test_an_interrupted_archive_download_resumes(served_pascal, tmp_path):
    served_pascal.served.cut[ARCHIVE] = 1000
    runner = CliRunner()
    stopped = runner.invoke(main, ["data", "download", "pascal_part_116", "--root", str(tmp_path)])
    assert stopped.exit_code == 2 and "resume" in stopped.output
    done = runner.invoke(main, ["data", "download", "pascal_part_116", "--root", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert served_pascal.served.gets(ARCHIVE) == [None, "bytes=1000-"]


def test_a_truncated_archive_is_one_sentence_and_leaves_no_dataset(served_pascal, pascal_archive, tmp_path):
    served_pascal.served.files[ARCHIVE] = pascal_archive[: len(pascal_archive) // 2]
    result = CliRunner().invoke(main, ["data", "download", "pascal_part_116", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert "could not be unpacked" in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def _tar_with(member: tarfile.TarInfo, data: bytes = b"evil") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        ok = tarfile.TarInfo("PascalPart116/images/val/fine.jpg")
        ok.size = 3
        tar.addfile(ok, io.BytesIO(b"abc"))
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return buffer.getvalue()


def _file(name: str, data: bytes = b"evil") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (_file("../escaped.txt"), "outside the target folder"),
        (_file("PascalPart116/../../escaped.txt"), "outside the target folder"),
        (_file("/tmp/absolute.txt"), "absolute path"),
        (_link("PascalPart116/link", "/etc/passwd"), "link"),
        (_link("PascalPart116/hard", "PascalPart116/images/val/fine.jpg", tarfile.LNKTYPE), "link"),
    ],
)
def test_hostile_tar_members_refuse_the_whole_archive(member, message, tmp_path):
    archive = tmp_path / "bad.tar"
    archive.write_bytes(_tar_with(member, b"evil"))
    dest = tmp_path / "out"
    with pytest.raises(DatasetError, match=message):
        extract(archive, dest)
    assert not (tmp_path / "escaped.txt").exists()
    assert list(dest.rglob("*")) == []  # checked before anything was written


def test_hostile_zip_members_are_refused(tmp_path):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("PartImageNet/ok.txt", "fine")
        handle.writestr("../../escaped.txt", "evil")
    with pytest.raises(DatasetError, match="outside the target folder"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


def test_a_zip_bomb_member_is_refused(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("PartImageNet/zeros.bin", b"\0" * (16 << 20))
    with pytest.raises(DatasetError, match="inflates more than"):
        extract(archive, tmp_path / "out")


def test_absurd_sizes_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("OVPARTS_MAX_ARCHIVE_BYTES", "2")
    archive = tmp_path / "big.tar"
    archive.write_bytes(_tar_with(_file("PascalPart116/more.txt")))
    with pytest.raises(DatasetError, match="OVPARTS_MAX_ARCHIVE_BYTES"):
        extract(archive, tmp_path / "out")


def test_a_served_archive_with_an_escaping_member_leaves_nothing(served_pascal, tmp_path):
    served_pascal.served.files[ARCHIVE] = _tar_with(_file("../escaped.txt"))
    root = tmp_path / "datasets"
    result = CliRunner().invoke(main, ["data", "download", "pascal_part_116", "--root", str(root)])
    assert result.exit_code == 2 and "outside the target folder" in result.output
    assert not (tmp_path / "escaped.txt").exists() and list(root.iterdir()) == []


def test_offline_names_the_archive_and_where_to_put_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(main, ["data", "download", "ade20k_part_234", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert "1EBVPW_tqzBOQ_DC6yLcouyxR7WrctRKi" in result.output and "ADE20KPart234.tar.gz" in result.output
