"""Outlook .msg files for the mail tests. No maintained Python library writes .msg, so this writes
the two published formats it is made of, as Outlook does: a Compound File ([MS-CFB] version 3:
512-byte sectors, a FAT, a directory, small streams in a mini stream of 64-byte sectors) holding a
message's property streams ([MS-OXMSG]: `__properties_version1.0` and one `__substg1.0_` stream
per string or binary property; recipients and attachments in storages of their own). The files
are read back with olefile in the tests, so a mistake here shows up there, not as a passing test.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

SECTOR, MINI_SECTOR, MINI_CUTOFF = 512, 64, 4096
FREE, END_OF_CHAIN, FAT_SECTOR, NO_STREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
STRING, BINARY, INT32, TIME = 0x001F, 0x0102, 0x0003, 0x0040  # property types: UTF-16LE string, bytes, 32-bit integer, FILETIME
SUBJECT, SENDER_NAME, SENDER_EMAIL, DISPLAY_TO, BODY, MESSAGE_CLASS, SUBMIT_TIME = 0x0037, 0x0C1A, 0x0C1F, 0x0E04, 0x1000, 0x001A, 0x0039
SENT = 1725347700  # 2024-09-03 07:15 UTC
ATTACH_FILENAME, ATTACH_LONG_FILENAME, ATTACH_DATA, ATTACH_METHOD, ATTACH_MIME = 0x3704, 0x3707, 0x3701, 0x3705, 0x370E
BY_VALUE, EMBEDDED = 1, 5  # attach methods: the file's bytes, an Outlook item


@dataclass
class Entry:
    """A storage (children) or a stream (data) of the compound file."""

    name: str
    data: bytes | None = None
    children: list["Entry"] = field(default_factory=list)


def compound_file(root: list[Entry]) -> bytes:
    """A version 3 compound file whose root storage holds `root`."""
    entries: list[Entry] = []  # directory order: the root first
    stream_entries: list[Entry] = []

    def number(entry: Entry) -> None:
        entries.append(entry)
        if entry.data is not None:
            stream_entries.append(entry)
        for child in entry.children:
            number(child)

    top = Entry("Root Entry", None, root)
    number(top)
    index = {id(e): i for i, e in enumerate(entries)}
    mini = b"".join(_padded(e.data, MINI_SECTOR) for e in stream_entries if len(e.data) < MINI_CUTOFF)  # type: ignore[arg-type]
    big = [e for e in stream_entries if len(e.data) >= MINI_CUTOFF]  # type: ignore[arg-type]
    mini_fat, mini_start, position = [], {}, 0
    for e in stream_entries:
        if 0 < len(e.data) < MINI_CUTOFF:  # type: ignore[arg-type]
            count = -(-len(e.data) // MINI_SECTOR)  # type: ignore[operator]
            mini_start[id(e)] = position
            mini_fat += [position + k + 1 for k in range(count - 1)] + [END_OF_CHAIN]
            position += count
    directory_size = 128 * len(entries)
    parts = [("dir", bytes(-(-directory_size // SECTOR) * SECTOR)), ("minifat", _padded(_u32s(mini_fat), SECTOR) if mini_fat else b""), ("mini", _padded(mini, SECTOR))]
    parts += [(f"big{i}", _padded(e.data, SECTOR)) for i, e in enumerate(big)]  # type: ignore[arg-type]
    data_sectors = sum(len(p) // SECTOR for _, p in parts)
    fat_sectors = 1
    while fat_sectors * SECTOR // 4 < fat_sectors + data_sectors:
        fat_sectors += 1
    fat = [FAT_SECTOR] * fat_sectors
    starts = {}
    for name, part in parts:
        count = len(part) // SECTOR
        starts[name] = len(fat) if count else END_OF_CHAIN
        fat += [len(fat) + k + 1 for k in range(count - 1)] + ([END_OF_CHAIN] if count else [])
    fat += [FREE] * (fat_sectors * SECTOR // 4 - len(fat))
    directory = b"".join(
        _dir_entry(e, entries, index, start=_start(e, top, starts, mini_start, big), size=len(mini) if e is top else len(e.data or b""))
        for e in entries
    )
    body = _u32s(fat) + _padded(directory, SECTOR) + b"".join(p for name, p in parts if name != "dir")
    header = _header(fat_sectors, starts["dir"], starts["minifat"], len(parts[1][1]) // SECTOR)
    return header + body


def _start(entry: Entry, top: Entry, starts: dict[str, int], mini_start: dict[int, int], big: list[Entry]) -> int:
    if entry is top:
        return starts["mini"]
    if entry.data is None:
        return 0
    if not entry.data:
        return END_OF_CHAIN
    if len(entry.data) < MINI_CUTOFF:
        return mini_start[id(entry)]
    return starts[f"big{next(i for i, e in enumerate(big) if e is entry)}"]


def _header(fat_sectors: int, first_dir: int, first_mini_fat: int, mini_fat_sectors: int) -> bytes:
    difat = list(range(fat_sectors)) + [FREE] * (109 - fat_sectors)
    return (
        bytes.fromhex("D0CF11E0A1B11AE1") + bytes(16) + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + bytes(6)
        + struct.pack("<IIIIIIIII", 0, fat_sectors, first_dir, 0, MINI_CUTOFF, first_mini_fat if mini_fat_sectors else END_OF_CHAIN,
                      mini_fat_sectors, END_OF_CHAIN, 0)
        + _u32s(difat)
    )  # fmt: skip


def _dir_entry(entry: Entry, entries: list[Entry], index: dict[int, int], start: int = 0, size: int = 0) -> bytes:
    """A directory entry; a storage's children hang off it as a chain of right siblings in the
    order the format compares names (length first, then upper case): a valid, if unbalanced, tree."""
    name = entry.name.encode("utf-16-le") + b"\0\0"
    kind = 5 if index[id(entry)] == 0 else (2 if entry.data is not None else 1)
    children = sorted(entry.children, key=lambda c: (len(c.name), c.name.upper()))
    child = index[id(children[0])] if children else NO_STREAM
    right = NO_STREAM
    parent = next((p for p in entries if any(c is entry for c in p.children)), None)
    if parent is not None:
        siblings = sorted(parent.children, key=lambda c: (len(c.name), c.name.upper()))
        at = next(i for i, s in enumerate(siblings) if s is entry)
        right = index[id(siblings[at + 1])] if at + 1 < len(siblings) else NO_STREAM
    return name.ljust(64, b"\0") + struct.pack("<HBBIII", len(name), kind, 1, NO_STREAM, right, child) + bytes(16 + 4 + 16) + struct.pack("<IQ", start, size)


def _u32s(values: list[int]) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def _padded(data: bytes, unit: int) -> bytes:
    return data + bytes(-len(data) % unit)


def properties(values: dict[tuple[int, int], object], header: bytes) -> list[Entry]:
    """The property streams of one object: the fixed-size entries stream and a stream per variable one."""
    entries, streams = [header], []
    for (pid, ptype), value in sorted(values.items()):
        tag = struct.pack("<HH", ptype, pid)
        if ptype == INT32:
            entries.append(tag + struct.pack("<IiI", 0x6, value, 0))  # type: ignore[arg-type]
            continue
        if ptype == TIME:  # 100 ns ticks since 1601
            entries.append(tag + struct.pack("<IQ", 0x6, (value + 11_644_473_600) * 10_000_000))  # type: ignore[operator]
            continue
        data = value.encode("utf-16-le") if ptype == STRING else value  # type: ignore[union-attr]
        size = len(data) + (2 if ptype == STRING else 0)  # type: ignore[arg-type]  # a string's size counts a terminator its stream does not hold
        entries.append(tag + struct.pack("<III", 0x6, size, 0))
        streams.append(Entry(f"__substg1.0_{pid:04X}{ptype:04X}", data))  # type: ignore[arg-type]
    return [Entry("__properties_version1.0", b"".join(entries)), *streams]


def outlook_msg(
    path: Path, subject: str, body: str, attachments: list[tuple[str, bytes]] = (), kind: str = "IPM.Note", items: list[str] = ()  # type: ignore[assignment]
) -> Path:
    """A plain-text Outlook message from Ines Duarte to Volunteers with attachments by value, and
    `items`: names of attached Outlook items (attach method 5, an embedded message: no file bytes)."""
    top = {(MESSAGE_CLASS, STRING): kind, (SUBJECT, STRING): subject, (SENDER_NAME, STRING): "Ines Duarte", (SUBMIT_TIME, TIME): SENT,
           (SENDER_EMAIL, STRING): "ines@harborview.example", (DISPLAY_TO, STRING): "Volunteers", (BODY, STRING): body}  # fmt: skip
    count = len(attachments) + len(items)
    root = properties(top, bytes(8) + struct.pack("<IIII", 0, count, 0, count) + bytes(8))  # type: ignore[arg-type]
    for number, (name, data) in enumerate(attachments):
        values = {(ATTACH_METHOD, INT32): BY_VALUE, (ATTACH_LONG_FILENAME, STRING): name, (ATTACH_FILENAME, STRING): name[:12], (ATTACH_DATA, BINARY): data}
        root.append(Entry(f"__attach_version1.0_#{number:08X}", None, properties(values, bytes(8))))  # type: ignore[arg-type]
    for number, name in enumerate(items, len(attachments)):
        values = {(ATTACH_METHOD, INT32): EMBEDDED, (ATTACH_LONG_FILENAME, STRING): name}
        root.append(Entry(f"__attach_version1.0_#{number:08X}", None, properties(values, bytes(8))))  # type: ignore[arg-type]
    root.append(Entry("__nameid_version1.0", None, [Entry(f"__substg1.0_{n}", b"") for n in ("00020102", "00030102", "00040102")]))
    path.write_bytes(compound_file(root))
    return path
