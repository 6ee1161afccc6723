"""Write data/volunteer-orientation.pptx: the slide deck of the sample corpus (a title slide, a
table of shifts, speaker notes), so the demo answers from slides too (a slide is a page).

Usage: python scripts/make_sample_deck.py  (python-pptx is a core dependency)
"""

import datetime
from pathlib import Path

from pptx import Presentation
from pptx.util import Inches

TARGET = Path(__file__).resolve().parent.parent / "data" / "volunteer-orientation.pptx"
SLIDES = [
    ("Volunteer orientation", ["Welcome to the Harborview Tool Library volunteer team.", "This deck is shown at the monthly orientation evening."]),
    ("Desk shifts", None),
    ("Checking tools back in", ["Test every returned power tool before it goes back on the shelf.", "Label a broken tool with a red tag and put it in the repair crate."]),
]
SHIFTS = [("Shift", "Hours"), ("Weekday evening", "5 pm to 8 pm"), ("Saturday morning", "9 am to 1 pm")]
NOTES = {2: "Each volunteer takes at least two desk shifts a month; swap shifts on the volunteer board."}


def main() -> None:
    deck = Presentation()
    deck.core_properties.created = deck.core_properties.modified = datetime.datetime(2024, 3, 1)  # reproducible content
    for number, (title, lines) in enumerate(SLIDES, start=1):
        slide = deck.slides.add_slide(deck.slide_layouts[1] if lines else deck.slide_layouts[5])
        slide.shapes.title.text = title
        if lines:
            slide.placeholders[1].text = "\n".join(lines)
        else:
            table = slide.shapes.add_table(len(SHIFTS), 2, Inches(1), Inches(2), Inches(8), Inches(1.5)).table
            for r, row in enumerate(SHIFTS):
                for c, text in enumerate(row):
                    table.cell(r, c).text = text
        if number in NOTES:
            slide.notes_slide.notes_text_frame.text = NOTES[number]
    deck.save(str(TARGET))
    print(f"wrote {TARGET} ({len(SLIDES)} slides)")


if __name__ == "__main__":
    main()
