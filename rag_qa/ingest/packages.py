"""Zip-based files (Office's .docx, .pptx, .xlsx; OpenDocument .odt; .epub e-books): checks that refuse a wrong or
hostile file from its bytes and zip directory alone, before a parser unpacks anything.

Such a file can be a zip bomb, an encrypted package (an OLE compound file, not a zip), a legacy
binary Office file, a macro-enabled file renamed, or something else renamed; each is refused with
its reason. The guarded worker's time and memory limits catch what slips past these checks.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass

from rag_qa.ingest.guard import ParseError

ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # compound file: encrypted OOXML, or a legacy binary Office file
ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
MAX_RATIO = 200  # uncompressed / compressed bytes of one part; real documents stay far below
CONTENT_TYPES = "[Content_Types].xml"
MAX_CONTENT_TYPES_BYTES = 1 << 20


@dataclass(frozen=True)
class PackageKind:
    name: str  # "Word document"
    suffix: str  # ".docx"
    main_part: str  # the part every such file has
    legacy: str = ""  # the binary format it replaced, e.g. "Word 97-2003 file (.doc)"
    macro_suffix: str = ""  # the macro-enabled variant, e.g. ".docm"
    encrypted_part: str = ""  # a part that only an encrypted (DRM) file has


WORD = PackageKind("Word document", ".docx", "word/document.xml", "Word 97-2003 file (.doc)", ".docm")
SLIDES = PackageKind("PowerPoint deck", ".pptx", "ppt/presentation.xml", "PowerPoint 97-2003 file (.ppt)", ".pptm")
WORKBOOK = PackageKind("Excel workbook", ".xlsx", "xl/workbook.xml", "Excel 97-2003 file (.xls)", ".xlsm")
ODT = PackageKind("OpenDocument text", ".odt", "content.xml")
EPUB = PackageKind("EPUB e-book", ".epub", "META-INF/container.xml", encrypted_part="META-INF/encryption.xml")


def check_package(path: str, kind: PackageKind, error: type[ParseError]) -> None:
    """Raise `error` with the reason when `path` is not a readable `kind` file."""
    with open(path, "rb") as handle:
        head = handle.read(8)
        if head.startswith(OLE_MAGIC) and kind.legacy:
            handle.seek(0)
            if ENCRYPTED_PACKAGE in handle.read(1 << 20):
                raise error(f"encrypted {kind.name}; a password is required to read it")
            raise error(f"a legacy {kind.legacy}, not {kind.suffix}; save it as {kind.suffix}")
    if not head.startswith(ZIP_MAGIC):
        raise error(f"not {_a(kind.name)} (a {kind.suffix} is a zip file; this starts with {head!r})")
    try:
        with zipfile.ZipFile(path) as package:
            parts = package.infolist()
            _check_sizes(parts, error)
            types = package.read(CONTENT_TYPES) if _small_part(parts, CONTENT_TYPES) else b""
    except zipfile.BadZipFile as exc:
        raise error(f"malformed or truncated {kind.name} ({exc})") from None
    if not any(p.filename == kind.main_part for p in parts):
        raise error(f"not {_a(kind.name)} (a zip file without {kind.main_part})")
    if kind.encrypted_part and any(p.filename == kind.encrypted_part for p in parts):
        raise error(f"encrypted (DRM-protected) {kind.name}; only the reader it was sold for can open it")
    if b"macroEnabled" in types:
        raise error(f"a macro-enabled file ({kind.macro_suffix}) named {kind.suffix}; rag-qa does not read files that carry macros: save it as {kind.suffix}")


def _check_sizes(parts: list[zipfile.ZipInfo], error: type[ParseError]) -> None:
    if sum(p.file_size for p in parts) > MAX_UNPACKED_BYTES:
        raise error(f"zip bomb: it would unpack to more than {MAX_UNPACKED_BYTES >> 20} MB")
    if any(p.file_size > MAX_RATIO * max(p.compress_size, 1) and p.file_size > 1 << 20 for p in parts):
        raise error(f"zip bomb: a part is compressed more than {MAX_RATIO} to 1")


def _small_part(parts: list[zipfile.ZipInfo], name: str) -> bool:
    return any(p.filename == name and p.file_size <= MAX_CONTENT_TYPES_BYTES for p in parts)


def _a(name: str) -> str:
    return f"{'an' if name[0] in 'AEIOU' else 'a'} {name}"
