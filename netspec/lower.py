"""The lowering stage: passes between the checked IR and the backends.

The pipeline is parse -> check -> IR -> **lower** -> emit (docs/architecture.md). The IR
says what a spec means; a lowering pass rewrites one network into an equivalent one that
is closer to what a backend can write, so that no backend re-derives the same decision.
Each pass is a pure function ``ir.Network -> ir.Network``; each backend declares the
passes it wants (``Backend.lowering``) and :func:`lower` runs them in order.

What the passes add (documented here once; emitters read these, never recompute them):

- ``extra`` on every windowed pool (:func:`ceil_extra`): per spatial axis, the end
  padding that ceil-mode rounding adds beyond ``padding`` (PyTorch's rule: a window that
  would start in the end padding is dropped). Those positions are never counted by an
  average. ``None`` on a run-time axis of a ceil-mode pool (unknown until run time);
  all zeros without ceil mode.
- ``same`` on every windowed op (:func:`same_intent`): whether its explicit ``(begin,
  end)`` pads are exactly TensorFlow's ``padding="same"`` for its input sizes (and no
  ``extra``; and, for an average, padding is not counted, as a native 'same' average
  divides by the real elements), so that a backend with a native 'same' can write it. The pads stay beside
  it: 'same' is kept as intent, never instead of the numbers. For a shared layer it holds
  only where it holds at every use (one layer object cannot pad two ways), and for one line
  of a block only where it holds in every instance (so that the block is written once).
- ``pad`` nodes (:func:`pad_nodes`): padding a layer cannot express moved into a node of
  its own, ``<node>.pad``, with ``padding`` pairs and the fill ``value``: 0 before a
  convolution or a counting average, ``-inf`` before a max pool (padding never wins; the
  ceil-mode ``extra`` is folded in). The layer is left with zero pads. ``pads("not_same")``
  moves every pad that is not 'same' (Keras); ``pads("asymmetric")`` only asymmetric ones (PyTorch).
- unfused activations (:func:`unfuse_activations`): an ``activation=`` a backend cannot
  fuse becomes a node of its own, ``<node>.<activation>``, reading the layer's output;
  readers of the layer's value (and the network's outputs and loss terms) read the new
  node instead; ``output_names`` keep the spec's names.

``pad`` is the one op that exists only after lowering (:data:`LOWERED_OPS`); every
backend that asks for :func:`pad_nodes` has an emitter for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

from . import ir, shapes
from .ops.registry import OPS

Pass = Callable[[ir.Network], ir.Network]

#: Ops that only lowering creates: name -> what it means.
LOWERED_OPS = {"pad": "constant padding of the spatial axes: attrs padding ((begin, end) per axis), value"}

NEG_INF = float("-inf")


def lower(network: ir.Network, passes: Iterable[Pass]) -> ir.Network:
    """``network`` rewritten by each pass in turn (the IR itself is never modified)."""
    for p in passes:
        network = p(network)
    return network


def _replace(network: ir.Network, nodes: list[ir.Node], renamed: dict[str, str] | None = None) -> ir.Network:
    """``network`` with new nodes; ``renamed`` values (old -> new) also renamed in the outputs and loss terms."""
    update: dict = {"nodes": tuple(nodes)}
    if renamed:
        update["outputs"] = tuple(renamed.get(o, o) for o in network.outputs)
        update["output_names"] = network.output_names or network.outputs
        update["loss"] = tuple(t.model_copy(update={"args": tuple(renamed.get(a, a) for a in t.args)})
                               for t in network.loss)
    return network.model_copy(update=update)


def _with(node: ir.Node, **attrs) -> ir.Node:
    return node.model_copy(update={"attrs": {**node.attrs, **attrs}})


def _spatial_sizes(network: ir.Network, node: ir.Node) -> tuple:
    return network.type_of(node.inputs[0]).shape[1:]


def _is_pool(node: ir.Node) -> bool:
    op = OPS.get(node.op)
    return op is not None and op.family == "pool"


def _windowed(node: ir.Node) -> bool:
    op = OPS.get(node.op)
    return op is not None and op.windowed


def _window(node: ir.Node) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(kernel, stride, dilation) of a windowed op."""
    a = node.attrs
    if _is_pool(node):
        return tuple(a["pool"]), tuple(a["stride"]), (1,) * len(a["pool"])
    return tuple(a["kernel"]), tuple(a["stride"]), tuple(a["dilation"])


# Pool rounding ----------------------------------------------------------------------------------


def pool_extra(sizes, pool, stride, pads, out, ceil_mode: bool) -> tuple[int | None, ...]:
    """Per axis, the end padding ceil-mode rounding adds: windows ``(out - 1) * stride + pool`` minus the padded size.

    Zero without ceil mode; ``None`` where the input or output size is known only at run time.
    """
    extra: list[int | None] = []
    for size, k, s, (pb, pe), n in zip(sizes, pool, stride, pads, out):
        if not ceil_mode:
            extra.append(0)
        elif not isinstance(size, int) or not isinstance(n, int):
            extra.append(None)
        else:
            extra.append(max(0, (n - 1) * s + k - (size + pb + pe)))
    return tuple(extra)


def ceil_extra(network: ir.Network) -> ir.Network:
    """Record ``extra`` (the end padding ceil mode adds) on every windowed pool."""
    nodes = []
    for n in network.nodes:
        if _is_pool(n):
            a = n.attrs
            extra = pool_extra(_spatial_sizes(network, n), a["pool"], a["stride"], a["padding"], n.type.shape[1:],
                               a["ceil_mode"])
            n = _with(n, extra=extra)
        nodes.append(n)
    return _replace(network, nodes)


# 'same' as intent -------------------------------------------------------------------------------


def same_pads(sizes, kernel, stride, dilation) -> tuple[tuple[int, int], ...] | None:
    """TensorFlow's 'same' pads for these sizes, or None where a size is unknown and the stride is not 1."""
    out = []
    for size, k, s, d in zip(sizes, kernel, stride, dilation):
        if isinstance(size, int):
            out.append(shapes.same_padding(size, k, s, d))
        elif s == 1:
            total = shapes.effective_kernel(k, d) - 1
            out.append((total // 2, total - total // 2))
        else:
            return None
    return tuple(out)


def _is_same(network: ir.Network, node: ir.Node) -> bool:
    kernel, stride, dilation = _window(node)
    pads = tuple(tuple(p) for p in node.attrs["padding"])
    if any(node.attrs.get("extra") or ()):
        return False
    if node.attrs.get("count_include_pad"):  # a native 'same' average divides by the real elements only
        return False
    return pads == same_pads(_spatial_sizes(network, node), kernel, stride, dilation)


def template_keys(network: ir.Network) -> dict[str, list[tuple[str, str]]]:
    """Node name -> a key (block, name relative to the instance) per block instance enclosing the node.

    Nodes that share a key are the same line of a block's body in different instances; a generator
    that writes a block once (a function or a class) needs each such group to take one form, at
    every nesting level.
    """
    keys: dict[str, list[tuple[str, str]]] = {}
    for inst in network.instances:
        for n in network.nodes:
            if n.name.startswith(inst.path):
                keys.setdefault(n.name, []).append((inst.block, n.name[len(inst.path):]))
    return keys


def same_intent(network: ir.Network) -> ir.Network:
    """Record ``same`` on every windowed op: its pads are TensorFlow's 'same'.

    One decision per group that must take one form: every use of a shared layer, and one line of a
    block's body across the block's instances (so that the block can be written once).
    """
    keys = template_keys(network)
    verdict: dict[object, bool] = {}
    groups: dict[str, tuple] = {}
    for n in network.nodes:
        if _windowed(n):
            groups[n.name] = (("layer", n.layer), *(("template", k) for k in keys.get(n.name, ())))
            for g in groups[n.name]:
                verdict[g] = verdict.get(g, True) and _is_same(network, n)
    changed = True
    while changed:  # a layer shared across templates: propagate until every group agrees
        changed = False
        for gs in groups.values():
            v = all(verdict[g] for g in gs)
            for g in gs:
                if verdict[g] != v:
                    verdict[g], changed = v, True
    nodes = [_with(n, same=all(verdict[g] for g in groups[n.name])) if _windowed(n) else n for n in network.nodes]
    return _replace(network, nodes)


# Pad nodes ----------------------------------------------------------------------------------------


def _needs_pad_node(node: ir.Node, mode: str) -> tuple[bool, float]:
    """(move the padding out, fill value) for one windowed op under ``mode``."""
    a = node.attrs
    pads = tuple(tuple(p) for p in a["padding"])
    extra = a.get("extra") or (0,) * len(pads)
    if all(p == (0, 0) for p in pads) and not any(e for e in extra if e):
        return False, 0.0
    asymmetric = any(b != e for b, e in pads)
    if mode == "not_same":
        movable = not a.get("same", False)
    elif mode == "asymmetric":
        movable = asymmetric
    else:
        raise ValueError(f"unknown pad mode '{mode}'; expected not_same or asymmetric")
    if not _is_pool(node):
        return movable, 0.0
    if None in extra:  # ceil mode on a run-time axis: the backend decides (or reports E601)
        return False, 0.0
    if OPS[node.op].kind == "max":
        # a layer with ceil mode (PyTorch's) keeps symmetric pads and its own rounding; else the extra moves
        return movable or (mode == "not_same" and any(extra)), NEG_INF
    # an average counts padding only with count_include_pad, and never the ceil-mode extra
    return bool(a["count_include_pad"] and not any(extra) and movable), 0.0


def _padded_type(t: ir.TensorType, pads) -> ir.TensorType:
    c, *sizes = t.shape
    out = tuple(s + b + e if isinstance(s, int) else f"{s}+{b + e}" for s, (b, e) in zip(sizes, pads))
    return ir.TensorType(dtype=t.dtype, shape=(c, *out))


def pad_nodes(network: ir.Network, mode: str = "not_same") -> ir.Network:
    """Move padding a layer cannot express into a ``pad`` node before it.

    ``mode="not_same"``: the layer takes only 'valid' or 'same' (Keras): every pad that is not
    ``same`` moves. ``mode="asymmetric"``: the layer takes symmetric pads and ceil mode (PyTorch's
    modules): only asymmetric pads move. A moved max pool takes its ceil-mode ``extra`` with it
    (filled with -inf; under ``not_same`` every max pool with ``extra`` moves, as the layer has no
    ceil mode); averages move only counting (``count_include_pad``) pads without ``extra``.
    """
    names = {n.name for n in network.nodes} | {v.name for v in network.inputs}
    nodes: list[ir.Node] = []
    for n in network.nodes:
        if not _windowed(n):
            nodes.append(n)
            continue
        move, value = _needs_pad_node(n, mode)
        if not move:
            nodes.append(n)
            continue
        pads = tuple(tuple(p) for p in n.attrs["padding"])
        extra = n.attrs.get("extra") or (0,) * len(pads)
        full = tuple((b, e + x) for (b, e), x in zip(pads, extra))
        name = _fresh(f"{n.name}.pad", names)
        src = n.inputs[0]
        pad = ir.Node(name=name, op="pad", attrs={"padding": full, "value": value}, inputs=(src,),
                      type=_padded_type(network.type_of(src), full), layer=name, span=n.span)
        zero = ((0, 0),) * len(pads)
        attrs = {"padding": zero, "same": False}
        if _is_pool(n):
            attrs.update(extra=(0,) * len(pads), ceil_mode=False)
        nodes += [pad, n.model_copy(update={"attrs": {**n.attrs, **attrs}, "inputs": (name, *n.inputs[1:])})]
    return _replace(network, nodes)


def _fresh(name: str, taken: set[str]) -> str:
    base, k = name, 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


# Activations -------------------------------------------------------------------------------------


def unfuse_activations(network: ir.Network, fusable: Callable[[ir.Node, dict], bool]) -> ir.Network:
    """Split every ``activation=`` that ``fusable(node, activation)`` rejects into a node of its own.

    The new node, ``<node>.<activation name>``, applies the activation op (its attributes
    those of the ``activation`` value) to the layer's output; every reader of the layer's
    value, and the network's outputs, read the new node. ``linear`` is dropped.
    """
    names = {n.name for n in network.nodes} | {v.name for v in network.inputs}
    renamed: dict[str, str] = {}
    nodes: list[ir.Node] = []
    for n in network.nodes:
        if renamed:
            n = n.model_copy(update={"inputs": tuple(renamed.get(i, i) for i in n.inputs)})
        act = n.attrs.get("activation")
        if act is None or fusable(n, act):
            nodes.append(n)
            continue
        nodes.append(_with(n, activation=None))
        if act["name"] == "linear":
            continue
        name = _fresh(f"{n.name}.{act['name']}", names)
        attrs = {k: v for k, v in act.items() if k != "name"}
        if "axis" in attrs:  # softmax: a per-sample axis, normalised as the checker does
            attrs["axis"] %= max(n.type.rank, 1)
        nodes.append(ir.Node(name=name, op=act["name"], attrs=attrs, inputs=(n.name,), type=n.type, layer=name,
                             span=n.span))
        renamed[n.name] = name
    return _replace(network, nodes, renamed)


def unfuse(fusable: Callable[[ir.Node, dict], bool]) -> Pass:
    """:func:`unfuse_activations` with a backend's rule, as a pass."""
    return partial(unfuse_activations, fusable=fusable)


def pads(mode: str) -> Pass:
    """:func:`pad_nodes` in ``mode``, as a pass."""
    return partial(pad_nodes, mode=mode)
