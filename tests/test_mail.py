"""E-mail (.eml) written with the standard library's `email` package as a mail client writes it,
and Outlook .msg files written to the published format (tests/msg_files.py): headers and the
plain body as text, attachments of supported types indexed as documents of their
own (`mail.eml#name`) with exact offsets, the rest reported; an attached mail's attachments not
followed; a changed or moved mail carries its attachments along; hostile mails refused."""

from __future__ import annotations

import shutil

import pytest
from helpers import READER, load_file, needs_shared
from broken_files import text_pdf
from mails import mail_with_attachments, message
from msg_files import outlook_msg

from rag_qa import RagQA
from rag_qa.config import ReaderConfig
from rag_qa.errors import LoadError, NotFoundError
from rag_qa.ingest.loaders import unique_names
from rag_qa.ingest.mail import MAX_ATTACHMENTS, file_of, safe_name
from rag_qa.naming import MAX_NAME_CHARS


def test_a_mail_is_its_headers_and_plain_body_and_its_attachments_are_documents(tmp_path):
    mail = load_file(mail_with_attachments(tmp_path / "meeting.eml", tmp_path))
    assert mail.text.startswith("Subject: Volunteer meeting\nFrom: Ines Duarte <ines@harborview.example>\nTo: volunteers@harborview.example\n")
    assert "The volunteer meeting is in the back room of the community centre." in mail.text and "<p>" not in mail.text
    names = [a.source.rpartition("#")[2] for a in mail.attachments]
    assert names == ["rota.pdf", "deposits.csv", "rota (2).pdf", "attachment-5.eml"]
    assert all(a.attached_to == mail.source and a.source == f"{mail.source}#{n}" for a, n in zip(mail.attachments, names))
    assert "covered by Tomasz" in mail.attachments[0].text and mail.attachments[0].page_starts == (0,)
    assert "Tool: Kayak; Deposit: 80" in mail.attachments[1].text
    assert "north pier" in mail.attachments[3].text and "Nested attachments" not in mail.attachments[3].text
    assert any(w.startswith("attachment logo.png not indexed: unsupported format .png") for w in mail.warnings)
    assert any(w.startswith("attachment attachment-5.eml: 1 attachment(s) not indexed") for w in mail.warnings)


def test_an_html_only_mail_is_read_as_visible_text(tmp_path):
    mail = message("Closing", "")
    mail.set_content("<html><head><style>p{color:red}</style></head><body><p>We close at <b>five</b> on Sundays.</p></body></html>", subtype="html")
    (tmp_path / "closing.eml").write_bytes(bytes(mail))
    text = load_file(tmp_path / "closing.eml").text
    assert text.endswith("We close at five on Sundays.") and "color" not in text


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"just some text, renamed to .eml\n", "not an e-mail message"),
        (b"\x00\x01\x02garbage" * 50, "not an e-mail message"),
    ],
    ids=["renamed-text", "binary"],
)
def test_a_file_that_is_not_a_mail_is_refused(tmp_path, content, reason):
    (tmp_path / "fake.eml").write_bytes(content)
    with pytest.raises(LoadError, match=reason):
        load_file(tmp_path / "fake.eml")


def test_a_mail_with_too_many_attachments_is_refused(tmp_path):
    mail = message("Spam", "Many files.")
    for n in range(MAX_ATTACHMENTS + 1):
        mail.add_attachment(b"x", maintype="text", subtype="plain", filename=f"{n}.txt")
    (tmp_path / "many.eml").write_bytes(bytes(mail))
    with pytest.raises(LoadError, match=f"more than {MAX_ATTACHMENTS} attachments"):
        load_file(tmp_path / "many.eml")


def test_an_outlook_message_reads_like_a_mail_with_its_attachments(tmp_path):
    rota = text_pdf(tmp_path / "rota.pdf", "The Sunday desk shift is covered by Amara in October.").read_bytes()
    notes = ("Kayaks must be rinsed after every trip. " * 150).encode()  # over 4 kB: kept outside the compound file's mini stream
    files = [("rota.pdf", rota), ("notes.txt", notes)]
    mail = load_file(outlook_msg(tmp_path / "rota.msg", "October rota", "The October rota is attached.", files, items=["Team meeting"]))
    assert mail.text == (
        "Subject: October rota\nFrom: \"Ines Duarte\" <ines@harborview.example>\nTo: Volunteers\nDate: 2024-09-03 07:15:00+00:00\n\n"
        "The October rota is attached."
    )
    assert [(a.source.rpartition("#")[2], a.attached_to) for a in mail.attachments] == [("rota.pdf", mail.source), ("notes.txt", mail.source)]
    assert "covered by Amara" in mail.attachments[0].text and mail.attachments[1].text == notes.decode()
    assert file_of(mail.attachments[0].source) == mail.source
    assert mail.warnings == ("attachment Team meeting not indexed: an attached Outlook item or a link, not a file",)


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda path: path.write_text("A text file named .msg"), "not an Outlook message"),
        (lambda path: outlook_msg(path, "Secret", "Encrypted body", kind="IPM.Note.SMIME"), "encrypted or rights-protected"),
        (lambda path: path.write_bytes(outlook_msg(path, "Cut", "A body.").read_bytes()[:1536]), "malformed Outlook message"),
    ],
    ids=["renamed", "encrypted", "truncated"],
)
def test_a_bad_outlook_message_is_refused_with_its_reason(tmp_path, make, reason):
    make(tmp_path / "bad.msg")
    with pytest.raises(LoadError, match=reason):
        load_file(tmp_path / "bad.msg")


def test_attachment_names_are_safe_and_unique():
    assert safe_name("../../etc/passwd", 1, "text/plain") == "passwd"
    assert safe_name("C:\\Users\\x\\report#1.pdf", 2, "application/pdf") == "report_1.pdf"
    assert safe_name("", 3, "message/rfc822") == "attachment-3.eml" and safe_name(" . ", 4, "image/png") == "attachment-4"
    long = safe_name("minutes " * 40 + ".pdf", 5, "application/pdf")  # cut to the limit, its type kept
    assert long.endswith(".pdf") and len(long) == MAX_NAME_CHARS
    assert unique_names(["a.pdf", "b.csv", "a.pdf", "a.pdf"]) == ["a.pdf", "b.csv", "a (2).pdf", "a (3).pdf"]
    assert file_of("/docs/meeting.eml#rota.pdf") == "/docs/meeting.eml" and file_of("/docs/notes#1.txt") == "/docs/notes#1.txt"
    assert file_of("/docs/Rota.MSG#a.pdf") == "/docs/Rota.MSG"


@pytest.mark.integration
def test_attachments_answer_with_exact_offsets_and_follow_their_mail(tmp_path):
    needs_shared(READER)
    folder = tmp_path / "docs"
    folder.mkdir()
    meeting = mail_with_attachments(folder / "meeting.eml", tmp_path)
    rota = text_pdf(tmp_path / "october.pdf", "The Sunday desk shift is covered by Amara in October.").read_bytes()
    october = outlook_msg(folder / "october.msg", "October rota", "The October rota is attached.", [("rota.pdf", rota)])
    with RagQA.open(tmp_path / "index", reader=ReaderConfig(model=str(READER))) as qa:
        report = qa.index([folder], prune=True)
        assert report.files_indexed == 2 and report.attachments_indexed == 5 and report.removed == []
        assert len(report.warnings) == 2 and report.files_skipped == []
        for question, answer, source in [
            ("Where is the volunteer meeting?", "back room", "meeting.eml"),
            ("Who covers the Saturday desk shift in September?", "Tomasz", "meeting.eml#rota.pdf"),
            ("Where does the kayak trip leave from?", "north pier", "meeting.eml#attachment-5.eml"),
            ("Who covers the Sunday desk shift in October?", "Amara", "october.msg#rota.pdf"),
        ]:
            best = qa.ask(question).answers[0]
            assert answer in best.text and best.source.endswith(source), (question, best)
            assert qa.show(best.source).text[best.start : best.end] == best.text
        rota = f"{meeting.resolve()}#rota.pdf"
        assert qa.boxes(rota, 0, 5) == []  # an attachment is not a file on disk: no page view
        with pytest.raises(NotFoundError, match="is an attachment of"):
            qa.page_image(rota, 1)
        assert qa.index([folder], prune=True).files_unchanged == 2  # nothing removed: the attachments belong to the mail

        moved = folder / "archive" / "meeting.eml"
        moved.parent.mkdir()
        shutil.move(meeting, moved)
        report = qa.index([folder], prune=True)
        assert report.moved == [{"from": str(meeting.resolve()), "to": str(moved.resolve())}] and report.removed == []
        sources = {f["source"] for f in qa.store.files()}
        assert f"{moved.resolve()}#rota.pdf" in sources and len(sources) == 7

        moved.write_bytes(bytes(message("Volunteer meeting", "The meeting moved to the workshop.")))  # attachments dropped
        report = qa.index([folder], prune=True)
        assert report.changed == [str(moved.resolve())] and report.attachments_indexed == 0
        assert {f["source"] for f in qa.store.files()} == {str(moved.resolve()), str(october.resolve()), f"{october.resolve()}#rota.pdf"}
        assert qa.delete(october) > 1 and {f["source"] for f in qa.store.files()} == {str(moved.resolve())}  # the attachment went with its mail
