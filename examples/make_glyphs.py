"""Write a tiny image folder of made-up glyphs: examples/glyphs/<script>/<glyph>/<n>.png.

Each glyph is a few random strokes; each of its images redraws them with jittered end points
and stroke width, dark ink on white, 28 x 28 pixels: a miniature Omniglot for trying
data=image_folder (docs/your_data.md). Seeded, so the same files come out every time.

    python examples/make_glyphs.py [--out examples/glyphs] [--scripts 2] [--glyphs 20] [--images 8]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 28


def glyph_strokes(rng: np.random.Generator) -> list[np.ndarray]:
    """2-4 strokes, each a polyline of 2-3 points in the inner 20 x 20 pixels."""
    return [rng.uniform(4, SIZE - 4, size=(int(rng.integers(2, 4)), 2))
            for _ in range(int(rng.integers(2, 5)))]


def draw(strokes: list[np.ndarray], rng: np.random.Generator) -> Image.Image:
    """One hand-drawn looking copy: every point moved up to 1.5 px, width 1 or 2."""
    img = Image.new("L", (SIZE, SIZE), 255)
    pen = ImageDraw.Draw(img)
    width = int(rng.integers(1, 3))
    for stroke in strokes:
        points = stroke + rng.uniform(-1.5, 1.5, size=stroke.shape)
        pen.line([tuple(p) for p in points], fill=0, width=width)
    return img.convert("1")  # 1 bit per pixel: about 100 bytes a file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "glyphs"))
    parser.add_argument("--scripts", type=int, default=2)
    parser.add_argument("--glyphs", type=int, default=20)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    for s in range(args.scripts):
        for g in range(args.glyphs):
            folder = Path(args.out) / f"script_{chr(ord('a') + s)}" / f"glyph{g:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            strokes = glyph_strokes(rng)
            for i in range(args.images):
                draw(strokes, rng).save(folder / f"{i:02d}.png", optimize=True)
    print(f"wrote {args.scripts * args.glyphs * args.images} images under {args.out}")


if __name__ == "__main__":
    main()
