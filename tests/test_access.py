"""Who may read and change a document, decided in one place (the facade) for every caller: a mail
and its attachments change together, an editor cannot hide a document from groups it is not in,
a hidden document is indistinguishable from an absent one, and a failed replace keeps the old
upload. Each test reproduces a hole found in review (issue 34) on a real service over a real index."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from mails import message

from rag_qa.access import AccessDenied
from rag_qa.config import ReaderConfig, ServerConfig
from rag_qa.keys import KeyRing
from rag_qa.pipeline import RagQA
from rag_qa.server.background import live_service

httpx = pytest.importorskip("httpx", reason="the service tests need httpx (pip install -e '.[dev]')")
SERVER = Path(__file__).resolve().parent.parent / "rag_qa" / "server"


@pytest.fixture(params=["faiss", "postgresql"])
def team(request: pytest.FixtureRequest, tmp_path: Path, tiny_bert: str):
    """A keyed service on each store: keys by name, and a call(method, path, key, **kwargs) helper."""
    location = str(tmp_path / "index") if request.param == "faiss" else request.getfixturevalue("postgres_url")
    with RagQA.open(location, reader=ReaderConfig(model=tiny_bert)) as qa:
        ring = KeyRing(qa.store)
        keys = {
            name: ring.create(role, groups, name)[1]
            for name, role, groups in (("admin", "admin", ()), ("hr editor", "editor", ("hr",)), ("legal editor", "editor", ("legal",)),
                                       ("legal reader", "reader", ("legal",)), ("hr reader", "reader", ("hr",)), ("public editor", "editor", ()))
        }  # fmt: skip
        with live_service(qa, ServerConfig(upload_dir=str(tmp_path / "uploads"))) as url:

            def call(method: str, path: str, key: str, **kwargs) -> httpx.Response:
                return httpx.request(method, url + path, headers={"Authorization": f"Bearer {keys[key]}"}, timeout=120, **kwargs)

            yield qa, call, tmp_path


def upload(call, key: str, name: str, text: bytes, groups: str = "", replace: bool = False) -> httpx.Response:
    return call("POST", "/documents", key, files=[("files", (name, text))], data={"groups": groups, "replace": str(replace).lower()})


def groups_of(call, name: str) -> list[str]:
    return {d["name"]: d["groups"] for d in call("GET", "/documents", "admin").json()["documents"]}[name]


def test_a_mail_and_its_attachments_change_groups_together(team) -> None:
    qa, call, tmp_path = team
    mail = message("Contract", "The contract is attached.")
    mail.add_attachment(b"The salary band is ZEBRA-7731.", maintype="text", subtype="plain", filename="contract.txt")
    assert upload(call, "admin", "mail.eml", bytes(mail)).status_code == 200
    assert call("PUT", "/documents/mail.eml/groups", "admin", json={"groups": ["hr"]}).status_code == 200
    assert groups_of(call, "mail.eml#contract.txt") == ["hr"]  # the attachment follows its mail
    assert call("GET", "/documents/mail.eml%23contract.txt/text", "legal reader").status_code == 404
    asked = call("POST", "/search", "legal reader", json={"query": "salary band ZEBRA-7731", "retrieval": "bm25"})
    assert asked.status_code == 200 and "ZEBRA" not in json.dumps(asked.json()["results"]) and "contract" not in asked.text
    assert "ZEBRA-7731" in call("GET", "/documents/mail.eml%23contract.txt/text", "hr reader").text
    refused = call("PUT", "/documents/mail.eml%23contract.txt/groups", "admin", json={"groups": []})
    assert refused.status_code == 403 and "attachment of" in refused.json()["error"]  # change the mail, not a part of it


def public_mail_with_an_hr_attachment(qa, call) -> str:
    """rota.eml, uploaded by the public editor, whose attachment pay.txt only hr reads (as an index
    made before mails and attachments changed together may hold); returns the attachment's source."""
    mail = message("Rota", "The rota is attached.")
    mail.add_attachment(b"Night shifts are paid double ZEBRA-7731.", maintype="text", subtype="plain", filename="pay.txt")
    assert upload(call, "public editor", "rota.eml", bytes(mail)).status_code == 200
    pay = next(f["source"] for f in qa.store.files() if f["source"].endswith("#pay.txt"))
    qa.store.set_groups(pay, ["hr"])
    return pay


def test_deleting_a_mail_never_removes_an_attachment_the_caller_may_not_read(team) -> None:
    qa, call, _ = team
    pay = public_mail_with_an_hr_attachment(qa, call)
    refused = call("DELETE", "/documents/rota.eml", "public editor")
    assert refused.status_code == 403 and qa.store.file_hash(pay) is not None
    assert call("DELETE", "/documents/rota.eml", "admin").status_code == 200 and qa.store.file_hash(pay) is None


def test_a_group_change_or_replace_of_a_mail_never_opens_or_removes_an_attachment_the_caller_may_not_read(team) -> None:
    """Found in review: a no-op group change of a readable mail wrote its groups onto an attachment
    the caller could not read, and a replace deleted such an attachment."""
    qa, call, _ = team
    pay = public_mail_with_an_hr_attachment(qa, call)
    assert call("PUT", "/documents/rota.eml/groups", "public editor", json={"groups": []}).status_code == 403
    assert call("GET", "/documents/rota.eml%23pay.txt/text", "legal reader").status_code == 404
    replaced = upload(call, "public editor", "rota.eml", bytes(message("Rota", "No attachment now.")), replace=True)
    assert replaced.status_code == 200 and replaced.json()["documents"][0] == {**replaced.json()["documents"][0], "indexed": False, "replaced": None}
    assert qa.store.file_hash(pay) is not None and [d["name"] for d in call("GET", "/documents", "admin").json()["documents"]].count("rota.eml") == 1


@pytest.mark.parametrize("before", [[], ["hr", "legal"]])
def test_an_editor_cannot_hide_a_document_from_groups_it_is_not_in(team, before: list[str]) -> None:
    qa, call, _ = team
    assert upload(call, "admin", "policy.txt", b"The policy applies to all staff.", ",".join(before)).status_code == 200
    hidden = call("PUT", "/documents/policy.txt/groups", "hr editor", json={"groups": ["hr"]})
    assert hidden.status_code == 403 and groups_of(call, "policy.txt") == before
    replaced = upload(call, "hr editor", "policy.txt", b"The policy applies to hr only.", replace=True)
    assert replaced.status_code == 200 and groups_of(call, "policy.txt") == before  # a replaced file keeps its groups
    assert upload(call, "hr editor", "policy.txt", b"Hidden now?", "hr", replace=True).status_code == 403
    assert groups_of(call, "policy.txt") == before and "hr only" in call("GET", "/documents/policy.txt/text", "legal reader").text
    if before:  # within its own groups an editor may still act: add a group it holds, keep the others
        assert call("PUT", "/documents/policy.txt/groups", "hr editor", json={"groups": ["hr", "legal"]}).status_code == 200


def test_an_editor_may_only_add_its_own_groups_and_admins_may_do_anything(team) -> None:
    qa, call, _ = team
    assert upload(call, "hr editor", "notes.txt", b"The shed opens at nine.").status_code == 200
    assert groups_of(call, "notes.txt") == ["hr"]  # an editor's own groups by default
    assert call("PUT", "/documents/notes.txt/groups", "hr editor", json={"groups": ["hr", "ops"]}).status_code == 403
    assert call("PUT", "/documents/notes.txt/groups", "hr editor", json={"groups": []}).status_code == 403
    assert call("PUT", "/documents/notes.txt/groups", "admin", json={"groups": []}).status_code == 200


def same_answer(first: httpx.Response, second: httpx.Response, first_name: str, second_name: str) -> None:
    """Two answers equal once the names asked for are swapped out (and fresh upload folders)."""

    def plain(response: httpx.Response, name: str) -> str:
        text = re.sub(r"/[0-9a-f]{16}/", "/FOLDER/", response.text.replace(name, "NAME"))
        text = re.sub(r'"passages_total":[0-9]+', '"passages_total":0', text)  # counts what each caller may read, as it grows
        return re.sub(r'"(seconds|load|ocr|chunk|embed|store)":[0-9.e-]+', r'"\1":0', text)

    assert (first.status_code, plain(first, first_name)) == (second.status_code, plain(second, second_name))


def test_a_hidden_document_is_indistinguishable_from_an_absent_one(team) -> None:
    qa, call, _ = team
    assert upload(call, "hr editor", "salaries.txt", b"The salary band is ZEBRA-7731.").status_code == 200
    for method, path, extra in (("GET", "/documents/{}/text", {}), ("GET", "/documents/{}/boxes?start=0&end=5", {}),
                                ("GET", "/documents/{}/pages/1.png", {}), ("DELETE", "/documents/{}", {}),
                                ("PUT", "/documents/{}/groups", {"json": {"groups": ["legal"]}}),
                                ("POST", "/search", {"json": {"query": "salary", "filters": {"sources": ["{}"]}}})):  # fmt: skip
        asked = [call(method, path.format(name), "legal editor", **_filled(extra, name)) for name in ("salaries.txt", "absent.txt")]
        same_answer(*asked, "salaries.txt", "absent.txt")
    hidden, fresh = (upload(call, "legal editor", name, b"Legal's own notes.") for name in ("salaries.txt", "fresh.txt"))
    same_answer(hidden, fresh, "salaries.txt", "fresh.txt")
    assert "ZEBRA-7731" in call("GET", "/documents/salaries.txt/text", "hr reader").text  # hr's document is untouched
    assert "Legal's own notes" in call("GET", "/documents/salaries.txt/text", "legal reader").text
    assert "ZEBRA" not in call("GET", "/documents/salaries.txt/text", "legal reader").text


def test_a_name_with_a_nul_character_is_as_if_absent(team) -> None:
    qa, call, _ = team
    for name in ("a%00b.txt", "rules%00.txt"):
        assert call("GET", f"/documents/{name}/text", "legal reader").status_code == 404
    searched = call("POST", "/search", "legal reader", json={"query": "rules", "filters": {"sources": ["a\x00b.txt", "x/**\x00"]}})
    assert searched.status_code == 404


def _filled(extra: dict, name: str) -> dict:
    return {k: json.loads(json.dumps(v).replace("{}", name)) for k, v in extra.items()}  # the name in a request's JSON body


def test_a_change_checked_against_groups_an_admin_changes_meanwhile_is_refused(team, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found in review (two replicas on PostgreSQL): the check and the change ran in different
    transactions, so an editor's stale no-op could undo an admin's move (and leak the document), and
    a delete could remove a document moved out of the editor's reach. Now the change holds only
    while the document has the groups that were checked: the admin's change, injected between the
    two, makes it 409."""
    import rag_qa.pipeline as facade

    qa, call, _ = team
    plan = upload(call, "admin", "plan.txt", b"The plan is ZEBRA-7731.", "hr").json()["documents"][0]["source"]
    checked = facade.check_regroup

    def admin_moves_it_meanwhile(caller, old, new):
        checked(caller, old, new)
        qa.store.set_groups(plan, ["ops"])

    monkeypatch.setattr(facade, "check_regroup", admin_moves_it_meanwhile)
    assert call("PUT", "/documents/plan.txt/groups", "hr editor", json={"groups": ["hr"]}).status_code == 409
    assert groups_of(call, "plan.txt") == ["ops"] and call("GET", "/documents/plan.txt/text", "hr reader").status_code == 404
    monkeypatch.undo()
    qa.store.set_groups(plan, ["hr"])
    parts = facade.RagQA._parts

    def admin_moves_it_before_the_delete(self, name, groups, action):
        found = parts(self, name, groups, action)
        qa.store.set_groups(plan, ["ops"])
        return found

    monkeypatch.setattr(facade.RagQA, "_parts", admin_moves_it_before_the_delete)
    assert call("DELETE", "/documents/plan.txt", "hr editor").status_code == 409 and qa.store.file_hash(plan) is not None


def test_a_replace_that_meets_a_group_change_leaves_the_old_version(team, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found in review: an admin restricting a document while an editor replaced it published the
    new version with the old, public groups. The new version waits in a group no key holds, and
    takes the old one's place only if the old one still has the groups it was planned with."""
    qa, call, _ = team
    old = upload(call, "admin", "salaries.txt", b"The salary table is not out yet.").json()["documents"][0]["source"]
    index = qa.index

    def admin_restricts_it_meanwhile(paths, **kwargs):
        report = index(paths, **kwargs)
        assert not any(path in qa.readable_sources(["legal"]) for path in map(str, paths))  # the new version waits unread
        qa.store.set_groups(old, ["hr"])
        return report

    monkeypatch.setattr(qa, "index", admin_restricts_it_meanwhile)
    replaced = upload(call, "public editor", "salaries.txt", b"The salary band is ZEBRA-7731.", replace=True).json()
    assert replaced["documents"][0]["indexed"] is False and "not replaced" in replaced["files_skipped"][0]["reason"]
    assert "ZEBRA" not in call("POST", "/search", "legal reader", json={"query": "salary band", "retrieval": "bm25"}).text
    assert [f["source"] for f in qa.store.files()] == [old] and groups_of(call, "salaries.txt") == ["hr"]


def test_a_failed_replace_keeps_the_old_upload(team) -> None:
    qa, call, _ = team
    first = upload(call, "admin", "rules.txt", b"Tools go back within seven days.").json()["documents"][0]
    failed = upload(call, "admin", "rules.txt", b"", replace=True)  # an empty file cannot be indexed
    assert failed.status_code == 200 and failed.json()["documents"][0]["indexed"] is False
    kept = qa.store.original(first["source"]) if qa.store.keeps_originals else Path(first["source"]).read_bytes()  # PostgreSQL keeps uploads
    assert kept == b"Tools go back within seven days."
    assert "seven days" in call("GET", "/documents/rules.txt/text", "admin").text
    assert [d["source"] for d in call("GET", "/documents", "admin").json()["documents"]] == [first["source"]]
    done = upload(call, "admin", "rules.txt", b"Tools go back within nine days.", replace=True).json()["documents"][0]
    assert done["indexed"] and done["replaced"] == first["source"] and not Path(first["source"]).exists() and qa.store.original(first["source"]) is None
    assert "nine days" in call("GET", "/documents/rules.txt/text", "admin").text


def test_access_is_decided_by_the_facade_alone() -> None:
    """The service never reads the store's documents itself: every visibility decision goes
    through a facade method given the caller's groups (keys, the audit log and the rate counters
    kept in the store excepted: `rate.py` calls nothing on it but those counters)."""
    for module in SERVER.glob("*.py"):
        text = module.read_text("utf-8")
        if module.name == "rate.py":
            assert set(re.findall(r"\.store\.(\w+)\(", text)) == {"rate_hit", "rate_test", "rate_reset_in"}
            continue
        for line in text.splitlines():
            if re.search(r"\.store\b", line) and not any(allowed in line for allowed in ("KeyRing(", "audit.", ".store.path", "RateLimit(")):
                pytest.fail(f"{module.name} reads the store directly: {line.strip()}")


def test_the_facade_checks_groups_for_every_document_method(tmp_path: Path) -> None:
    with RagQA.open(tmp_path / "index") as qa:
        (tmp_path / "a.txt").write_text("Alpha is the first letter.")
        qa.index([tmp_path / "a.txt"], groups=["hr"])
        source = str(tmp_path / "a.txt")
        for method in (lambda: qa.show(source, groups=["legal"]), lambda: qa.boxes(source, 0, 3, groups=["legal"]),
                       lambda: qa.delete(source, groups=["legal"]), lambda: qa.set_groups(source, [], caller=["legal"]),
                       lambda: qa.content_hash(source, ["legal"])):  # fmt: skip
            with pytest.raises(LookupError):
                method()
        with pytest.raises(AccessDenied):
            qa.set_groups(source, ["legal"], caller=["hr"])
        assert qa.readable_sources(["legal"]) == [] and qa.documents(["legal"]) == []
