"""Scanned PDFs for OCR tests, made the way a scanner makes them: a text PDF's pages rendered to
pictures (pdfium) and wrapped as an image-only PDF (Pillow), optionally with the marks of a
photographed page (a slight tilt, blur and speckles)."""

from __future__ import annotations

import random
import time
from pathlib import Path

from PIL import Image, ImageFilter

SCAN_DPI = 200


def scan_pages(source: Path, dpi: int = SCAN_DPI, noisy: bool = False, seed: int = 7) -> list[Image.Image]:
    """Each page of the PDF `source` as a greyscale picture, as a scanner at `dpi` would give it."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(source))
    try:
        pictures = [document[i].render(scale=dpi / 72, grayscale=True).to_pil().convert("L") for i in range(len(document))]
    finally:
        document.close()
    return [_photographed(p, random.Random(seed + i)) for i, p in enumerate(pictures)] if noisy else pictures


def _photographed(picture: Image.Image, rng: random.Random) -> Image.Image:
    """A tilt of about a degree, a little blur, uneven grey paper and dark speckles."""
    picture = picture.rotate(rng.uniform(0.6, 1.2), resample=Image.Resampling.BICUBIC, fillcolor=255, expand=False)
    picture = picture.filter(ImageFilter.GaussianBlur(0.8))
    pixels = picture.load()
    width, height = picture.size
    for _ in range(width * height // 1000):  # 0.1% speckles
        x, y = rng.randrange(width), rng.randrange(height)
        pixels[x, y] = rng.randrange(0, 90)
    paper = Image.linear_gradient("L").resize((width, height)).point(lambda v: 255 - v // 8)  # paper greying towards the bottom
    return Image.composite(picture, paper, picture.point(lambda v: 255 - v))


def image_pdf(pictures: list[Image.Image], target: Path, dpi: int = SCAN_DPI) -> Path:
    """An image-only PDF (no text layer) with one picture per page, at the size it was scanned."""
    fixed = time.strptime("2024-03-01", "%Y-%m-%d")  # the same bytes each time
    pictures[0].save(target, "PDF", resolution=float(dpi), save_all=True, append_images=pictures[1:], creationDate=fixed, modDate=fixed)
    return target


def scanned_pdf(source: Path, target: Path, noisy: bool = False) -> Path:
    """`source` (a text PDF) as a scanner would return it."""
    return image_pdf(scan_pages(source, noisy=noisy), target)
