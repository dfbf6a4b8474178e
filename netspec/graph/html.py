"""The HTML page: the graph data, the first picture, and the inlined viewer (static/graph.js)."""

from __future__ import annotations

import json
from html import escape
from importlib import resources

from .svg import STYLE, render_svg


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def _script_json(obj) -> str:
    """JSON safe inside <script>: no '</', no U+2028/2029 surprises."""
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_html(data: dict, expanded: list[str], scene: dict, title: str) -> str:
    """One self-contained page: no external resource is loaded."""
    payload = {"data": data, "expanded": expanded, "scene": scene}
    svg = render_svg(scene, title, standalone=False)
    return _asset("graph.html").replace("{{TITLE}}", escape(title)).replace("{{STYLE}}", STYLE + _asset(
        "graph.css")).replace("{{SVG}}", svg).replace("{{DATA}}", _script_json(payload)).replace(
        "{{SCRIPT}}", _asset("graph.js"))
