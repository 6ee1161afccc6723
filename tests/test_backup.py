"""Backups that hold everything an index answers from, and restores that finish or leave nothing.
A backup keeps the uploaded originals under the index folder and the folder it was taken from,
so a restore elsewhere shows them from the restored folder; a restore that fails at any step
leaves no folder behind and can simply be run again; and a restore says that it brings back keys
revoked since the backup."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import REPO

from rag_qa import RagQA
from rag_qa.cli import main
from rag_qa.keys import KeyRing
from rag_qa.store.faiss_store import FaissStore

pytestmark = pytest.mark.integration  # the real embedder and a real PDF


def index_with_uploads(index: Path) -> Path:
    """An index whose documents were uploaded to the service: they live in INDEX/uploads."""
    uploads = index / "uploads"
    uploads.mkdir(parents=True)
    for name in ("safety-guide.pdf", "handbook.md"):
        shutil.copy(REPO / "data" / name, uploads / name)
    with RagQA.open(str(index)) as qa:
        qa.index([str(uploads)], progress=False)
    return uploads


def test_a_backup_restored_elsewhere_shows_the_uploads_from_the_restored_folder(tmp_path: Path) -> None:
    index, backup, restored = tmp_path / "index", tmp_path / "backup", tmp_path / "elsewhere" / "restored"
    index_with_uploads(index)
    assert main(["backup", str(backup), "--index", str(index)]) == 0
    shutil.rmtree(index)  # the original is gone (a lost disk): everything must come from the backup
    assert main(["restore", str(backup), "--index", str(restored)]) == 0
    pdf, text = restored.resolve() / "uploads" / "safety-guide.pdf", restored.resolve() / "uploads" / "handbook.md"
    with RagQA.open(str(restored), read_only=True) as qa:
        assert {f["source"] for f in qa.store.files()} == {str(pdf), str(text)}  # every name points into the restored folder
        assert text.read_text("utf-8").strip()[:40] in qa.show(str(text)).text
        assert "ladder" in qa.show(str(pdf), 3).text.lower()
        assert qa.page_image(str(pdf), 1, width=200).startswith(b"\x89PNG")
        assert len(qa.store.search_text("ladder angle", 3)) > 0 and qa.store.count() == len(list(qa.store.iter_passages()))


@pytest.mark.parametrize("failing_step", ["copy", "check"])
def test_a_restore_that_fails_half_way_leaves_nothing_and_can_be_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_step: str
) -> None:
    index, backup, restored = tmp_path / "index", tmp_path / "backup", tmp_path / "restored"
    index_with_uploads(index)
    assert main(["backup", str(backup), "--index", str(index)]) == 0
    before = sorted(p.name for p in tmp_path.iterdir())
    with monkeypatch.context() as patched:
        if failing_step == "copy":
            copied = []
            real_copyfile = shutil.copyfile

            def copy_then_fail(source, target, **options):  # the disk gives out after the first file
                if copied:
                    raise OSError(28, "No space left on device", str(target))
                copied.append(source)
                return real_copyfile(source, target, **options)

            patched.setattr(shutil, "copyfile", copy_then_fail)
        else:
            patched.setattr(FaissStore, "check", lambda self: ["a planted inconsistency"])
        assert main(["restore", str(backup), "--index", str(restored)]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no target folder, no temporary folder
    assert main(["restore", str(backup), "--index", str(restored), "--json"]) == 0
    assert json.loads(main_output(["check", "--index", str(restored), "--json"]))["consistent"]


def test_a_restore_warns_that_it_brings_back_keys_revoked_since_the_backup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index, backup, restored = tmp_path / "index", tmp_path / "backup", tmp_path / "restored"
    index_with_uploads(index)
    with RagQA.open(str(index)) as qa:
        ring = KeyRing(qa.store)
        kept, _ = ring.create("reader", name="kept")
        leaked, _ = ring.create("admin", name="leaked")
    assert main(["backup", str(backup), "--index", str(index)]) == 0
    with RagQA.open(str(index)) as qa:
        KeyRing(qa.store).revoke(leaked.id)  # revoked after the backup was made
    capsys.readouterr()
    assert main(["restore", str(backup), "--index", str(restored)]) == 0
    warning = capsys.readouterr().err
    assert "2 active keys" in warning and "revoked since" in warning and f"rag-qa keys list --index {restored}" in warning
    with RagQA.open(str(restored), read_only=True) as qa:
        assert KeyRing(qa.store).get(leaked.id).revoked_at is None  # what the warning is about


def main_output(argv: list[str]) -> str:
    """What `rag-qa ARGV` prints, run in this process."""
    from contextlib import redirect_stdout
    from io import StringIO

    out = StringIO()
    with redirect_stdout(out):
        main(argv)
    return out.getvalue()
