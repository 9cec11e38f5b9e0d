"""Ingestion: what a repository task copies, and the one-line refusals when it must not."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from service.repos import (
    RepoCaps,
    RepoError,
    ingest_archive,
    ingest_dir,
    named_repo,
    repo_input,
)

CAPS = RepoCaps(max_files=20, max_bytes=10_000, max_upload_bytes=20_000)


def _tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    return root


def _tar(members: dict[str, bytes], *, links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return buffer.getvalue()


def _zip(members: dict[str, bytes], *, link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        if link is not None:
            info = zipfile.ZipInfo(link)
            info.external_attr = 0o120777 << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def test_a_directory_is_copied_without_vcs_caches_or_symlinks(tmp_path: Path) -> None:
    root = _tree(
        tmp_path / "repo",
        {
            "pkg/__init__.py": "",
            "pkg/ops.py": "X = 1\n",
            "tests/test_ops.py": "def test_x():\n    pass\n",
            ".git/config": "[core]\n",
            "pkg/__pycache__/ops.cpython-312.pyc": b"\x00\x01",
            ".venv/lib/site.py": "x",
            "node_modules/a/index.js": "x",
            "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00",
        },
    )
    (tmp_path / "secret.txt").write_text("host secret")
    os.symlink(tmp_path / "secret.txt", root / "leak.txt")
    os.symlink(tmp_path, root / "up")
    snapshot = ingest_dir(root, CAPS)
    assert snapshot.files == {
        "pkg/__init__.py": "",
        "pkg/ops.py": "X = 1\n",
        "tests/test_ops.py": "def test_x():\n    pass\n",
    }
    assert snapshot.skipped == ["leak.txt", "logo.png", "up"]
    state = repo_input("fix it", snapshot)
    assert state["repo_files"] == state["files"] == snapshot.files
    assert state["repo_files"] is not state["files"]


def test_too_many_files_or_bytes_are_refused_with_the_cap(tmp_path: Path) -> None:
    many = _tree(tmp_path / "many", {f"m{i}.py": "x" for i in range(21)})
    with pytest.raises(RepoError, match="more than 20 files"):
        ingest_dir(many, CAPS)
    big = _tree(tmp_path / "big", {"a.py": "x" * 6000, "b.py": "y" * 6000})
    with pytest.raises(RepoError, match="larger than 10000 bytes"):
        ingest_dir(big, CAPS)
    with pytest.raises(RepoError, match="not a directory"):
        ingest_dir(tmp_path / "missing", CAPS)


def test_a_tar_gz_and_a_zip_upload_give_the_same_files() -> None:
    members = {"pkg/ops.py": b"X = 1\n", "pkg/__init__.py": b"", "./README": b"hi\n"}
    expected = {"README": "hi\n", "pkg/__init__.py": "", "pkg/ops.py": "X = 1\n"}
    assert ingest_archive(_tar(members), CAPS).files == expected
    assert ingest_archive(_zip(members), CAPS).files == expected


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (_tar({"../escape.py": b"x"}), "'..' component"),
        (_tar({"/etc/cron.d/x": b"x"}), "is absolute"),
        (_zip({"../escape.py": b"x"}), "'..' component"),
        (_zip({"/abs.py": b"x"}), "is absolute"),
        (
            _tar({"ok.py": b"x"}, links={"link.py": "/etc/passwd"}),
            "'link.py' in the upload is a link",
        ),
        (_zip({"ok.py": b"x"}, link="link.py"), "'link.py' in the upload is a link"),
        (_tar({"a.py": b"x" * 11_000}), "larger than 10000 bytes"),
        (_tar({f"f{i}.py": b"x" for i in range(21)}), "more than 20 files"),
        (b"not an archive at all", "not a readable tar.gz or zip"),
        (_tar({"a": b"x", "a/b.py": b"y"}), "both a file and a directory"),
        (_tar({"bin.dat": b"\xff\xfe"}), "no text files"),
    ],
)
def test_unsafe_or_oversized_uploads_are_refused_whole(upload: bytes, message: str) -> None:
    with pytest.raises(RepoError, match=message):
        ingest_archive(upload, CAPS)


def test_an_upload_over_its_own_size_cap_is_refused_before_reading() -> None:
    upload = _zip({"a.py": os.urandom(30_000)})
    with pytest.raises(RepoError, match="over the 20000-byte cap"):
        ingest_archive(upload, CAPS)


def test_only_operator_named_repositories_are_offered(tmp_path: Path) -> None:
    roots = {"demo": tmp_path}
    assert named_repo("demo", roots) == tmp_path
    for name in ("other", "/etc", "../demo", str(tmp_path)):
        with pytest.raises(RepoError, match="not a repository this server offers"):
            named_repo(name, roots)


def test_a_served_run_input_with_files_gets_the_upload_caps_and_path_rules() -> None:
    from service.api.run_guard import Refused, check_run
    from service.settings import Settings

    settings = Settings(repo_max_files=3, repo_max_bytes=100)

    def refused(run_input: object) -> Refused:
        with pytest.raises(Refused) as caught:
            check_run({"input": run_input}, tenant="t", can_approve=True, settings=settings)
        return caught.value

    ok = {"goal": "fix", "repo_files": {"a/__init__.py": "", "a/b.py": "X = 1\n"}}
    check_run({"input": ok}, tenant="t", can_approve=True, settings=settings)
    too_many = refused({"files": {f"m{i}.py": "x" for i in range(4)}})
    assert (
        too_many.status == 413 and "input.files: " in str(too_many) and "3 files" in str(too_many)
    )
    assert refused({"files": {"big.py": "x" * 101}}).status == 413
    escape = refused({"repo_files": {"../../etc/passwd": "x"}})
    assert escape.status == 422 and "'..'" in str(escape)
    assert "is absolute" in str(refused({"files": {"/etc/passwd": "x"}}))
    assert "plain relative path" in str(refused({"files": {"./a.py": "x"}}))
    assert "path → text" in str(refused({"files": ["a.py"]}))
    assert "NUL" in str(refused({"files": {"a.py": "x\x00"}}))


def test_a_served_request_never_learns_the_operators_paths(tmp_path: Path) -> None:
    from service.repos import from_request
    from service.settings import Settings

    gone = tmp_path / "operator-only" / "gone"
    settings = Settings(repo_roots={"demo": gone})
    with pytest.raises(RepoError) as caught:
        from_request(None, "demo", settings)
    assert "not available" in str(caught.value) and str(tmp_path) not in str(caught.value)
