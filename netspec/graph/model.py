"""The drawing's model: the IR as a graph of boxes, with block instances as groups.

:func:`block_instances` is the one place that knows how block instances are
found (today: from the hierarchical node names; later: from the IR's own
records). :func:`graph_data` turns a network into plain, JSON-ready data that
both the Python layout (SVG) and the inlined JavaScript (HTML) read;
:func:`view` chooses what is visible for a set of expanded groups.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..ops.registry import MERGE_OPS

if TYPE_CHECKING:  # the typed or the plain IR (netspec.ir_plain): both have these fields
    from .. import ir

_INDEX = re.compile(r"^[0-9]+$")


@dataclass(frozen=True)
class BlockInstance:
    """One use of a block: ``path`` is the name prefix of its nodes (``features.3``)."""

    path: str
    block: str | None  # the block's name, when known
    parent: str | None  # the enclosing instance's path
    level: int  # 1 for an instance used in the network body, 2 inside that, ...


def instance_paths(name: str) -> list[str]:
    """The block-instance paths enclosing a node name, outermost first.

    A name segment made of digits closes an instance: ``features.3.main.1.conv2d``
    lies in ``features.3`` and ``features.3.main.1``. Names written by users start
    with a letter or underscore, so only instance indices are all digits.
    """
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(1, len(parts) - 1) if _INDEX.match(parts[i])]


def _decl_starts(module) -> list[tuple[tuple[str, int, int], str | None]]:
    """Where each top-level declaration starts, sorted, with the block's name (None for a network).

    A declaration's text runs from its start to the next one's (in .net and in YAML,
    whose spans cover only the key), so the last start before a node's span names
    the block it was written in.
    """
    from ..frontend import ast

    if module is None:
        return []
    out = []
    for d in module.decls:
        if d.span is not None:
            out.append(((d.span.file, d.span.line, d.span.col), d.name if isinstance(d, ast.BlockDef) else None))
    return sorted(out, key=lambda t: t[0])


def _written_in(span, starts) -> str | None:
    if span is None:
        return None
    found = None
    for (file, line, col), name in starts:
        if file == span.file and (line, col) <= (span.line, span.col):
            found = name
    return found


def block_instances(net: ir.Network, module=None) -> dict[str, BlockInstance]:
    """Every block instance of a network, keyed by path, in first-node order.

    Derived from the hierarchical names (see :func:`instance_paths`); the block's
    name is found from the syntax tree (``module``) when given: the block
    definition that contains the source span of a node directly inside the
    instance. This is the only function to change when the IR records instances.
    """
    starts = _decl_starts(module)
    found: dict[str, BlockInstance] = {}
    direct: dict[str, list] = {}
    for node in net.nodes:
        paths = instance_paths(node.name)
        for i, path in enumerate(paths):
            if path not in found:
                found[path] = BlockInstance(path, None, paths[i - 1] if i else None, i + 1)
        if paths:
            direct.setdefault(paths[-1], []).append(node.span)
    out = {}
    for path, inst in found.items():
        name = None
        for span in direct.get(path, ()):
            name = _written_in(span, starts)
            if name:
                break
        out[path] = BlockInstance(path, name, inst.parent, inst.level)
    return out


# ----------------------------------------------------------------------------------------
# Labels


def _pair(v) -> str:
    if isinstance(v, (tuple, list)):
        if len(set(v)) == 1:
            return str(v[0])
        return "×".join(str(x) for x in v)
    return str(v)


def _kernel(v) -> str:
    if isinstance(v, (tuple, list)):
        return "×".join(str(x) for x in v)
    return str(v)


def _padding(v) -> str | None:
    flat = [p for axis in v for p in axis] if v and isinstance(v[0], (tuple, list)) else list(v or ())
    if not any(flat):
        return None
    if len(set(flat)) == 1:
        return f"pad {flat[0]}"
    return "pad " + ",".join(str(p) for p in flat)


def _activation(v) -> str | None:
    if isinstance(v, dict) and v.get("name"):
        return v["name"]
    return None


def key_attrs(op: str, attrs: dict) -> str:
    """A short summary of the attributes that say what a layer does: ``64, 3×3 /2 pad 1``."""
    parts: list[str] = []
    a = attrs
    if "filters" in a:
        parts.append(str(a["filters"]))
    if "units" in a:
        parts.append(str(a["units"]))
    if "vocab" in a and "dim" in a:
        parts.append(f"{a['vocab']}→{a['dim']}")
    if "kernel" in a:
        parts.append(_kernel(a["kernel"]))
    if "pool" in a:
        parts.append(_kernel(a["pool"]))
    strides = a.get("stride", 1)
    if any(s != 1 for s in (strides if isinstance(strides, (tuple, list)) else [strides])):
        parts.append("/" + _pair(a["stride"]))
    if "padding" in a and isinstance(a["padding"], (tuple, list)):
        pad = _padding(a["padding"])
        if pad:
            parts.append(pad)
    if a.get("dilation") and any(d != 1 for d in a["dilation"]):
        parts.append("dil " + _pair(a["dilation"]))
    if a.get("groups", 1) != 1:
        parts.append(f"groups {a['groups']}")
    if "rate" in a:
        parts.append(f"p={a['rate']}")
    if "axis" in a and op in ("concat",):
        parts.append(f"axis {a['axis']}")
    if "layer" in a and isinstance(a["layer"], dict):
        inner = a["layer"]
        parts.append(f"{inner.get('op')} {key_attrs(inner.get('op', ''), inner.get('attrs', {}))}".strip())
    if "shape" in a and op == "reshape":
        parts.append(str(list(a["shape"])))
    act = _activation(a.get("activation"))
    if act:
        parts.append(f"+{act}")
    return " ".join(parts)


def shape_label(t: ir.TensorType) -> str:
    return str(t)


def _count(n: int) -> str:
    return f"{n:,}"


# ----------------------------------------------------------------------------------------
# The graph data: every node, edge and group, JSON-ready


@dataclass
class GraphData:
    """Plain data for one network; see :meth:`to_json`."""

    name: str
    nodes: list[dict] = field(default_factory=list)
    edges: list[dict] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"name": self.name, "nodes": self.nodes, "edges": self.edges, "groups": self.groups,
                "errors": self.errors}


def _span_json(span) -> dict | None:
    if span is None:
        return None
    return {"file": span.file, "line": span.line, "col": span.col, "end_line": span.end_line,
            "end_col": span.end_col}


def graph_data(net: ir.Network, module=None, errors=(), source_text: str | None = None) -> GraphData:
    """Nodes (inputs, layers, shared-layer weights, outputs, errors), edges and block groups of ``net``.

    Every node carries what the HTML shows on a click: attributes, shapes,
    parameters, MACs, and its source span (with the source line when given).
    """
    lines = source_text.split("\n") if source_text is not None else None
    data = GraphData(net.name)
    instances = block_instances(net, module)
    types: dict[str, ir.TensorType] = {}

    def snippet(span):
        if lines is None or span is None or not 1 <= span.line <= len(lines):
            return None
        return lines[span.line - 1].rstrip("\r")

    def group_of(name: str) -> str | None:
        paths = instance_paths(name)
        return paths[-1] if paths else None

    for v in net.inputs:
        types[v.name] = v.type
        data.nodes.append({"id": v.name, "kind": "input", "op": "input", "title": v.name, "attrs": "",
                           "name": v.name, "group": None, "shape": shape_label(v.type), "params": 0, "macs": 0,
                           "inputs": [], "span": _span_json(v.span), "source": snippet(v.span), "details": {}})
    owners: dict[str, dict] = {}
    uses: dict[str, int] = {}
    for n in net.nodes:
        if n.shared:
            uses[n.layer] = uses.get(n.layer, 0) + 1
    for n in net.nodes:
        types[n.name] = n.type
        count = sum(p.size for p in n.params)
        kind = "merge" if n.op in MERGE_OPS else ("layer" if n.params else "op")
        node = {"id": n.name, "kind": kind, "op": n.op, "title": n.op, "attrs": key_attrs(n.op, n.attrs),
                "name": n.name, "group": group_of(n.name), "shape": shape_label(n.type),
                "params": 0 if n.shared else count, "macs": n.macs, "inputs": list(n.inputs),
                "span": _span_json(n.span), "source": snippet(n.span),
                "details": {"attributes": _attrs_text(n.attrs),
                            "weights": [f"{p.name} {list(p.shape)}" + ("" if p.trainable else " (non-trainable)")
                                        for p in n.params]}}
        if n.shared:
            node["layer"] = n.layer
            owner = owners.get(n.layer)
            if owner is None:
                owner = {"id": "layer:" + n.layer, "kind": "weights", "op": n.op, "title": n.layer,
                         "attrs": f"{n.op} {key_attrs(n.op, n.attrs)}".strip(), "name": n.layer,
                         "group": group_of(n.layer), "shape": "", "params": count, "macs": 0, "inputs": [],
                         "span": None, "source": None, "uses": uses[n.layer],
                         "details": {"weights": node["details"]["weights"]}}
                owners[n.layer] = owner
                data.nodes.append(owner)
        data.nodes.append(node)
        for i, src in enumerate(n.inputs):
            t = types.get(src)
            data.edges.append({"from": src, "to": n.name, "label": shape_label(t) if t else "", "kind": "data",
                               "port": i})
        if n.shared:
            data.edges.append({"from": "layer:" + n.layer, "to": n.name, "label": "", "kind": "weights",
                               "port": -1})
    for name, value in zip(net.output_names, net.outputs):
        t = types.get(value)
        oid = "output:" + name
        data.nodes.append({"id": oid, "kind": "output", "op": "output", "title": name, "attrs": "", "name": name,
                           "group": None, "shape": shape_label(t) if t else "", "params": 0, "macs": 0,
                           "inputs": [value], "span": None, "source": None, "details": {}})
        data.edges.append({"from": value, "to": oid, "label": shape_label(t) if t else "", "kind": "data",
                           "port": 0})
    for e, diag in enumerate(errors):
        eid = f"error:{e}"
        after = _error_anchor(net, diag.span)
        data.nodes.append({"id": eid, "kind": "error", "op": diag.code, "title": f"error[{diag.code}]",
                           "attrs": diag.message, "name": str(diag.span) if diag.span else "", "group": None,
                           "shape": "", "params": 0, "macs": 0, "inputs": [], "span": _span_json(diag.span),
                           "source": snippet(diag.span), "details": {"message": diag.message}})
        if after:
            data.edges.append({"from": after, "to": eid, "label": shape_label(types[after]), "kind": "error",
                               "port": 0})
    for path, inst in instances.items():
        data.groups.append({"id": path, "kind": "block", "block": inst.block, "parent": inst.parent,
                            "level": inst.level, "title": f"{path} · {inst.block}" if inst.block else path})
    _add_runs(data)
    _add_params(data)
    data.errors = [{"code": d.code, "message": d.message, "where": str(d.span) if d.span else ""} for d in errors]
    return data


def _error_anchor(net: ir.Network, span) -> str | None:
    """The last node built before an error's place in the source (the value the failing step received)."""
    if span is None:
        return None
    best = None
    for n in net.nodes:
        s = n.span
        if s is not None and s.file == span.file and (s.line, s.col) < (span.line, span.col):
            if s.line == span.line or (best is None or (s.line, s.col) >= (best.span.line, best.span.col)):
                best = n
    if best is None:
        for v in net.inputs:
            if v.span is not None and v.span.line <= span.line:
                return v.name
        return None
    return best.name


def _attrs_text(attrs: dict) -> list[str]:
    out = []
    for k in sorted(attrs):
        v = attrs[k]
        if v is None:
            continue
        if isinstance(v, dict) and "name" in v and len(v) <= 3:
            args = ", ".join(f"{a}={b}" for a, b in v.items() if a != "name")
            v = f"{v['name']}({args})" if args else v["name"]
        out.append(f"{k} = {v}")
    return out


def _chain(parents: dict[str, str | None], g: str | None) -> list[str]:
    out = []
    while g is not None:
        out.append(g)
        g = parents[g]
    return out


def _add_runs(data: GraphData) -> None:
    """Fold repeats: consecutive instances of one block that only feed each other (``bottleneck(256) * 35``).

    Such a run becomes a group of kind "repeat" holding the instances, drawn as
    one box while its instances are collapsed.
    """
    parents = {g["id"]: g["parent"] for g in data.groups}
    node_group = {n["id"]: n.get("group") for n in data.nodes}
    inside: dict[str, set[str]] = {}  # group -> node ids inside it, nested ones included
    for nid, g in node_group.items():
        for a in _chain(parents, g):
            inside.setdefault(a, set()).add(nid)

    leaving: dict[str, list[str]] = {}  # group -> targets of the edges that leave it
    entering: dict[str, list[str]] = {}  # group -> sources of the edges that enter it
    for e in data.edges:
        src = set(_chain(parents, node_group.get(e["from"])))
        dst = set(_chain(parents, node_group.get(e["to"])))
        for g in src - dst:
            leaving.setdefault(g, []).append(e["to"])
        for g in dst - src:
            entering.setdefault(g, []).append(e["from"])

    def feeds_only(a: str, b: str) -> bool:
        ina, inb = inside.get(a, set()), inside.get(b, set())
        return (bool(ina and inb) and all(t in inb for t in leaving.get(a, ()))
                and all(f in ina for f in entering.get(b, ())))

    def split(path: str) -> tuple[str, int]:
        prefix, _, index = path.rpartition(".")
        return prefix, int(index)

    siblings: dict[str | None, list[dict]] = {}
    for g in data.groups:
        siblings.setdefault(g["parent"], []).append(g)
    added: list[dict] = []
    for members in siblings.values():
        runs: list[list[dict]] = []
        for g in members:
            prev = runs[-1][-1] if runs else None
            if (prev is not None and g["block"] and g["block"] == prev["block"]
                    and split(g["id"])[0] == split(prev["id"])[0] and split(g["id"])[1] == split(prev["id"])[1] + 1
                    and feeds_only(prev["id"], g["id"])):
                runs[-1].append(g)
            else:
                runs.append([g])
        for run in runs:
            if len(run) < 2:
                continue
            prefix, first = split(run[0]["id"])
            rid = f"{prefix}.{first}-{split(run[-1]['id'])[1]}"
            added.append({"id": rid, "kind": "repeat", "block": run[0]["block"], "parent": run[0]["parent"],
                          "level": run[0]["level"], "title": f"{rid} · {run[0]['block']} ×{len(run)}",
                          "count": len(run)})
            for g in run:
                g["parent"] = rid
    data.groups.extend(added)


def _add_params(data: GraphData) -> None:
    """Each group's parameter count, MACs, layers and output shape (its nodes, nested ones included)."""
    totals = {g["id"]: [0, 0, 0, ""] for g in data.groups}
    parents = {g["id"]: g["parent"] for g in data.groups}
    for n in data.nodes:
        for g in _chain(parents, n.get("group")):
            t = totals[g]
            t[0] += n["params"]
            t[1] += n["macs"]
            if n["kind"] != "weights":
                t[2] += 1
                t[3] = n["shape"]
    for g in data.groups:
        g["params"], g["macs"], g["size"], g["shape"] = totals[g["id"]]
        layers = f"{g['size']} layer{'s' if g['size'] != 1 else ''}"
        if g["kind"] == "repeat":
            g["subtitle"] = f"{g['count']} blocks · {layers} → {g['shape']}"
        else:
            g["subtitle"] = f"{layers} → {g['shape']}"


def params_text(n: int) -> str:
    return "" if not n else f"{_count(n)} params"
