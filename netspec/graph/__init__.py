"""``netspec graph``: draw a network from its checked IR, as SVG or as one self-contained HTML page.

Core package: imports no framework. Layout is our own layered (Sugiyama)
layout (:mod:`.layout`); no Graphviz, no network access::

    from netspec.graph import draw
    svg = draw(spec, "svg", depth=0)

A spec with errors is drawn up to the errors, each marked (:func:`draw_source`).
"""

from __future__ import annotations

from .model import BlockInstance, block_instances, graph_data, instance_paths
from .view import default_expanded, scene

__all__ = ["BlockInstance", "block_instances", "draw", "draw_network", "draw_source", "graph_data",
           "instance_paths", "scene", "AUTO_BOXES"]

#: With no --depth, the deepest level at which the drawing has at most this many boxes.
AUTO_BOXES = 40


def auto_depth(data: dict, expand: list[str]) -> int | None:
    """The deepest block level whose drawing keeps at most AUTO_BOXES boxes (None: everything open)."""
    from .view import visible

    levels = sorted({g["level"] for g in data["groups"]})
    if not levels:
        return None
    for depth in [*reversed(levels), 0]:
        boxes, _, _ = visible(data, default_expanded(data, depth, expand))
        if len(boxes) <= AUTO_BOXES:
            return None if depth == levels[-1] else depth
    return 0


def draw_network(net, fmt: str, *, module=None, source_text: str | None = None, errors=(),
                 depth: int | None = -1, expand: list[str] | None = None, file: str = "") -> str:
    """One network drawn as "svg" or "html". ``depth=-1`` chooses the depth automatically."""
    from .html import render_html
    from .svg import render_svg

    expand = list(expand or [])
    data = graph_data(net, module, errors, source_text).to_json()
    for name in expand:
        if not any(g["id"] == name or g.get("block") == name or g["id"].startswith(name + ".")
                   for g in data["groups"]):
            known = sorted({g["block"] for g in data["groups"] if g.get("block")})
            raise ValueError(f"--expand {name}: no block or block instance of that name in {net.name}"
                             + (f"; blocks: {', '.join(known)}" if known else "; it uses no blocks"))
    if depth == -1:
        depth = auto_depth(data, expand)
    expanded = default_expanded(data, depth, expand)
    sc = scene(data, expanded)
    title = f"{net.name} ({file})" if file else net.name
    if fmt == "svg":
        return render_svg(sc, title)
    return render_html(data, expanded, sc, title)


def draw(spec, fmt: str = "svg", network: str | None = None, depth: int | None = -1,
         expand: list[str] | None = None) -> str:
    """A checked :class:`netspec.api.Spec` drawn as "svg" or "html"."""
    net = spec.network(network)
    return draw_network(net, fmt, module=spec.module, source_text=spec.source.text, depth=depth, expand=expand,
                        file=spec.source.name)


def draw_source(source, fmt: str = "svg", network: str | None = None, depth: int | None = -1,
                expand: list[str] | None = None):
    """Parse and check ``source`` and draw it, errors and all.

    Returns ``(text, diagnostics)``: the drawing (up to the errors, each marked)
    and the errors found. A syntax error leaves nothing to draw: it raises
    :class:`netspec.SpecError`. ``KeyError`` for an unknown network.
    """
    from ..frontend import parse_source
    from .partial import check_partial

    module = parse_source(source)
    networks, diagnostics = check_partial(module, source)
    if not networks:
        from ..diagnostics import SpecError

        raise SpecError(list(diagnostics), {source.name: source})
    if network is None:
        net = networks[0]
    else:
        matches = [n for n in networks if n.name == network]
        if not matches:
            raise KeyError(network)
        net = matches[0]
    mine = [d for d in diagnostics if _within(d.span, net.span)] if len(networks) > 1 else list(diagnostics)
    text = draw_network(net, fmt, module=module, source_text=source.text, errors=mine, depth=depth,
                        expand=expand, file=source.name)
    return text, list(diagnostics)


def _within(span, outer) -> bool:
    if span is None or outer is None:
        return True
    return outer.line <= span.line <= outer.end_line
