"""The fetch stage: download with resume, safe extraction, manifest verification, atomic install."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from src.config import FetchConfig
from src.data.fetch import fetch_dataset
from src.data.manifest import manifest_digest, read_manifest
from src.errors import PipelineError
from tests.support.fetch import (
    FIXTURE_ROOT,
    ServerState,
    altered,
    fixture_files,
    serve,
    write_manifest,
    write_zip,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
BAD_FILE = "lol_dataset/our485/low/2.png"
FAST = {"backoff_s": 0.01}


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy from the environment must not intercept the loopback server."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def files() -> dict[str, bytes]:
    return fixture_files()


@pytest.fixture
def manifest(tmp_path: Path, files: dict[str, bytes]) -> Path:
    return write_manifest(tmp_path / "lol.sha256", files)


@pytest.fixture
def good_zip(tmp_path: Path, files: dict[str, bytes]) -> Path:
    """The fixture zipped as the mirror ships it, plus junk that must not reach the output."""
    junk = {"__MACOSX/lol_dataset/our485/low/._2.png": b"junk", "lol_dataset/.DS_Store": b"junk"}
    return write_zip(tmp_path / "good.zip", {**files, **junk})


@pytest.fixture
def state(good_zip: Path) -> ServerState:
    return ServerState(payload=good_zip.read_bytes())


@pytest.fixture
def url(state: ServerState) -> Iterator[str]:
    with serve(state) as address:
        yield address


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "data" / "raw", tmp_path / "data" / "downloads"


def config(manifest: Path, *, url: str = "http://127.0.0.1:9/none.zip", source: str = "", retries: int = 2):
    return FetchConfig(url=url, source=source, manifest=str(manifest), retries=retries, timeout_s=5.0)


def tree(root: Path) -> dict[str, str]:
    """`lol_dataset/...` → sha256 of every file under root/lol_dataset."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((root / "lol_dataset").rglob("*"))
        if path.is_file()
    }


def assert_clean(out_dir: Path) -> None:
    """Nothing half-written: no dataset and no staging dirs."""
    leftovers = sorted(p.name for p in out_dir.iterdir()) if out_dir.exists() else []
    assert leftovers == []


# --------------------------------------------------------------------------- download


def test_download_verifies_and_installs(url, state, manifest, dirs) -> None:
    out_dir, downloads = dirs
    result = fetch_dataset(config(manifest, url=url), out_dir, downloads, **FAST)
    assert result == out_dir / "lol_dataset"
    assert tree(out_dir) == read_manifest(manifest)  # junk entries were left out
    assert sorted(p.name for p in out_dir.iterdir()) == ["lol_dataset"]
    assert sorted(p.name for p in downloads.iterdir()) == ["lol_dataset.zip"]
    assert [r["range"] for r in state.requests] == [None]


def test_cached_zip_is_reused(url, state, manifest, dirs) -> None:
    out_dir, downloads = dirs
    fetch_dataset(config(manifest, url=url), out_dir, downloads, **FAST)
    state.fail_status = 503  # a second request would now fail
    fetch_dataset(config(manifest, url=url), out_dir, downloads, **FAST)
    assert len(state.requests) == 1
    assert tree(out_dir) == read_manifest(manifest)


def test_checksum_mismatch_names_file_and_leaves_nothing(tmp_path, url, state, files, manifest, dirs) -> None:
    out_dir, downloads = dirs
    state.payload = write_zip(tmp_path / "bad.zip", altered(files, BAD_FILE)).read_bytes()
    with pytest.raises(PipelineError) as err:
        fetch_dataset(config(manifest, url=url), out_dir, downloads, **FAST)
    message = str(err.value)
    assert message.startswith(f"{BAD_FILE}: sha256 mismatch (1 files differ, 0 missing) in ")
    assert "\n" not in message
    assert "next run downloads it afresh" in message
    assert_clean(out_dir)
    assert list(downloads.iterdir()) == []  # the bad cached zip is gone


def test_truncated_download_resumes_with_range(url, state, manifest, dirs) -> None:
    out_dir, downloads = dirs
    state.truncate_next = 1
    fetch_dataset(config(manifest, url=url), out_dir, downloads, **FAST)
    ranges = [r["range"] for r in state.requests]
    assert len(ranges) == 2 and ranges[0] is None
    resumed_at = int(ranges[1].removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_at <= len(state.payload) // 3  # what arrived before the drop was kept
    assert tree(out_dir) == read_manifest(manifest)


def test_partial_file_from_earlier_run_is_resumed(url, state, manifest, dirs) -> None:
    out_dir, downloads = dirs
    downloads.mkdir(parents=True)
    (downloads / "lol_dataset.zip.part").write_bytes(state.payload[:1000])
    fetch_dataset(config(manifest, url=url), out_dir, downloads, **FAST)
    assert [r["range"] for r in state.requests] == ["bytes=1000-"]
    assert tree(out_dir) == read_manifest(manifest)


def test_server_ignoring_range_restarts_from_zero(url, state, manifest, dirs) -> None:
    out_dir, downloads = dirs
    state.truncate_next, state.ignore_range = 1, True
    fetch_dataset(config(manifest, url=url), out_dir, downloads, **FAST)
    assert len(state.requests) == 2 and state.requests[1]["range"] is not None
    assert (downloads / "lol_dataset.zip").read_bytes() == state.payload
    assert tree(out_dir) == read_manifest(manifest)


def test_failing_server_gives_up_after_retries(url, state, manifest, dirs) -> None:
    out_dir, downloads = dirs
    state.fail_status = 503
    with pytest.raises(PipelineError, match=r"download failed after 3 attempt\(s\): HTTP 503"):
        fetch_dataset(config(manifest, url=url, retries=2), out_dir, downloads, **FAST)
    assert len(state.requests) == 3
    assert_clean(out_dir)


def test_not_found_is_not_retried(url, state, manifest, dirs) -> None:
    out_dir, downloads = dirs
    with pytest.raises(PipelineError, match="HTTP 404"):
        fetch_dataset(config(manifest, url=url.replace(".zip", "-gone.zip")), out_dir, downloads, **FAST)
    assert len(state.requests) == 1
    assert_clean(out_dir)


def test_unreachable_host_gives_up_after_retries(manifest, dirs) -> None:
    out_dir, downloads = dirs
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(PipelineError, match=r"after 2 attempt\(s\): ConnectionError"):
        fetch_dataset(
            config(manifest, url=f"http://127.0.0.1:{port}/x.zip", retries=1), out_dir, downloads, **FAST
        )
    assert_clean(out_dir)


# --------------------------------------------------------------------------- archives and local sources


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_zip_slip_is_rejected(tmp_path, files, manifest, dirs, kind) -> None:
    out_dir, downloads = dirs
    outside = tmp_path / "evil.png"
    name = {"dotdot": "../evil.png", "absolute": str(outside), "symlink": "lol_dataset/evil.png"}[kind]
    extra = {} if kind == "symlink" else {name: b"evil"}
    links = {name: str(outside)} if kind == "symlink" else {}
    archive = write_zip(tmp_path / "slip.zip", {**files, **extra}, symlinks=links)
    with pytest.raises(PipelineError, match="refusing it"):
        fetch_dataset(config(manifest, source=str(archive)), out_dir, downloads, **FAST)
    assert not outside.exists()
    assert [p for p in tmp_path.rglob("evil*")] == []
    assert_clean(out_dir)


@pytest.mark.parametrize("which", ["parent", "dataset"])
def test_local_folder_source(tmp_path, manifest, dirs, which) -> None:
    out_dir, downloads = dirs
    source = FIXTURE_ROOT if which == "parent" else FIXTURE_ROOT / "lol_dataset"
    fetch_dataset(config(manifest, source=str(source)), out_dir, downloads, **FAST)
    assert tree(out_dir) == read_manifest(manifest)
    assert not downloads.exists()  # no network, no cache


def test_local_folder_extra_files_are_not_copied(tmp_path, files, manifest, dirs) -> None:
    out_dir, downloads = dirs
    source = tmp_path / "copy" / "lol_dataset"
    for name, data in {**files, "lol_dataset/notes.txt": b"x"}.items():
        (source.parent / name).parent.mkdir(parents=True, exist_ok=True)
        (source.parent / name).write_bytes(data)
    fetch_dataset(config(manifest, source=str(source.parent)), out_dir, downloads, **FAST)
    assert tree(out_dir) == read_manifest(manifest)


@pytest.mark.parametrize("prefix", ["", "LOL/"], ids=["top-level", "wrapped"])
def test_local_zip_source(tmp_path, good_zip, files, manifest, dirs, prefix) -> None:
    out_dir, downloads = dirs
    archive = good_zip if not prefix else write_zip(tmp_path / "wrapped.zip", files, prefix=prefix)
    fetch_dataset(config(manifest, source=str(archive)), out_dir, downloads, **FAST)
    assert tree(out_dir) == read_manifest(manifest)


def test_missing_file_is_reported(tmp_path, files, manifest, dirs) -> None:
    out_dir, downloads = dirs
    archive = write_zip(tmp_path / "short.zip", {k: v for k, v in files.items() if k != BAD_FILE})
    with pytest.raises(PipelineError, match=rf"^{BAD_FILE}: missing \(0 files differ, 1 missing\) in "):
        fetch_dataset(config(manifest, source=str(archive)), out_dir, downloads, **FAST)
    assert_clean(out_dir)


@pytest.mark.parametrize("source", ["folder", "zip"])
def test_wrong_layout_is_one_clear_error(tmp_path, manifest, dirs, source) -> None:
    out_dir, downloads = dirs
    (tmp_path / "other" / "images").mkdir(parents=True)
    (tmp_path / "other" / "images" / "a.png").write_bytes(b"x")
    path = tmp_path / "other" if source == "folder" else write_zip(tmp_path / "o.zip", {"images/a.png": b"x"})
    with pytest.raises(PipelineError, match=r"no lol_dataset/? folder") as err:
        fetch_dataset(config(manifest, source=str(path)), out_dir, downloads, **FAST)
    assert "\n" not in str(err.value)
    assert_clean(out_dir)


def test_missing_source_is_reported(tmp_path, manifest, dirs) -> None:
    out_dir, downloads = dirs
    with pytest.raises(PipelineError, match="does not exist"):
        fetch_dataset(config(manifest, source=str(tmp_path / "nope")), out_dir, downloads, **FAST)


# --------------------------------------------------------------------------- install


def test_failed_fetch_keeps_previous_dataset(tmp_path, files, manifest, dirs) -> None:
    out_dir, downloads = dirs
    fetch_dataset(config(manifest, source=str(FIXTURE_ROOT)), out_dir, downloads, **FAST)
    before = tree(out_dir)
    bad = write_zip(tmp_path / "bad.zip", altered(files, BAD_FILE))
    with pytest.raises(PipelineError, match="sha256 mismatch"):
        fetch_dataset(config(manifest, source=str(bad)), out_dir, downloads, **FAST)
    assert tree(out_dir) == before == read_manifest(manifest)
    assert sorted(p.name for p in out_dir.iterdir()) == ["lol_dataset"]


def test_success_replaces_previous_dataset_whole(tmp_path, manifest, dirs) -> None:
    out_dir, downloads = dirs
    (out_dir / "lol_dataset" / "old").mkdir(parents=True)
    (out_dir / "lol_dataset" / "old" / "stale.png").write_bytes(b"old")
    (out_dir / ".fetch-leftover").mkdir()  # from a killed run
    fetch_dataset(config(manifest, source=str(FIXTURE_ROOT)), out_dir, downloads, **FAST)
    assert tree(out_dir) == read_manifest(manifest)
    assert sorted(p.name for p in out_dir.iterdir()) == ["lol_dataset"]


# --------------------------------------------------------------------------- manifest


def test_read_manifest_and_digest(manifest, files) -> None:
    entries = read_manifest(manifest)
    assert set(entries) == set(files)
    assert entries[BAD_FILE] == hashlib.sha256(files[BAD_FILE]).hexdigest()
    assert manifest_digest(manifest) == hashlib.sha256(manifest.read_bytes()).hexdigest()


def test_committed_manifest_lists_the_whole_dataset() -> None:
    entries = read_manifest(REPO_ROOT / "manifests" / "lol_dataset.sha256")
    assert len(entries) == 1000
    assert all(name.startswith("lol_dataset/") for name in entries)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("nothex  lol_dataset/a.png", "not a sha256sum line"),
        (f"{'a' * 64}  ../a.png", "path must be relative"),
        (f"{'a' * 64}  /abs/a.png", "path must be relative"),
    ],
)
def test_read_manifest_rejects_bad_lines(tmp_path, line, problem) -> None:
    path = tmp_path / "m.sha256"
    path.write_text(f"{'b' * 64}  lol_dataset/ok.png\n{line}\n")
    with pytest.raises(PipelineError, match=rf"m\.sha256:2: {problem}"):
        read_manifest(path)


def test_read_manifest_rejects_duplicates_and_empty(tmp_path) -> None:
    path = tmp_path / "m.sha256"
    path.write_text(f"{'b' * 64}  lol_dataset/ok.png\n{'c' * 64} *lol_dataset/ok.png\n")
    with pytest.raises(PipelineError, match="listed twice"):
        read_manifest(path)
    path.write_text("\n")
    with pytest.raises(PipelineError, match="lists no files"):
        read_manifest(path)


# --------------------------------------------------------------------------- command line


def run_stage(cwd: Path, source: str, manifest: Path) -> subprocess.CompletedProcess[str]:
    (cwd / "params.yaml").write_text(
        f"fetch:\n  url: http://127.0.0.1:9/none.zip\n  source: '{source}'\n  manifest: '{manifest}'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "stages.fetch", "--out", "data/raw", "--downloads", "data/downloads"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_bad_source_prints_one_error_line(tmp_path, manifest) -> None:
    proc = run_stage(tmp_path, str(tmp_path / "missing"), manifest)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "fetch.source does not exist" in errors[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data" / "raw" / "lol_dataset").exists()


def test_cli_success_prints_summary(tmp_path, manifest) -> None:
    proc = run_stage(tmp_path, str(FIXTURE_ROOT), manifest)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1
    assert proc.stdout.startswith(f"fetch: {len(read_manifest(manifest))} files verified")
    assert (tmp_path / "data" / "raw" / "lol_dataset" / "our485" / "low" / "2.png").is_file()
