"""PowerPoint decks (.pptx) read with python-pptx (the maintained reader of the format) in the
guarded worker. A slide is a page: answers and the page view name the slide's number.

A slide's text in reading order: its title, then each shape from top to bottom and left to right
(text boxes, placeholders, tables as one line per row, grouped shapes in their own order), then
its speaker notes. Pictures, charts and media are not read (and not unpacked).
"""

from __future__ import annotations

import zipfile
from typing import Any

from rag_qa.ingest.guard import ParseError
from rag_qa.ingest.packages import SLIDES, check_package
from rag_qa.ingest.tables import grid_lines



class SlidesError(ParseError):
    """A deck could not be read; the message is the user-facing reason."""


def extract_pptx(path: str) -> list[str]:
    """One text per slide, in slide order (an empty string for a slide without text)."""
    check_package(path, SLIDES, SlidesError)
    from lxml.etree import XMLSyntaxError
    from pptx import Presentation
    from pptx.exc import PackageNotFoundError

    try:
        return [_slide_text(slide) for slide in Presentation(path).slides]
    except XMLSyntaxError as exc:
        raise SlidesError(f"malformed PowerPoint deck (broken XML: {exc})") from None
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise SlidesError(f"malformed PowerPoint deck ({type(exc).__name__}: {exc})") from None


def _slide_text(slide: Any) -> str:
    title = slide.shapes.title
    blocks = [title.text_frame.text] if title is not None and title.has_text_frame else []
    blocks += _shapes_text([s for s in slide.shapes if title is None or s.shape_id != title.shape_id])
    if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
        notes = slide.notes_slide.notes_text_frame.text
        blocks.append(f"Notes: {notes}" if notes.strip() else "")
    return "\n\n".join(block for block in blocks if block.strip())


def _shapes_text(shapes: list[Any]) -> list[str]:
    """Texts of `shapes` in reading order: top to bottom, then left to right."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    blocks = []
    for shape in sorted(shapes, key=lambda s: (s.top or 0, s.left or 0)):
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            blocks += _shapes_text(list(shape.shapes))
        elif getattr(shape, "has_table", False) and shape.has_table:
            blocks.append(_table_text(shape.table))
        elif shape.has_text_frame:
            blocks.append(shape.text_frame.text)
    return blocks


def _table_text(table: Any) -> str:
    """The table in the form every table takes (`tables.grid_lines`)."""
    grid = [["" if cell.is_spanned else cell.text for cell in row.cells] for row in table.rows]
    return "\n".join(grid_lines(grid))
