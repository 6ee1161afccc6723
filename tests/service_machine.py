"""A hypothesis state machine over the team service (in process, through Starlette's TestClient):
random keys (created and revoked over HTTP and on the command line), uploads with groups,
group changes, deletes, syncs of a watched folder (moves, prunes, a folder that vanishes and comes
back) and requests by every kind of caller; after each step the invariants of `service_checks`
are checked against what the index holds. Used by tests/test_service_state.py (CI-sized) and
benchmarks/service_state.py (long runs).

Each document's text holds a secret word of its own (ZEBRA0007); its file name comes from a small
set, so names are reused, replaced and probed."""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, multiple, rule

from rag_qa.ingest.mail import file_of
from rag_qa.naming import within
from service_checks import ROLES, STRANGERS, Caller, Doc, Exchange, Key, authenticated, broken, check_attachments, check_changes, check_exchange, check_same_as_absent, may_read, snapshot

GROUPS = ("hr", "legal", "ops")
UPLOADS = ("alder.txt", "birch.txt", "memo.eml")  # file names uploads use (the mail has an attachment, with a word of its own)
FOLDER_FILES = ("north/rowan.txt", "north/maple.txt", "south/rowan.txt")  # files of the watched folder
SUBFOLDERS = ("north", "south")
NEVER = "quince.txt"  # a name never indexed: what a hidden document must look like
WORDS = ("ZEBRA", "OKAPI", "QUOKKA", "TAPIR", "IBEX", "LEMUR", "MARMOT", "NARWHAL")  # none is part of another
NAMES = UPLOADS + FOLDER_FILES + (NEVER,)
VIEWS = ("text", "boxes?start=0&end=5", "pages/1.png")  # what a reader may see of one document
group_sets = st.sets(st.sampled_from(GROUPS), max_size=2).map(lambda g: tuple(sorted(g)))
callers = st.one_of(*[Bundle("keys")] * 3, st.sampled_from(STRANGERS))  # mostly keys, a quarter strangers


@dataclass
class World:
    """One service over a fresh index: its RagQA, an in-process client, the upload folder and a
    watched folder of files that the operator syncs."""

    qa: object
    client: object
    uploads: Path
    folder: Path
    root: Path

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.qa.close()
        shutil.rmtree(self.root, ignore_errors=True)


def open_world(location: str, embedder, reader, scratch: str | None = None) -> World:
    """A service over a fresh index at `location` (a folder to create, or a PostgreSQL URL)."""
    from starlette.testclient import TestClient

    from rag_qa.config import ChunkingConfig, IndexSettings, ServerConfig, VectorIndexConfig
    from rag_qa.pipeline import RagQA
    from rag_qa.server import create_app
    from rag_qa.store import open_store

    root = Path(tempfile.mkdtemp(prefix="service-state-", dir=scratch)).resolve()
    for sub in SUBFOLDERS:
        (root / "kb" / sub).mkdir(parents=True)
    settings = IndexSettings(chunking=ChunkingConfig(max_tokens=48, overlap_tokens=4), vector_index=VectorIndexConfig(index_type="flat"))
    qa = RagQA(open_store(location if "://" in location else str(root / location), settings), embedder, reader=reader)
    limits = {"rate_limit": "", "auth_failures": ""}  # one client makes every request: no limit may answer 429 for (c) and (d)
    known = {f.name for f in fields(ServerConfig)}
    config = ServerConfig(upload_dir=str(root / "uploads"), allowed_hosts=("testserver",), **{k: v for k, v in limits.items() if k in known})
    client = TestClient(create_app(qa, config), raise_server_exceptions=False)
    client.__enter__()
    return World(qa, client, root / "uploads", root / "kb", root)


def as_it_was(caller: Caller) -> Caller:
    """The caller as it is now (a key revoked later is judged as it was when it called)."""
    return replace(caller) if isinstance(caller, Key) else caller


def note(marker: str) -> str:
    return f"{marker} is the code word of this note. Keep {marker} safe and tell nobody."


def upload_bytes(name: str, words: Callable[[], str]) -> bytes:
    """A note, or for a mail a message whose body and attachment each hold a secret word."""
    if not name.endswith(".eml"):
        return note(words()).encode()
    from email.message import EmailMessage

    mail = EmailMessage()
    mail["Subject"], mail["From"], mail["To"] = "A note", "ines@example.org", "team@example.org"
    mail.set_content(note(words()))
    mail.add_attachment(note(words()).encode(), maintype="text", subtype="plain", filename="contract.txt")
    return bytes(mail)


class ServiceMachine(RuleBasedStateMachine):
    """Subclassed by `machine_for` with the world to open for each example."""

    open_world: Callable[[], World]
    keys = Bundle("keys")
    steps_run = 0  # steps checked, over every example (what the benchmark reports)

    def __init__(self) -> None:
        super().__init__()
        self.world = type(self).open_world()
        self.counter = itertools.count(1)
        self.docs: dict[str, Doc] = {}
        self.remembered: dict[str, tuple[str, ...]] = {}  # secret word -> groups when last indexed
        self.exchanges: list[Exchange] = []
        self.actor: Caller | str | None = None
        self.removed: list[tuple[str, str]] = []  # folder files the operator deleted: (name, text)

    def teardown(self) -> None:
        self.world.close()

    # ------------------------------------------------------------ plumbing
    def send(self, caller: Caller, method: str, path: str, **request) -> Exchange:
        header = f"Bearer {caller.token}" if isinstance(caller, Key) else caller.header
        headers = {"Authorization": header} if header else {}
        response = self.world.client.request(method, path, headers=headers, **request)
        files = request.get("files") or []
        sent = " ".join([path, json.dumps(request.get("json")), json.dumps(request.get("data"))] + [f"{n} {d.decode()}" for _, (n, d) in files])
        exchange = Exchange(as_it_was(caller), method, path, sent, response.status_code, response.text, dict(response.headers))
        self.exchanges.append(exchange)
        return exchange

    def marker(self) -> str:
        n = next(self.counter)
        return f"{WORDS[n % len(WORDS)]}{n:04d}"

    def address(self, name: str) -> str:
        """How a request names a document: an upload by its file name, a folder file by its path."""
        return str(self.world.folder / name) if "/" in name else name

    def named(self, name: str) -> list[Doc]:
        """The indexed documents a request naming `name` may mean: the folder file, or every upload
        of that file name (the service may keep each upload in a folder of its own)."""
        if "/" in name:
            doc = self.docs.get(str(self.world.folder / name))
            return [doc] if doc is not None else []
        return [d for d in self.docs.values() if within(d.source, [str(self.world.uploads)]) and Path(d.source).name == name]

    def twin(self, name: str) -> str:
        """A name of the same form (folder, type) that was never indexed."""
        never = Path(NEVER).stem + Path(name).suffix
        return self.address(str(Path(name).parent / never) if "/" in name else never)

    def hidden(self, caller: Caller, name: str) -> Doc | None:
        """A document named `name` when the caller holds a valid key that may read none of them."""
        docs = self.named(name)
        return docs[0] if docs and authenticated(caller) and not any(may_read(caller, d.groups) for d in docs) else None

    def probe(self, caller: Caller, name: str, exchange: Exchange, again: Callable[[str], Exchange]) -> None:
        """(b): when `name` is hidden from the caller, the same request about a name never indexed."""
        doc = self.hidden(caller, name)
        if doc is not None:
            twin = self.twin(name)
            check_same_as_absent(exchange, again(twin), self.address(name), twin, doc)

    def sync(self, *paths: Path) -> None:
        from rag_qa.errors import RagQAError

        try:
            self.world.qa.index([str(p) for p in paths or (self.world.folder,)], prune=True)
        except RagQAError:
            pass  # a sync that refuses (a vanished root, too much to prune) is one of the outcomes

    # ------------------------------------------------------------ keys
    def key_on_command_line(self, role: str, groups: tuple[str, ...]) -> Key:
        from rag_qa.keys import KeyRing

        label = f"{role}{next(self.counter)}{list(groups)}"
        record, token = KeyRing(self.world.qa.store).create(role, groups, label)
        return Key(label, role, groups, token, record.id)

    @initialize(target=keys, documents=st.tuples(group_sets, group_sets, group_sets))
    def first_admin(self, documents: tuple[tuple[str, ...], ...]) -> Key:
        """The admin key made on the command line, and what it starts the index with: two uploads
        and a folder file, with groups."""
        admin = self.key_on_command_line("admin", ())
        self.actor = as_it_was(admin)
        for name, groups in zip(UPLOADS, documents):
            self.send(admin, "POST", "/documents", files=[("files", (name, upload_bytes(name, self.marker)))], data={"groups": ",".join(groups)})
        (self.world.folder / FOLDER_FILES[0]).write_text(note(self.marker()), "utf-8")
        self.sync()
        self.send(admin, "PUT", f"/documents/{self.address(FOLDER_FILES[0])}/groups", json={"groups": list(documents[2])})
        return admin

    @initialize(target=keys, groups=group_sets)
    def first_editor(self, groups: tuple[str, ...]) -> Key:
        return self.key_on_command_line("editor", groups)

    @initialize(target=keys, groups=group_sets)
    def second_editor(self, groups: tuple[str, ...]) -> Key:
        return self.key_on_command_line("editor", groups)

    @initialize(target=keys, groups=group_sets)
    def first_reader(self, groups: tuple[str, ...]) -> Key:
        return self.key_on_command_line("reader", groups)

    @rule(target=keys, creator=st.none() | callers, role=st.sampled_from(ROLES), groups=group_sets)
    def create_key(self, creator: Caller | None, role: str, groups: tuple[str, ...]):
        """A key made over HTTP by `creator`, or on the command line (None)."""
        if creator is None:
            self.actor = "operator"
            return self.key_on_command_line(role, groups)
        self.actor = as_it_was(creator)
        label = f"{role}{next(self.counter)}{list(groups)}"
        made = self.send(creator, "POST", "/keys", json={"role": role, "groups": list(groups), "name": label})
        if made.status != 200:
            return multiple()
        record = json.loads(made.body)
        return Key(label, role, groups, record["key"], record["id"])

    @rule(revoker=st.none() | callers, key=keys)
    def revoke_key(self, revoker: Caller | None, key: Key) -> None:
        """A key revoked over HTTP by `revoker`, or on the command line (None)."""
        if revoker is None:
            from rag_qa.keys import KeyRing

            self.actor = "operator"
            KeyRing(self.world.qa.store).revoke(key.id)
            key.revoked = True
            return
        self.actor = as_it_was(revoker)
        if self.send(revoker, "DELETE", f"/keys/{key.id}").status == 200:
            key.revoked = True

    # ------------------------------------------------------------ documents over HTTP
    @rule(caller=callers, name=st.sampled_from(UPLOADS), groups=st.none() | group_sets, replace=st.booleans())
    def upload(self, caller: Caller, name: str, groups: tuple[str, ...] | None, replace: bool) -> None:
        self.actor = as_it_was(caller)
        form = {"replace": str(replace).lower()} | ({"groups": ",".join(groups)} if groups is not None else {})

        def send(file_name: str) -> Exchange:
            return self.send(caller, "POST", "/documents", files=[("files", (file_name, upload_bytes(file_name, self.marker)))], data=form)

        doc = self.hidden(caller, name)
        uploaded = send(name)
        if doc is not None:  # (b): as an upload of a name never indexed (which is then taken away again)
            never = self.twin(name)
            check_same_as_absent(uploaded, send(never), name, never, doc, self.world.uploads)
            self.take_away(never)

    def take_away(self, name: str) -> None:
        """Remove the uploads of `name` behind the service's back (the harness, not a step)."""
        for row in self.world.qa.store.files():
            if within(row["source"], [str(self.world.uploads)]) and Path(file_of(row["source"])).name == name:
                self.world.qa.store.delete_source(row["source"])
        for path in self.world.uploads.rglob(name):
            path.unlink()

    @rule(caller=callers, name=st.sampled_from(NAMES), groups=group_sets)
    def set_groups(self, caller: Caller, name: str, groups: tuple[str, ...]) -> None:
        self.actor = as_it_was(caller)

        def send(address: str) -> Exchange:
            return self.send(caller, "PUT", f"/documents/{address}/groups", json={"groups": list(groups)})

        self.probe(caller, name, send(self.address(name)), send)

    @rule(caller=callers, name=st.sampled_from(NAMES))
    def delete(self, caller: Caller, name: str) -> None:
        self.actor = as_it_was(caller)

        def send(address: str) -> Exchange:
            return self.send(caller, "DELETE", f"/documents/{address}")

        deleted = send(self.address(name))
        self.probe(caller, name, deleted, send)
        if deleted.status == 200 and "/" in name:
            (self.world.folder / name).unlink(missing_ok=True)  # as its owner would: else the next sync adds it again

    # ------------------------------------------------------------ reading
    @rule(caller=callers, name=st.sampled_from(NAMES), view=st.sampled_from(VIEWS))
    def read_text(self, caller: Caller, name: str, view: str) -> None:
        self.actor = as_it_was(caller)

        def send(address: str) -> Exchange:
            return self.send(caller, "GET", f"/documents/{address}/{view}")

        shown = send(self.address(name))
        self.probe(caller, name, shown, send)
        docs = self.named(name)
        doc = docs[0] if len(docs) == 1 else None
        if doc is not None and may_read(caller, doc.groups) and view == "text":
            if shown.status != 200 or doc.marker not in shown.body:
                broken(f"(a) {caller!r} may read {doc.source} (groups {list(doc.groups)}) but was not shown it\n  {shown.describe()}")

    @rule(caller=callers, path=st.sampled_from(["/documents", "/health", "/", "/keys", "/audit"]))
    def look(self, caller: Caller, path: str) -> None:
        self.actor = as_it_was(caller)
        self.send(caller, "GET", path)

    @rule(
        caller=callers,
        endpoint=st.sampled_from(["/ask", "/search"]),
        mode=st.sampled_from([None, "dense", "bm25", "hybrid"]),
        about=st.none() | st.integers(0, 20),
        form=st.sampled_from([None, "name", "glob", "*", "**"]),
        name=st.sampled_from(NAMES),
    )  # fmt: skip
    def query(self, caller: Caller, endpoint: str, mode: str | None, about: int | None, form: str | None, name: str) -> None:
        """A question (or search), maybe about one indexed document's secret word, maybe filtered to
        a document (by name or a glob), or to everything (`*`, `**`)."""
        self.actor = as_it_was(caller)
        words = sorted(d.marker for d in self.docs.values() if d.marker)
        text = f"What is {words[about % len(words)]}?" if about is not None and words else "What is the code word?"

        def send(named: str) -> Exchange:
            sources = {None: None, "name": [named], "glob": [f"**/{Path(named).name}"], "*": ["*"], "**": ["**"]}[form]
            body = {"question" if endpoint == "/ask" else "query": text, "top_k": 3}
            body |= {"filters": {"sources": sources}} if sources else {}
            body |= {"retrieval": mode} if endpoint == "/search" and mode else {}
            return self.send(caller, "POST", endpoint, json=body)

        asked = send(self.address(name))
        same_name = [d for d in self.docs.values() if Path(d.source).name == Path(name).name]  # what the glob matches
        if form == "name" or form == "glob" and not any(may_read(caller, d.groups) for d in same_name):
            self.probe(caller, name, asked, send)

    # ------------------------------------------------------------ the operator's watched folder
    @rule(change=st.sampled_from(["write", "move", "remove", "bring back", "unmount"]), name=st.sampled_from(FOLDER_FILES), to=st.sampled_from(SUBFOLDERS))
    def change_folder(self, change: str, name: str, to: str) -> None:
        """The operator changes the watched folder, then syncs it: a new file or a new version of
        one, a move to `to`, a removal, the last removed file back as it was (a restore, an undo),
        or the folder `to` briefly gone (an unmounted share) while it is synced."""
        self.actor = "operator"
        path, target = self.world.folder / name, self.world.folder / to / Path(name).name
        if change == "write":
            path.write_text(note(self.marker()), "utf-8")
        elif change == "move" and path.exists() and not target.exists():
            path.rename(target)
        elif change == "remove" and path.exists():
            self.removed.append((name, path.read_text("utf-8")))
            path.unlink()
        elif change == "bring back" and self.removed and not (self.world.folder / self.removed[-1][0]).exists():
            name, text = self.removed.pop()
            (self.world.folder / name).write_text(text, "utf-8")
        elif change == "unmount":
            folder, away = self.world.folder / to, self.world.root / f"away-{to}"
            folder.rename(away)
            self.sync(folder)
            away.rename(folder)
        else:
            return
        self.sync()

    # ------------------------------------------------------------ after every step
    @invariant()
    def nothing_leaked_or_changed_that_should_not_be(self) -> None:
        ServiceMachine.steps_run += 1
        after = snapshot(self.world.qa.store)
        exchanges, actor, before = self.exchanges, self.actor, self.docs
        self.exchanges, self.actor, self.docs = [], None, after
        for exchange in exchanges:
            check_exchange(exchange, before, after)
        check_changes(actor, before, after, self.remembered)
        check_attachments(after)
        self.remembered.update({d.marker: d.groups for d in after.values() if d.marker})


def machine_for(open_world: Callable[[], World]) -> type[ServiceMachine]:
    """The machine class whose examples each open a world with `open_world`."""
    return type("ServiceStateMachine", (ServiceMachine,), {"open_world": staticmethod(open_world)})
