"""Liveness on the IR: where an op may overwrite its input instead of allocating its output.

A PyTorch generator writes ``F.relu(x, inplace=True)`` or ``x += y`` only where that
cannot change a number or break a backward pass. :func:`inplace_nodes` decides it on the
flat node list (block boundaries do not matter: a value read later outside a block is
read later), framework-free:

- the op can work in place: an activation that keeps its input's shape (``relu``,
  ``relu6``, ``leaky_relu``, ``elu``, ``swish``, ``hard_sigmoid``) or a residual
  ``add`` whose first operand already has the output's shape and dtype;
- the overwritten value is read by no later node, is not a network output, not a loss
  argument, not a network input (the caller's tensor), and no value that shares its
  memory (a reshape, flatten, permute, dropout or identity of it, or what it is one of)
  is read later either;
- its producer does not keep its own output for its backward pass: only convolutions,
  dense layers, normalisations, adds, concatenations, pads, pools and resizes qualify
  (an activation such as sigmoid or tanh differentiates through its output);
- no other reader keeps it for its backward pass: every other node reading the value (or
  a view of it) is an add, a subtract or a concat (a pre-norm block reads ``h`` with a
  layernorm and attention before ``add(h, m)``: overwriting ``h`` there would corrupt their
  gradients).
"""

from __future__ import annotations

from . import ir
from .ops.registry import OPS

#: Activations PyTorch can apply in place (their backward needs only their own output or input).
INPLACE_ACTIVATIONS = frozenset({"relu", "relu6", "leaky_relu", "elu", "swish", "hard_sigmoid"})

#: Op families (the registry's ``family``) and merges whose backward pass does not read their output: it may
#: be overwritten after them. Of the global pools, only the average (a max keeps its winner).
_PRODUCER_FAMILIES = frozenset({"conv", "conv_transpose", "depthwise_conv", "separable_conv", "dense", "batchnorm",
                                "layernorm", "zeropad", "pool", "upsample", "embedding"})
_PRODUCER_MERGES = frozenset({"add", "subtract", "concat"})

#: Ops whose backward pass does not read their inputs: they may read a value that is later overwritten.
_INPUT_FREE = frozenset({"add", "subtract", "concat"})

#: Ops whose output may share its input's memory.
_VIEWS = frozenset({"flatten", "reshape", "permute", "dropout", "linear"})


def _safe_producer(op: str) -> bool:
    if op in _PRODUCER_MERGES:
        return True
    spec = OPS.get(op)
    if spec is None:  # an op only lowering creates (``pad``): not assumed safe
        return False
    return spec.family in _PRODUCER_FAMILIES or (spec.family == "global_pool" and spec.kind == "avg")


def inplace_nodes(network: ir.Network) -> frozenset[str]:
    """Names of the nodes that may overwrite their first input (see the module's docstring)."""
    nodes = network.nodes
    by_name = {n.name: n for n in nodes}
    last_use: dict[str, int] = {}
    for i, n in enumerate(nodes):
        for v in n.inputs:
            last_use[v] = i
    kept = set(network.outputs) | {v for t in network.loss for v in t.args} | {v.name for v in network.inputs}
    # alias groups: a view shares its input's memory
    root: dict[str, str] = {}
    for n in nodes:
        root[n.name] = root.get(n.inputs[0], n.inputs[0]) if n.op in _VIEWS and n.inputs else n.name
    group_last: dict[str, int] = {}
    for v, i in last_use.items():
        r = root.get(v, v)
        group_last[r] = max(group_last.get(r, -1), i)
    kept_roots = {root.get(v, v) for v in kept}
    readers: dict[str, list[ir.Node]] = {}
    for m in nodes:
        for r in {root.get(x, x) for x in m.inputs}:
            readers.setdefault(r, []).append(m)
    out = set()
    for i, n in enumerate(nodes):
        if not n.inputs:
            continue
        v = n.inputs[0]
        if n.op in INPLACE_ACTIVATIONS:
            pass
        elif n.op == "add":
            if network.type_of(v) != n.type or n.inputs.count(v) > 1:
                continue
        else:
            continue
        producer = by_name.get(v)
        if producer is None or not _safe_producer(producer.op) or producer.attrs.get("activation"):
            continue  # a network input, or a producer that keeps its output (a fused activation does too)
        r = root.get(v, v)
        if v in kept or r in kept_roots or last_use.get(v) != i or group_last.get(r, -1) > i:
            continue
        if r != v:  # overwriting a view would change the value it views
            continue
        if any(m is not n and m.op not in _VIEWS and m.op not in _INPUT_FREE
               and any(root.get(x, x) == r for x in m.inputs) for m in readers.get(r, ())):
            continue  # another reader keeps the value for its backward pass
        out.add(n.name)
    return frozenset(out)
