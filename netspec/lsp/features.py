"""What the language server answers, computed from an :class:`Analysis`: hovers, definitions,
references, the outline, completions and formatting. Plain data; positions 1-based."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import ir_plain as ir  # the checker's plain IR (netspec.ir_plain): no pydantic in the editor loop
from ..diagnostics import SpecError
from ..frontend import ast
from ..ops.base import Callable as CallableKind
from ..ops.registry import FAMILIES, LOSS_FNS, MERGE_OPS, OPS, OPTIMIZER_DEFS
from ..source import Span
from . import docs
from .analysis import Analysis, Occurrence, Symbol, repeat_count

MAX_LISTED = 8  # block uses listed in a hover

# Hover ----------------------------------------------------------------------------------------


def _shape(t: ir.TensorType) -> str:
    return str(t)


def _count(nodes: list[ir.Node]) -> tuple[int, int]:
    """(parameters, MACs) of some nodes, each weight owner counted once."""
    seen: set[str] = set()
    params = 0
    for n in nodes:
        if n.params and n.layer not in seen:
            seen.add(n.layer)
            params += sum(p.size for p in n.params)
    return params, sum(n.macs for n in nodes)


def _node_line(node: ir.Node) -> str:
    params = sum(p.size for p in node.params)
    shared = f" (shared layer `{node.layer}`)" if node.shared else ""
    return f"`{node.name}`: {node.op} → `{_shape(node.type)}`, {params:,} params{shared}, {node.macs:,} MACs"


def _summary(label: str, out: ir.TensorType, nodes: list[ir.Node]) -> str:
    params, macs = _count(nodes)
    layers = f" in {len(nodes)} layer{'s' if len(nodes) != 1 else ''}" if len(nodes) != 1 else ""
    return f"{label} → `{_shape(out)}`: {params:,} params, {macs:,} MACs{layers}"


def hover(a: Analysis, line: int, col: int) -> tuple[str, Span] | None:
    """Markdown for the thing at a position, and the range it covers; None if nothing is there."""
    occ = a.at(line, col)
    if occ is None:
        return None
    text = None
    if occ.kind == "kwarg":
        text = docs.attr_markdown(occ.op, occ.key, occ.prefer) or _block_param_doc(a, occ.op, occ.key)
    elif occ.kind == "op":
        text = _op_hover(a, occ)
    elif occ.symbol is not None:
        text = _symbol_hover(a, occ)
    return (text, occ.span) if text else None


def _not_checked(a: Analysis) -> str:
    return "*(shapes appear once the spec checks)*"


def _op_hover(a: Analysis, occ: Occurrence) -> str | None:
    parts = []
    if occ.target is not None:
        result = _step_result(a, occ)
        if result:
            parts.append(result)
    doc = docs.op_markdown(occ.op, occ.prefer)
    if doc:
        parts.append(doc)
    return "\n\n---\n\n".join(parts) if parts else None


def _step_result(a: Analysis, occ: Occurrence) -> str | None:
    """Output shape, params and MACs of an op step (every use, in a block)."""
    found = a.nodes_at(occ.target.span)
    if not found:
        return _not_checked(a) if occ.op in OPS and not a.checked else None
    nodes = [n for _, n in found]
    if len(nodes) == 1:
        return _node_line(nodes[0])
    lines = [f"{len(nodes)} layers from this step:"]
    lines += [f"- {_node_line(n)}" for n in nodes[:MAX_LISTED]]
    if len(nodes) > MAX_LISTED:
        lines.append(f"- ... and {len(nodes) - MAX_LISTED} more")
    return "\n".join(lines)


def _block_param_doc(a: Analysis, block: str, key: str) -> str | None:
    for b in a.blocks():
        if b.name == block:
            for p in b.params:
                if p.name == key:
                    return f"```netspec\n{_param_text(p)}\n```\n\nparameter of block `{block}`"
    return None


def _param_text(p: ast.Param) -> str:
    from ..frontend.format import expr

    return p.name if p.default is None else f"{p.name}={expr(p.default)}"


def _block_signature(b: ast.BlockDef) -> str:
    return f"block {b.name}({', '.join(_param_text(p) for p in b.params)})"


def _symbol_hover(a: Analysis, occ: Occurrence) -> str | None:
    sym = occ.symbol
    if sym.kind == "block":
        head = f"```netspec\n{_block_signature(sym.node)}\n```"
        if occ.kind == "ref" and occ.target is not None:
            result = _block_step_result(a, occ)
            return head + (f"\n\n{result}" if result else "")
        uses = len(sym.refs)
        return head + f"\n\nused {uses} time{'s' if uses != 1 else ''}"
    if sym.kind == "network":
        net = a.networks.get(sym.name)
        if net is None:
            return f"```netspec\nnetwork {sym.name}\n```\n\n{_not_checked(a)}"
        trainable, non = net.param_counts()
        outs = ", ".join(f"{n} `{net.type_of(v)}`" for n, v in zip(net.output_names, net.outputs))
        return (f"```netspec\nnetwork {sym.name}\n```\n\n{len(net.nodes)} layers; outputs: {outs}\n\n"
                f"{trainable + non:,} params ({trainable:,} trainable), {sum(n.macs for n in net.nodes):,} MACs")
    if sym.kind == "param":
        return f"```netspec\n{_param_text(sym.node)}\n```\n\nparameter of block `{sym.container}`"
    if sym.kind in ("input", "target"):
        from ..frontend.format import tensor_type

        head = f"```netspec\n{sym.kind} {sym.name}: {tensor_type(sym.node.type)}\n```"
        return head
    if sym.kind == "layer":
        return _layer_hover(a, occ)
    if sym.kind == "value":
        return _value_hover(a, sym)
    return None


def _layer_hover(a: Analysis, occ: Occurrence) -> str:
    sym = occ.symbol
    from ..frontend.format import expr

    head = f"```netspec\nlayer {sym.name} = {expr(sym.node.call)}\n```"
    uses = []
    for net in a.networks.values():
        uses += [n for n in net.nodes if (n.layer == sym.name or n.layer.endswith(f".{sym.name}"))
                 and _in_decl(n.span, a, sym.container)]
    if occ.kind == "ref" and occ.target is not None:
        here = [n for _, n in a.nodes_at(occ.target.span)]
        if here:
            uses_here = "\n".join(f"- {_node_line(n)}" for n in here[:MAX_LISTED])
            return f"{head}\n\nshared layer, this use:\n{uses_here}"
    if not uses:
        return f"{head}\n\n{_not_checked(a)}" if not a.checked else f"{head}\n\nshared layer, not used"
    params = sum(p.size for p in uses[0].params)
    lines = [f"{head}", f"shared layer: {params:,} params (counted once), used {len(uses)} "
                        f"time{'s' if len(uses) != 1 else ''}"]
    lines.append("\n".join(f"- {_node_line(n)}" for n in uses[:MAX_LISTED]))
    return "\n\n".join(lines)


def _in_decl(span: Span | None, a: Analysis, container: str | None) -> bool:
    """Whether a node's span lies inside the declaration ``container``."""
    sym = a.symbol(container, None) if container else None
    if sym is None or sym.decl_span is None or span is None:
        return True
    d = sym.decl_span
    return (d.line, d.col) <= (span.line, span.col) <= (d.end_line, d.end_col)


def _value_hover(a: Analysis, sym: Symbol) -> str:
    head = f"```netspec\n{sym.name}\n```"
    container = a.symbol(sym.container, None)
    if container is not None and container.kind == "network":
        stale = sym.container not in a.networks
        if stale and sym.container not in a.last_good:
            return f"{head}\n\n{_not_checked(a)}"
        nodes = a.value_nodes(sym.container, stale).get(sym.name, [])
        if not nodes:  # `y = x`: an alias, or a value the last good version did not have
            return head + ("\n\n" + _not_checked(a) if stale else "")
        text = f"{head}\n\n" + _summary(f"`{sym.name}`", nodes[-1].type, nodes)
        return text + ("\n\n*(as of the last version that checked)*" if stale else "")
    # in a block: one line per use of the block
    lines = []
    for net in a.networks.values():
        paths = []
        for n in net.nodes:
            m = re.match(rf"^(.*?\d+\.){re.escape(sym.name)}\.", n.name)
            if m and m.group(1) not in paths and _in_decl(n.span, a, sym.container):
                paths.append(m.group(1))
        for p in paths:
            nodes = [n for n in net.nodes if n.name.startswith(f"{p}{sym.name}.")]
            lines.append(f"- {_summary(f'`{p}{sym.name}`', nodes[-1].type, nodes)}")
    if not lines:
        return f"{head}\n\n" + (_not_checked(a) if not a.checked else f"block `{sym.container}` is not used")
    more = f"\n- ... and {len(lines) - MAX_LISTED} more" if len(lines) > MAX_LISTED else ""
    return f"{head}\n\nin each use of block `{sym.container}`:\n" + "\n".join(lines[:MAX_LISTED]) + more


def _block_step_result(a: Analysis, occ: Occurrence) -> str | None:
    """A block used as a step of a network-level binding: its output, params and MACs."""
    container = a.symbol(occ.container, None)
    if container is None or container.kind != "network":
        return None
    net = a.networks.get(occ.container)
    if net is None:
        return _not_checked(a)
    binding = _binding_of(container.node, occ.step)
    if binding is None:
        return None
    prefix = f"{binding.name}."
    index = 0
    for step in binding.chain.steps:
        t = step.target
        name = t.id if isinstance(t, ast.Name) else t.name
        if name not in {b.name for b in a.blocks()}:
            continue
        count = repeat_count(step)
        if step is occ.step:
            lines = []
            for k in range(index, index + count):
                nodes = [n for n in net.nodes if n.name.startswith(f"{prefix}{k}.")]
                if nodes:
                    lines.append(_summary(f"`{prefix}{k}`", nodes[-1].type, nodes))
            if len(lines) == 1:
                return lines[0]
            return "\n".join(f"- {x}" for x in lines) or None
        index += count
    return None


def _binding_of(decl, step) -> ast.Binding | None:
    for stmt in decl.body:
        if isinstance(stmt, ast.Binding) and any(s is step for s in stmt.chain.steps):
            return stmt
    return None


# Definition and references -------------------------------------------------------------------------


def definition(a: Analysis, line: int, col: int) -> Span | None:
    occ = a.at(line, col)
    if occ is None or occ.symbol is None:
        return None
    return occ.symbol.span


def references(a: Analysis, line: int, col: int, include_declaration: bool = True) -> list[Span]:
    occ = a.at(line, col)
    if occ is None or occ.symbol is None:
        return []
    sym = occ.symbol
    return ([sym.span] if include_declaration else []) + list(sym.refs)


# Outline -----------------------------------------------------------------------------------------


@dataclass
class OutlineItem:
    name: str
    kind: str  # network | block | input | target | value | layer | param
    detail: str
    span: Span  # the whole definition
    selection: Span  # its name
    children: list[OutlineItem]


def outline(a: Analysis) -> list[OutlineItem]:
    """Networks and blocks, with their inputs, targets, shared layers, values and parameters."""
    items: dict[str, OutlineItem] = {}
    top: list[OutlineItem] = []
    for sym in a.symbols:
        span = sym.decl_span or sym.span
        if sym.kind in ("network", "block"):
            detail = _block_signature(sym.node)[len("block "):] if sym.kind == "block" else "network"
            item = OutlineItem(sym.name, sym.kind, detail, _cover(span, sym.span), sym.span, [])
            top.append(item)
            items.setdefault(sym.name, item)
            continue
        parent = items.get(sym.container)
        if parent is None:
            continue
        detail = sym.kind
        if sym.kind == "value" and sym.container in a.networks:
            nodes = a.value_nodes(sym.container).get(sym.name)
            if nodes:
                detail = str(nodes[-1].type)
        elif sym.kind in ("input", "target"):
            from ..frontend.format import tensor_type

            detail = f"{sym.kind} {tensor_type(sym.node.type)}"
        parent.children.append(OutlineItem(sym.name, sym.kind, detail, _cover(span, sym.span), sym.span, []))
    return top


def _cover(outer: Span, inner: Span) -> Span:
    """``outer``, widened to contain ``inner`` (a client requires the selection inside the range)."""
    return outer.merge(inner)


# Completion -------------------------------------------------------------------------------------


@dataclass
class Completion:
    label: str
    kind: str  # op | activation | merge | block | layer | value | param | keyword | argument | loss | optimizer | ...
    detail: str = ""
    documentation: str = ""
    insert: str | None = None


KEYWORDS_BODY = ("input", "target", "layer", "output", "loss", "optimizer")
KEYWORDS_TOP = ("network", "block")
DTYPES = ("float32", "int32", "int64")

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


def _scope_names(text: str, line: int) -> dict:
    """Names defined in the declaration around ``line``, up to that line, read from the text
    (it may not parse while it is being typed): values, shared layers, block params, inputs."""
    lines = text.split("\n")
    start = 0
    for i in range(min(line, len(lines)) - 1, -1, -1):
        if re.match(r"[ \t]*(network|block)\b", lines[i]):
            start = i
            break
    head = lines[start] if lines else ""
    out = {"values": [], "layers": [], "params": [], "in_block": head.lstrip().startswith("block")}
    m = re.match(rf"\s*block\s+{_NAME}\s*\(([^)]*)\)", head)
    if m:
        out["params"] = [p.split("=")[0].strip() for p in m.group(1).split(",") if p.strip()]
    for ln in lines[start + 1:line - 1]:
        if (m := re.match(rf"\s*(?:input|target)\s+({_NAME})\s*:", ln)):
            out["values"].append(m.group(1))
        elif (m := re.match(rf"\s*layer\s+({_NAME})\s*=", ln)):
            out["layers"].append(m.group(1))
        elif (m := re.match(rf"\s*({_NAME})\s*=", ln)):
            out["values"].append(m.group(1))
    return out


def _blocks_in(text: str) -> dict[str, list[tuple[str, str]]]:
    """Every block written in the text: name -> [(param, default text)]."""
    out = {}
    for m in re.finditer(rf"(?m)^[ \t]*block\s+({_NAME})\s*\(([^)]*)\)", text):
        params = []
        for p in m.group(2).split(","):
            if p.strip():
                name, _, default = p.partition("=")
                params.append((name.strip(), default.strip()))
        out[m.group(1)] = params
    return out


def _open_call(text: str) -> tuple[str, int] | None:
    """The innermost bracket open at the end of ``text`` (skipping strings and comments):
    its character and offset."""
    stack: list[tuple[str, int]] = []
    i = 0
    pairs = {")": "(", "]": "[", "}": "{"}
    while i < len(text):
        ch = text[i]
        if ch == "#":
            j = text.find("\n", i)
            i = len(text) if j < 0 else j
            continue
        if ch == '"':
            i += 1
            while i < len(text) and text[i] not in '"\n':
                i += 2 if text[i] == "\\" else 1
        elif ch in "([{":
            stack.append((ch, i))
        elif ch in pairs and stack and stack[-1][0] == pairs[ch]:
            stack.pop()
        i += 1
    return stack[-1] if stack else None


def _op_item(op, kind: str | None = None) -> Completion:
    return Completion(op.name, kind or op.category, docs.call_with_defaults(op), docs.op_markdown(op.name) or "")


def completions(a: Analysis, line: int, col: int) -> list[Completion]:
    """What may be written at a position: op names, arguments with defaults, blocks, values in scope."""
    lines = a.text.split("\n")
    if line - 1 >= len(lines):
        return []
    offset = sum(len(x) + 1 for x in lines[:line - 1]) + col - 1
    # from the start of the declaration around the cursor: brackets opened there are still open
    decl_start = 0
    for m in re.finditer(r"(?m)^[ \t]*(?:network|block)\b", a.text[:offset]):
        decl_start = m.start()
    before = a.text[decl_start:offset]
    word = re.search(rf"{_NAME}$", before)
    stem = before[: len(before) - (len(word.group(0)) if word else 0)]
    scope = _scope_names(a.text, line)
    blocks = _blocks_in(a.text)
    values = [Completion(v, "value") for v in dict.fromkeys(scope["values"])]
    params = [Completion(p, "param", "block parameter") for p in scope["params"]]
    if scope["in_block"]:
        values.append(Completion("in", "keyword", "the block's input"))

    opened = _open_call(before)
    if opened and opened[0] == "(":
        return _in_call(before[: opened[1]], before[opened[1] + 1:], stem, values, params, blocks)
    if opened and opened[0] == "[":
        return []
    line_before = lines[line - 1][: col - 1]
    stripped = stem.rstrip()
    if stripped.endswith("->"):
        return _steps(scope, blocks, params)
    if re.match(rf"\s*layer\s+{_NAME}\s*=\s*$", stem.split("\n")[-1]):
        return [_op_item(op) for op in OPS.values() if op.category not in ("merge", "activation")]
    if re.match(r"\s*(?:return\s+|[A-Za-z_]\w*\s*=\s*)$", stem.split("\n")[-1]):
        return values + [_op_item(op) for op in MERGE_OPS.values()]
    if re.match(r"\s*output\s+", line_before):
        return values
    if re.match(r"\s*loss\s+", line_before):
        return [_op_item(op, "loss") for op in LOSS_FNS.values()]
    if re.match(r"\s*optimizer\s+", line_before):
        return [_op_item(op, "optimizer") for op in OPTIMIZER_DEFS.values()]
    if re.match(rf"\s*(?:input|target)\s+{_NAME}\s*:\s*$", stem.split("\n")[-1]):
        return [Completion(d, "keyword", "dtype") for d in DTYPES]
    if re.match(rf"\s*{_NAME}?$", line_before):
        inside = a.text[:offset].count("{") > a.text[:offset].count("}")
        keys = (*KEYWORDS_BODY, *(("return",) if scope["in_block"] else ())) if inside else KEYWORDS_TOP
        return [Completion(k, "keyword") for k in keys]
    return values + _steps(scope, blocks, params)


def _steps(scope, blocks, params) -> list[Completion]:
    items = [_op_item(op) for op in OPS.values() if op.category != "merge"]
    items += [Completion(b, "block", f"block {b}({', '.join(p + ('=' + d if d else '') for p, d in ps)})")
              for b, ps in blocks.items()]
    items += [Completion(x, "layer", "shared layer") for x in scope["layers"]]
    return items + params


def _in_call(head: str, inside: str, stem: str, values, params, blocks) -> list[Completion]:
    """Inside ``name(...``: its arguments with their defaults, or the values an argument can take."""
    m = re.search(rf"({_NAME})\s*$", head)
    if not m:
        return values + params
    name = m.group(1)
    statement = head.split("\n")[-1].lstrip()
    prefer = "loss" if statement.startswith("loss") else "optimizer" if statement.startswith("optimizer") else None
    # the argument being written: after the last comma at this call's level
    depth, last = 0, 0
    for i, ch in enumerate(inside):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            last = i + 1
    current = inside[last:]
    given = set(re.findall(rf"({_NAME})\s*=(?!=)", inside))
    key = re.match(rf"\s*({_NAME})\s*=\s*(?:{_NAME})?$", current)  # `mask=` or `mask=pa`
    if name in blocks:
        if key:
            return values + params
        # a value name passes that value to a value parameter (docs/language.md#value-parameters)
        return [Completion(p, "argument", f"{p}={d}" if d else f"{p} (required)", insert=f"{p}=")
                for p, d in blocks[name] if p not in given] + values + params
    op = docs.find(name, prefer)
    if op is None:
        return values + params
    if key:  # `activation=re`: the family members this argument takes
        attr = op.attrs.get(key.group(1))
        if attr is not None and isinstance(attr.kind, CallableKind):
            return [_op_item(f, attr.kind.family) for f in FAMILIES[attr.kind.family].values()] + params
        if key.group(1) in op.value_args or key.group(1) == "initial_state":  # `mask=pad`: names a value
            return values + params
        return params
    items = []
    if op.category in ("merge", "loss"):
        items += values
    for k, attr in op.attrs.items():
        if k in given:
            continue
        default = docs.value_text(attr.default)
        detail = "required" if attr.required else f"= {default or 'none'}"
        items.append(Completion(k, "argument", detail, docs.attr_line(op, k), insert=f"{k}="))
    return items + params


# Formatting ------------------------------------------------------------------------------------------


def format_text(name: str, text: str) -> str | None:
    """The text as ``netspec fmt`` writes it; None when the spec does not parse and check."""
    from ..checker import check_module
    from ..frontend import parse_source
    from ..frontend.format import format_module, source_comments
    from ..source import Source

    source = Source(name, text)
    form = "yaml" if name.lower().endswith((".yaml", ".yml")) else "net"
    try:
        module = parse_source(source, form)
        check_module(module, source)
    except SpecError:
        return None
    return format_module(module, form, comments=source_comments(text, form), keep_breaks=form == "net")
