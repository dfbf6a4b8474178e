"""Take the screenshots in docs/images/ (run after a change to netspec/graph).

    PYTHONPATH=. python scripts/graph_screenshots.py

Renders the HTML of three specs in headless Chromium (tests/browser.py) and saves PNGs.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import netspec  # noqa: E402
from netspec.graph import draw  # noqa: E402

SHOTS = [
    # (spec, file, window, options, box to click)
    ("specs/siamese.net", "graph_siamese.png", (1500, 900), {}, "a.conv_b"),
    ("specs/resnet152.net", "graph_resnet152.png", (1100, 1250), {}, "group:features.12-46"),
    ("specs/unet.net", "graph_unet.png", (900, 1400), {"depth": 0}, None),
]


def main() -> None:
    from browser import Browser, find_chromium

    os.chdir(ROOT)
    binary = find_chromium()
    if binary is None:
        sys.exit("no chromium found (apt-get install chromium)")
    out = ROOT / "docs" / "images"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for spec, name, (w, h), options, click in SHOTS:
            page = Path(tmp) / (name + ".html")
            loaded = netspec.load(spec)  # relative: the page shows specs/NAME.net
            page.write_text(draw(loaded, "html", **options), encoding="utf-8")
            with Browser(binary, width=w, height=h) as b:
                b.open(page.as_uri())
                b.eval("document.getElementById('ns-fit').click()")
                if click:
                    x, y = b.eval(f"(() => {{ const r = [...document.querySelectorAll('#ns-stage .box')]"
                                  f".find(e => e.dataset.id === {json.dumps(click)}).getBoundingClientRect();"
                                  f" return [r.x + r.width / 2, r.y + r.height / 2]; }})()")
                    b.click(x, y)
                problems = b.problems()
                if problems:
                    sys.exit(f"{spec}: {problems}")
                b.screenshot(str(out / name))
            print(out / name)


if __name__ == "__main__":
    main()
