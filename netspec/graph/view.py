"""What is drawn for a set of expanded groups: visible boxes, edges, frames; then the scene.

A node inside a collapsed group is drawn as that group's box; edges between
boxes are kept once. ``graph.js`` implements the same functions (``visible``,
``boxSize``, ``scene``) for the HTML: change both together.
"""

from __future__ import annotations

from .layout import GROUP_PAD, GROUP_TITLE, layout, r1

CHAR = 7.2  # monospace advance at 12px
SMALL = 6.0  # at 10px
LINE = 15
PAD_X = 10
PAD_Y = 7
MAX_CHARS = 48


def _fit(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"


def fmt_int(n: int) -> str:
    return f"{n:,}"


def box_lines(v: dict) -> list[list[str]]:
    """The text lines of a box: [[text, style]], style 'main' (12px) or 'sub' (10px)."""
    kind = v["kind"]
    lines: list[list[str]] = []
    if kind == "group":
        lines.append([_fit(v["title"]), "main"])
        lines.append([_fit(v["subtitle"]), "sub"])
    elif kind in ("input", "output"):
        lines.append([_fit(f"{kind} {v['title']}"), "main"])
        lines.append([_fit(v["shape"]), "sub"])
        return lines
    elif kind == "weights":
        lines.append([_fit(f"layer {v['title']}"), "main"])
        lines.append([_fit(v["attrs"]), "sub"])
        lines.append([f"{fmt_int(v['params'])} params · shared by {v['uses']}", "sub"])
        return lines
    elif kind == "error":
        lines.append([_fit(v["title"]), "main"])
        lines.append([_fit(v["attrs"]), "sub"])
        if v["name"]:
            lines.append([_fit(v["name"]), "sub"])
        return lines
    else:
        head = v["title"] + (" " + v["attrs"] if v["attrs"] else "")
        lines.append([_fit(head), "main"])
        lines.append([_fit(v["name"]), "sub"])
        if v.get("layer"):
            lines.append([_fit("weights of " + v["layer"]), "sub"])
    if v["params"]:
        lines.append([f"{fmt_int(v['params'])} params", "sub"])
    return lines


def box_size(lines: list[list[str]]) -> tuple[float, float]:
    w = max((len(t) * (CHAR if s == "main" else SMALL) for t, s in lines), default=0.0) + 2 * PAD_X
    return r1(max(w, 64.0)), float(len(lines) * LINE + 2 * PAD_Y)


def default_expanded(data: dict, depth: int | None, expand: list[str]) -> list[str]:
    """Groups open at the start: those at level <= depth, named ones, and the groups holding those."""
    groups = {g["id"]: g for g in data["groups"]}
    out = set()
    for g in data["groups"]:
        if depth is None or g["level"] <= depth:
            out.add(g["id"])
    for name in expand:
        for g in data["groups"]:
            if g["id"] == name or g.get("block") == name or g["id"].startswith(name + "."):
                p = g["id"]
                while p is not None:
                    out.add(p)
                    p = groups[p]["parent"]
    return sorted(out)


def ancestors_of(data: dict) -> dict[str, list[str]]:
    """Each group's ancestors and itself, outermost first."""
    groups = {g["id"]: g for g in data["groups"]}
    out = {}
    for gid in groups:
        chain = []
        p = gid
        while p is not None:
            chain.append(p)
            p = groups[p]["parent"]
        out[gid] = chain[::-1]
    return out


def visible(data: dict, expanded: list[str]) -> tuple[list[dict], list[dict], dict[str, list[str]]]:
    """The boxes and edges drawn when ``expanded`` groups are open, and each box's open groups."""
    open_ = set(expanded)
    chains = ancestors_of(data)
    groups = {g["id"]: g for g in data["groups"]}
    rep: dict[str, str] = {}
    owner: dict[str, list[str]] = {}
    boxes: list[dict] = []
    seen: set[str] = set()
    for v in data["nodes"]:
        chain = chains[v["group"]] if v.get("group") else []
        closed = next((g for g in chain if g not in open_), None)
        if closed is None:
            rep[v["id"]] = v["id"]
            owner[v["id"]] = chain
            boxes.append(v)
            continue
        gid = "group:" + closed
        rep[v["id"]] = gid
        if gid not in seen:
            seen.add(gid)
            g = groups[closed]
            owner[gid] = chain[: chain.index(closed)]
            boxes.append({"id": gid, "kind": "group", "group": closed, "title": g["title"],
                          "subtitle": g["subtitle"], "params": g["params"], "macs": g["macs"],
                          "shape": g["shape"], "attrs": "", "name": closed})
    edges = []
    keys: set[str] = set()
    for e in data["edges"]:
        a, b = rep[e["from"]], rep[e["to"]]
        key = a + "\n" + b
        if a == b or key in keys:
            continue
        keys.add(key)
        edges.append({"from": a, "to": b, "kind": e["kind"], "label": e["label"]})
    return boxes, edges, owner


def scene(data: dict, expanded: list[str]) -> dict:
    """Every box, edge, shape label and group frame with its coordinates."""
    boxes, edges, owner = visible(data, expanded)
    laid = []
    for v in boxes:
        lines = box_lines(v)
        w, h = box_size(lines)
        laid.append({"id": v["id"], "kind": v["kind"], "w": w, "h": h, "lines": lines})
    result = layout(laid, edges, owner)
    pos = result["pos"]
    nodes = []
    for v in laid:
        x, y = pos[v["id"]]
        nodes.append({"id": v["id"], "kind": v["kind"], "x": x, "y": y, "w": v["w"], "h": v["h"],
                      "lines": v["lines"]})
    by_id = {v["id"]: v for v in nodes}
    # entry points spread along the top of a box with several inputs, in the order of their sources
    incoming: dict[str, list[int]] = {}
    for k, e in enumerate(edges):
        incoming.setdefault(e["to"], []).append(k)
    entry: dict[int, float] = {}
    for to, ks in incoming.items():
        t = by_id[to]

        def source_x(k, edges=edges, result=result, by_id=by_id):
            route = result["routes"][k]
            return (route[-1][0] if route else by_id[edges[k]["from"]]["x"], k)

        ks = sorted(ks, key=source_x)
        step = min(16.0, t["w"] / (len(ks) + 1))
        for j, k in enumerate(ks):
            entry[k] = r1(t["x"] + (j - (len(ks) - 1) / 2) * step)
    out_edges = []
    labels = []
    labelled: set[str] = set()
    for k, e in enumerate(edges):
        s, t = by_id[e["from"]], by_id[e["to"]]
        pts = [[s["x"], r1(s["y"] + s["h"] / 2)], *result["routes"][k], [entry[k], r1(t["y"] - t["h"] / 2)]]
        out_edges.append({"from": e["from"], "to": e["to"], "kind": e["kind"], "points": pts})
        if e["label"] and e["from"] not in labelled and e["kind"] != "weights":
            labelled.add(e["from"])
            labels.append({"x": r1(s["x"] + 6), "y": r1(s["y"] + s["h"] / 2 + 13), "text": e["label"]})
    frames = _frames(data, expanded, nodes, owner)
    return {"width": result["width"], "height": result["height"], "nodes": nodes, "edges": out_edges,
            "labels": labels, "groups": frames}


def _frames(data: dict, expanded: list[str], nodes: list[dict], owner: dict[str, list[str]]) -> list[dict]:
    """A frame around each open group's visible contents, innermost drawn last."""
    open_ = set(expanded)
    boxes: dict[str, list[float]] = {}
    depth: dict[str, int] = {}
    for v in nodes:
        chain = owner.get(v["id"], [])
        for level, g in enumerate(chain):
            inner = len(chain) - level  # frames between this group and the box, this one included
            x0 = v["x"] - v["w"] / 2 - GROUP_PAD * inner
            x1 = v["x"] + v["w"] / 2 + GROUP_PAD * inner
            y0 = v["y"] - v["h"] / 2 - (GROUP_PAD + GROUP_TITLE) * inner
            y1 = v["y"] + v["h"] / 2 + GROUP_PAD * inner
            b = boxes.get(g)
            if b is None:
                boxes[g] = [x0, y0, x1, y1]
                depth[g] = level
            else:
                b[0], b[1], b[2], b[3] = min(b[0], x0), min(b[1], y0), max(b[2], x1), max(b[3], y1)
    titles = {g["id"]: g for g in data["groups"]}
    out = []
    for g in data["groups"]:
        gid = g["id"]
        if gid in boxes and gid in open_:
            x0, y0, x1, y1 = boxes[gid]
            out.append({"id": gid, "title": titles[gid]["title"], "level": depth[gid], "x": r1(x0), "y": r1(y0),
                        "w": r1(x1 - x0), "h": r1(y1 - y0)})
    out.sort(key=lambda f: f["level"])
    return out
