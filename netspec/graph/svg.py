"""The scene as SVG text (also the first picture of the HTML page)."""

from __future__ import annotations

from html import escape

from .layout import r1

STYLE = """
.ns-graph text{font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;fill:#1f2933}
.ns-graph .main{font-size:12px}.ns-graph .sub{font-size:10px;fill:#52606d}
.ns-graph .box rect,.ns-graph .box ellipse{stroke-width:1.2}
.ns-graph .k-layer rect{fill:#e3f0fb;stroke:#3d7ab8}
.ns-graph .k-op rect{fill:#f5f7fa;stroke:#9aa5b1}
.ns-graph .k-merge rect{fill:#fff3d6;stroke:#c98a00}
.ns-graph .k-input rect,.ns-graph .k-output rect{fill:#2f3e4e;stroke:#2f3e4e}
.ns-graph .k-input text,.ns-graph .k-output text{fill:#fff}
.ns-graph .k-weights rect{fill:#f3e8fd;stroke:#8a4fc7;stroke-dasharray:5 3}
.ns-graph .k-group rect{fill:#e8f5ec;stroke:#2f8f55;stroke-width:2.2}
.ns-graph .k-error rect{fill:#fde8e8;stroke:#c81e1e;stroke-width:2}
.ns-graph .k-error text{fill:#9b1c1c}
.ns-graph .shared rect{stroke:#8a4fc7;stroke-width:2}
.ns-graph .frame rect{fill:#2f8f55;fill-opacity:.05;stroke:#2f8f55;stroke-dasharray:4 3}
.ns-graph .frame text{font-size:11px;fill:#2f8f55;font-weight:bold}
.ns-graph .edge{fill:none;stroke:#52606d;stroke-width:1.3}
.ns-graph .edge.e-weights{stroke:#8a4fc7;stroke-dasharray:5 3}
.ns-graph .edge.e-error{stroke:#c81e1e;stroke-dasharray:3 2}
.ns-graph .shape{font-size:10px;fill:#3d7ab8;paint-order:stroke;stroke:#fff;stroke-width:3px}
.ns-graph .selected rect{stroke:#e8590c;stroke-width:3}
"""


def path_d(points: list[list[float]]) -> str:
    """Vertical cubic curves through the points."""
    (x, y), rest = points[0], points[1:]
    d = [f"M{_n(x)},{_n(y)}"]
    for nx, ny in rest:
        if nx == x:
            d.append(f"L{_n(nx)},{_n(ny)}")
        else:
            m = r1((y + ny) / 2)
            d.append(f"C{_n(x)},{_n(m)} {_n(nx)},{_n(m)} {_n(nx)},{_n(ny)}")
        x, y = nx, ny
    return " ".join(d)


def _n(v: float) -> str:
    """A coordinate as JavaScript prints it: no trailing '.0'."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def render_svg(scene: dict, title: str, standalone: bool = True) -> str:
    """SVG text for a scene; ``standalone`` adds the XML header and the style sheet."""
    w, h = scene["width"], scene["height"]
    out = []
    if standalone:
        out.append('<?xml version="1.0" encoding="UTF-8"?>')
    out.append(f'<svg xmlns="http://www.w3.org/2000/svg" class="ns-graph" width="{_n(w)}" height="{_n(h)}" '
               f'viewBox="0 0 {_n(w)} {_n(h)}" font-family="monospace">')
    out.append(f"<title>{escape(title)}</title>")
    if standalone:
        out.append(f"<style>{STYLE}</style>")
    out.append('<defs><marker id="ns-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
               'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#52606d"/>'
               "</marker></defs>")
    out.append(f'<rect width="{_n(w)}" height="{_n(h)}" fill="#ffffff"/>')
    for f in scene["groups"]:
        out.append(f'<g class="frame" data-group="{escape(f["id"])}"><rect x="{_n(f["x"])}" y="{_n(f["y"])}" '
                   f'width="{_n(f["w"])}" height="{_n(f["h"])}" rx="8"/>'
                   f'<text x="{_n(r1(f["x"] + 8))}" y="{_n(r1(f["y"] + 15))}">{escape(f["title"])}</text></g>')
    for e in scene["edges"]:
        out.append(f'<path class="edge e-{e["kind"]}" d="{path_d(e["points"])}" marker-end="url(#ns-arrow)" '
                   f'data-from="{escape(e["from"])}" data-to="{escape(e["to"])}"/>')
    for lab in scene["labels"]:
        out.append(f'<text class="shape" x="{_n(lab["x"])}" y="{_n(lab["y"])}">{escape(lab["text"])}</text>')
    for v in scene["nodes"]:
        out.append(node_svg(v))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def node_svg(v: dict) -> str:
    x0, y0 = r1(v["x"] - v["w"] / 2), r1(v["y"] - v["h"] / 2)
    rx = {"merge": 16, "input": 12, "output": 12}.get(v["kind"], 5)
    parts = [f'<g class="box k-{v["kind"]}" data-id="{escape(v["id"])}" tabindex="0">',
             f"<title>{escape(' · '.join(t for t, _ in v['lines']))}</title>",
             f'<rect x="{_n(x0)}" y="{_n(y0)}" width="{_n(v["w"])}" height="{_n(v["h"])}" rx="{rx}"/>']
    for i, (text, style) in enumerate(v["lines"]):
        ty = r1(y0 + 7 + 15 * i + 11)
        weight = ' font-weight="bold"' if i == 0 and style == "main" else ""
        parts.append(f'<text class="{style}" x="{_n(v["x"])}" y="{_n(ty)}" text-anchor="middle"{weight}>'
                     f"{escape(text)}</text>")
    parts.append("</g>")
    return "".join(parts)
