"""The fetch stage: download with resume, safe extraction, manifest verification, atomic install."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
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
    closed_port_url,
    fixture_files,
    serve,
    silent_server,
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


def config(
    manifest: Path,
    *,
    url: str = "http://127.0.0.1:9/none.zip",
    source: str = "",
    retries: int = 2,
    timeout_s: float = 5.0,
):
    return FetchConfig(url=url, source=source, manifest=str(manifest), retries=retries, timeout_s=timeout_s)


def write_part(downloads: Path, data: bytes, **record: object) -> Path:
    """A `.part` left by an earlier run, with its record (none when `record` is empty)."""
    downloads.mkdir(parents=True, exist_ok=True)
    part = downloads / "lol_dataset.zip.part"
    part.write_bytes(data)
    if record:
        (downloads / "lol_dataset.zip.part.json").write_text(json.dumps(record))
    return part


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Back-off pauses, recorded instead of slept: the default schedule, measured in no time."""
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


def fetch_lines(err: str) -> list[str]:
    """The stage's progress lines, without tqdm's bars."""
    return [line for line in err.replace("\r", "\n").splitlines() if line.startswith("fetch: ")]


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


def test_truncated_download_resumes_with_range(url, state, manifest, dirs, capsys) -> None:
    out_dir, downloads = dirs
    state.truncate_next = 1
    fetch_dataset(config(manifest, url=url), out_dir, downloads, **FAST)
    ranges = [r["range"] for r in state.requests]
    assert len(ranges) == 2 and ranges[0] is None
    resumed_at = int(ranges[1].removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_at <= len(state.payload) // 3  # what arrived before the drop was kept
    assert tree(out_dir) == read_manifest(manifest)
    host = url.split("/")[2]
    assert f"fetch: attempt 1/3 failed: {host} closed the connection mid-transfer; retrying in 0.0 s" in (
        fetch_lines(capsys.readouterr().err)
    )


def test_partial_file_from_earlier_run_is_resumed(url, state, manifest, dirs) -> None:
    out_dir, downloads = dirs
    state.etag = '"v1"'
    write_part(downloads, state.payload[:1000], url=url, etag='"v1"', size=len(state.payload))
    fetch_dataset(config(manifest, url=url), out_dir, downloads, **FAST)
    assert [(r["range"], r["if_range"]) for r in state.requests] == [("bytes=1000-", '"v1"')]
    assert tree(out_dir) == read_manifest(manifest)
    assert sorted(p.name for p in downloads.iterdir()) == ["lol_dataset.zip"]  # the record went too


@pytest.mark.parametrize("origin", ["another URL", "no record"])
def test_stale_partial_file_is_discarded_not_spliced(
    tmp_path, url, state, files, manifest, dirs, capsys, origin
):
    """A `.part` of some other file must not become the head of this one: one run, one good zip."""
    out_dir, downloads = dirs
    other = write_zip(tmp_path / "other.zip", altered(files, BAD_FILE)).read_bytes()
    record = {"url": "http://mirror.example/lol_dataset.zip"} if origin == "another URL" else {}
    part = write_part(downloads, other[:1000], **record)
    fetch_dataset(config(manifest, url=url), out_dir, downloads, **FAST)
    assert [r["range"] for r in state.requests] == [None]
    assert tree(out_dir) == read_manifest(manifest)
    why = "it is part of http://mirror.example/lol_dataset.zip, not " if record else "no readable "
    assert f"fetch: discarding {part} (1,000 bytes): {why}" in capsys.readouterr().err


@pytest.mark.parametrize("server", ["honours If-Range", "ignores If-Range"])
def test_partial_file_of_a_changed_upload_is_restarted(tmp_path, url, state, files, manifest, dirs, server):
    """Same URL, new file (new ETag): If-Range makes the server send it whole; a server that ignores
    If-Range is caught by its ETag on the 206. Either way one run ends with the new file."""
    out_dir, downloads = dirs
    old = write_zip(tmp_path / "old.zip", altered(files, BAD_FILE)).read_bytes()
    write_part(downloads, old[:1000], url=url, etag='"old"', size=len(old))
    state.etag, state.ignore_if_range = '"new"', server == "ignores If-Range"
    fetch_dataset(config(manifest, url=url), out_dir, downloads, **FAST)
    assert state.requests[0]["if_range"] == '"old"'
    assert [r["range"] for r in state.requests] == (
        ["bytes=1000-"] if server == "honours If-Range" else ["bytes=1000-", None]
    )
    assert tree(out_dir) == read_manifest(manifest)


def test_failure_after_some_data_keeps_it_says_so_and_the_next_run_resumes(url, state, manifest, dirs):
    out_dir, downloads = dirs
    state.truncate_next, state.fail_status, state.fail_from = 1, 503, 2
    with pytest.raises(PipelineError) as err:
        fetch_dataset(config(manifest, url=url, retries=1), out_dir, downloads, **FAST)
    part = downloads / "lol_dataset.zip.part"
    kept = part.stat().st_size
    assert 0 < kept < len(state.payload)
    assert (
        f": HTTP 503 Service Unavailable ({kept:,} bytes kept in {part}; the next run resumes there); "
        in (str(err.value))
    )
    state.fail_status = 0
    fetch_dataset(config(manifest, url=url), out_dir, downloads, **FAST)
    assert state.requests[-1]["range"] == f"bytes={kept}-"
    assert tree(out_dir) == read_manifest(manifest)


def test_a_stall_mid_transfer_is_resumed(url, state, manifest, dirs) -> None:
    """A connection gone silent is worth one reconnect: giving up early on stalls must not stop that."""
    out_dir, downloads = dirs
    state.stall_next = 1
    fetch_dataset(config(manifest, url=url, timeout_s=0.3), out_dir, downloads, **FAST)
    ranges = [r["range"] for r in state.requests]
    assert len(ranges) == 2 and ranges[0] is None and ranges[1].startswith("bytes=")
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
    with pytest.raises(PipelineError) as err:
        fetch_dataset(config(manifest, url=url, retries=2), out_dir, downloads, **FAST)
    assert re.fullmatch(
        rf"{url}: download failed after 3 attempts in \d+\.\d s: HTTP 503 Service Unavailable; "
        r"rerun later, or set fetch\.source to a local lol_dataset folder or zip",
        str(err.value),
    )
    assert len(state.requests) == 3
    assert_clean(out_dir)


def test_not_found_is_not_retried(url, state, manifest, dirs) -> None:
    out_dir, downloads = dirs
    gone = url.replace(".zip", "-gone.zip")
    with pytest.raises(PipelineError) as err:
        fetch_dataset(config(manifest, url=gone), out_dir, downloads, **FAST)
    assert str(err.value) == (
        f"{gone}: HTTP 404 Not Found; not retrying: check fetch.url, "
        "or set fetch.source to a local lol_dataset folder or zip"
    )
    assert len(state.requests) == 1
    assert_clean(out_dir)


@pytest.mark.parametrize("case", ["refused", "http 500"])
def test_default_back_off_gives_up_within_seconds_with_whole_lines(
    url, state, manifest, dirs, capsys, pauses, case
) -> None:
    """With the default retries (5) and back-off, a closed port or a failing server costs seconds of
    waiting, not a minute (2+4+8+16+32 s before); every line is whole, and none claims a `.part`."""
    out_dir, downloads = dirs
    if case == "refused":
        url = closed_port_url()
        port = url.split(":")[2].split("/")[0]
        failure = f"connection refused by 127.0.0.1:{port}"
    else:
        state.fail_status = 500
        failure = "HTTP 500 Internal Server Error"
    with pytest.raises(PipelineError) as err:
        fetch_dataset(config(manifest, url=url, retries=5, timeout_s=60.0), out_dir, downloads)
    assert pauses == [0.5, 1.0, 2.0, 4.0, 4.0] and sum(pauses) < 15
    lines = fetch_lines(capsys.readouterr().err)
    assert lines[1:] == [
        f"fetch: attempt {n}/6 failed: {failure}; retrying in {pause:.1f} s"
        for n, pause in enumerate(pauses, start=1)
    ]
    assert re.fullmatch(
        rf"{url}: download failed after 6 attempts in \d+\.\d s: {failure}; "
        r"rerun later, or set fetch\.source to a local lol_dataset folder or zip",
        str(err.value),
    )
    assert not (downloads / "lol_dataset.zip.part").exists()
    assert_clean(out_dir)


@pytest.mark.parametrize(
    ("errno", "attempts"), [(socket.EAI_NONAME, 1), (socket.EAI_AGAIN, 3)], ids=["no such name", "offline"]
)
def test_dns_failure_says_so_in_one_line(monkeypatch, manifest, dirs, capsys, errno, attempts) -> None:
    """A name that does not exist is not retried; a resolver that cannot answer now (offline) is."""
    out_dir, downloads = dirs
    strerror = {socket.EAI_NONAME: "Name or service not known", socket.EAI_AGAIN: "Temporary failure"}[errno]

    def no_dns(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(errno, strerror)

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    address = "http://nonexistent.invalid/x.zip"
    with pytest.raises(PipelineError) as err:
        fetch_dataset(config(manifest, url=address), out_dir, downloads, **FAST)
    message = str(err.value)
    failure = f"cannot resolve host nonexistent.invalid ({strerror})"
    if attempts == 1:
        assert message == (
            f"{address}: {failure}; not retrying: check fetch.url, "
            "or set fetch.source to a local lol_dataset folder or zip"
        )
    else:
        assert message.startswith(f"{address}: download failed after 3 attempts in ")
        assert message.endswith(
            f" s: {failure}; rerun later, or set fetch.source to a local lol_dataset folder or zip"
        )
    assert ".part" not in message
    assert len([line for line in fetch_lines(capsys.readouterr().err) if " failed: " in line]) == attempts - 1
    assert_clean(out_dir)


def test_stalled_server_gets_two_timeouts_not_six(manifest, dirs) -> None:
    """A server that accepts and never answers: retrying stops after 2 x timeout_s without data
    (before: every one of the 6 attempts waited its timeout, 6 x 60 s + 62 s with the defaults)."""
    out_dir, downloads = dirs
    with silent_server() as silent:
        start = time.monotonic()
        with pytest.raises(PipelineError) as err:
            fetch_dataset(
                config(manifest, url=silent.url, retries=5, timeout_s=0.3), out_dir, downloads, **FAST
            )
        took = time.monotonic() - start
    assert silent.accepted == 2
    assert took < 3.0  # two timeouts of 0.3 s, and start-up; six took 2.1 s
    port = silent.url.split(":")[2].split("/")[0]
    assert re.fullmatch(
        rf"{silent.url}: download gave up after 2 of 6 attempts \(\d+\.\d s, no new data for 0\.6 s\): "
        rf"no data from 127\.0\.0\.1:{port} for 0\.3 s \(fetch\.timeout_s\); "
        r"rerun later, or set fetch\.source to a local lol_dataset folder or zip",
        str(err.value),
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


def run_stage(
    cwd: Path, source: str, manifest: Path, *, url: str = "http://127.0.0.1:9/none.zip", retries: int = 5
) -> subprocess.CompletedProcess[str]:
    (cwd / "params.yaml").write_text(
        f"fetch:\n  url: {url}\n  source: '{source}'\n  manifest: '{manifest}'\n  retries: {retries}\n"
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


@pytest.mark.parametrize("where", ["unresolvable host", "closed port"])
def test_cli_network_failure_is_one_true_line(tmp_path, manifest, where) -> None:
    """The real resolver and a real closed port, through the command: exit 1, whole lines, one
    `error:` line naming the URL and the cause, and no `.part` claimed where none exists."""
    url = "http://nonexistent.invalid/x.zip" if where == "unresolvable host" else closed_port_url()
    proc = run_stage(tmp_path, "", manifest, url=url, retries=1)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {url}: ")
    cause = (
        "cannot resolve host nonexistent.invalid ("
        if where == "unresolvable host"
        else "connection refused by"
    )
    assert cause in errors[0] and errors[0].endswith("set fetch.source to a local lol_dataset folder or zip")
    assert ".part" not in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "data" / "downloads" / "x.zip.part").exists()
    for line in fetch_lines(proc.stderr):
        if " failed: " in line:
            assert re.fullmatch(rf"fetch: attempt 1/2 failed: {re.escape(cause)}.*; retrying in 0\.5 s", line)
