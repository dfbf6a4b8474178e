"""Pretrained weights in: PyTorch and Keras checkpoints -> canonical weights of a spec.

Two ways to match a checkpoint's layers to the spec's:

- by name, when the checkpoint came from netspec's own generated code: it is loaded
  into the generated model (strictly) and read back in canonical form;
- by structure otherwise: the checkpoint's weighted layers and the spec's are put in
  data-flow order (the number of weighted layers on the longest path from an input,
  then their own order) and paired one by one, each pair checked op against layer
  kind and tensor by tensor against the canonical shapes, with the layout converted
  (Keras kernels HWIO -> OIHW, dense kernels transposed, depthwise kernels, RNN gate
  orders; a Keras dense layer after a Flatten of an image has its rows reordered from
  Keras's (H, W, C) to the spec's (C, H, W)). A projection shortcut that a framework builds before the main path sits at
  a smaller depth than the main path's last convolution in both graphs, so it pairs
  with the spec's shortcut whatever the order of declaration. A checkpoint without
  a graph (a state_dict file) is paired in its own order, with a small look-ahead for
  shortcuts declared out of order. A PyTorch RNN with ``num_layers = n`` is n layers
  (``<name>.l0`` ...), a depthwise ``Conv2d`` (Keras ``DepthwiseConv2D``) and the 1x1 ``Conv2d``
  (``Conv2D``) that reads it pair with one ``separable_conv2d``, and a Keras model used as a
  layer is flattened (``<model>/<layer>``).

``mapping`` (``{spec layer: checkpoint layer}``) fixes pairs by hand. Any mismatch
raises :class:`WeightsImportError` naming both sides; nothing is returned half-done.
Checkpoint files are read with safe loaders only: ``torch.load(weights_only=True)``,
safetensors, HDF5 through h5py, and ``.keras`` archives with Keras's safe mode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import ir
from ..ops.registry import OPS


class WeightsImportError(Exception):
    """A checkpoint that does not fit the spec; the message names both sides."""


@dataclass(eq=False)  # compared by identity: its tensors are arrays
class Group:
    """One weighted layer of a checkpoint: its name, kind and tensors (framework layout)."""

    name: str
    kind: str                 # torch: module class name or 'state'; keras: layer class name
    tensors: dict[str, np.ndarray]
    depth: int = 0
    order: int = 0
    framework: str = "torch"
    # Keras Dense after a Flatten: the shape whose row-major order the flattened
    # features follow, and whether that is spatial data with the channels last.
    flattened: tuple[int, ...] | None = None
    channels_last: bool | None = None
    # one layer of a stacked PyTorch RNN (num_layers > 1): its index (the ``_l<k>`` of its
    # tensors) and what the report says about it
    rnn_layer: int = 0
    note: str = ""
    # a depthwise conv (PyTorch Conv2d, Keras DepthwiseConv2D): the 1x1 conv that reads it
    # directly (a separable pair), or for Keras why there is none
    partner: str | None = None
    unpaired: str = ""
    # a Keras conv layer: the parts of its config that decide whether it can be half of a pair
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Pair:
    spec_layer: str
    op: str
    source: str
    tensors: list[tuple[str, tuple[int, ...], str]] = field(default_factory=list)  # (canonical, shape, how)


@dataclass
class Result:
    """Canonical weights and the mapping report (spec name <- checkpoint name, shape, conversion)."""

    weights: dict[str, np.ndarray]
    pairs: list[Pair]
    how: str  # "by name" or "by structure"

    def report(self) -> str:
        lines = [f"matched {len(self.pairs)} layers {self.how}:"]
        for p in self.pairs:
            lines.append(f"  {p.spec_layer} ({p.op}) <- {p.source}")
            for name, shape, how in p.tensors:
                lines.append(f"      {name} {list(shape)}{'  ' + how if how else ''}")
        return "\n".join(lines)


# the spec's side ----------------------------------------------------------------------------------

def _spec_layers(network: ir.Network) -> list[tuple[ir.Node, int, int]]:
    """(first node, weighted depth, order) of each weight owner."""
    depth: dict[str, int] = {}
    owners: dict[str, tuple[ir.Node, int, int]] = {}
    for k, n in enumerate(network.nodes):
        d = max((depth.get(i, 0) for i in n.inputs), default=0) + (1 if n.params else 0)
        depth[n.name] = d
        if n.params and n.layer not in owners:
            owners[n.layer] = (n, d, k)
    return list(owners.values())


# Ops that leave a vector as it is (no weights, one input, the same shape): a dense layer
# reads a flatten's order through them.
_PASS_THROUGH = {"dropout", "linear", "relu", "relu6", "sigmoid", "tanh", "softmax", "leaky_relu", "elu",
                 "gelu", "swish", "softplus", "hard_sigmoid"}


def _flatten_inputs(network: ir.Network) -> dict[str, tuple]:
    """{dense layer: the shape its flatten read} for dense layers fed by a flatten of rank >= 2."""
    nodes = {n.name: n for n in network.nodes}
    out = {}
    for n in network.nodes:
        if n.op != "dense" or n.layer in out or len(n.inputs) != 1:
            continue
        src = nodes.get(n.inputs[0])
        while src is not None and src.op in _PASS_THROUGH and not src.params and len(src.inputs) == 1:
            src = nodes.get(src.inputs[0])
        if src is not None and src.op == "flatten":
            shape = tuple(network.type_of(src.inputs[0]).shape)
            if len(shape) >= 2:
                out[n.layer] = shape
    return out


def _flattened_rows(kernel: np.ndarray, g: Group, spec_shape: tuple | None) -> tuple[np.ndarray, str]:
    """A Keras dense kernel's rows in the spec's flatten order.

    Keras flattens an image in (H, W, C) order (a channels-first Flatten transposes to
    it first), the spec in (C, H, W) order: the rows are permuted when the shapes say so.
    """
    keras_shape = g.flattened
    if keras_shape is None or spec_shape is None or len(keras_shape) != len(spec_shape):
        return kernel, ""
    rolled = (*spec_shape[1:], spec_shape[0])
    same, moved = keras_shape == spec_shape, keras_shape == rolled
    if moved and (not same or g.channels_last):
        rank = len(spec_shape)
        rows = kernel.reshape(*rolled, kernel.shape[-1]).transpose(rank - 1, *range(rank - 1), rank)
        return rows.reshape(kernel.shape), "rows (*S, C) -> (C, *S)"
    if same:
        return kernel, ""
    raise WeightsImportError(f"'{g.name}' reads a Flatten of shape {list(keras_shape)}, the spec's dense layer "
                             f"a flatten of {list(spec_shape)}: the orders of their features cannot be matched")


# conversions (framework layout -> canonical) ------------------------------------------------------

def _gates(w: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    blocks = np.split(w, len(order), axis=0)
    return np.concatenate([blocks[i] for i in order], axis=0)


def _torch_to_canonical(node: ir.Node, g: Group) -> dict[str, tuple[np.ndarray, str]]:
    t, op = g.tensors, node.op
    if op in ("simple_rnn", "lstm", "gru", "bidirectional"):
        out, used = {}, set()
        kind = node.attrs["layer"]["op"] if op == "bidirectional" else op
        layer = g.rnn_layer
        for prefix, suffix in ((("forward.", ""), ("backward.", "_reverse")) if op == "bidirectional"
                               else (("", ""),)):
            ih, hh, bih, bhh = (f"{w}_l{layer}{suffix}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            out[f"{prefix}kernel"] = (t[ih], f"= {ih}" if g.note else "")
            out[f"{prefix}recurrent_kernel"] = (t[hh], f"= {hh}" if g.note else "")
            used |= {ih, hh}
            if bih in t:
                used |= {bih, bhh}
                if kind == "gru":
                    out[f"{prefix}bias"] = (t[bih], f"= {bih}" if g.note else "")
                    out[f"{prefix}recurrent_bias"] = (t[bhh], f"= {bhh}" if g.note else "")
                else:
                    out[f"{prefix}bias"] = (t[bih] + t[bhh], f"{bih} + {bhh}" if g.note else "bias_ih + bias_hh")
        extra = sorted(set(t) - used)
        if extra:  # proj_size's weight_hr, or the other direction of a bidirectional module
            raise WeightsImportError(f"'{g.name}' has tensors the spec's {op} does not ({', '.join(extra)})")
        return out
    names = {"batchnorm": {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                           "moving_variance": "running_var"},
             "layernorm": {"gamma": "weight", "beta": "bias"},
             "embedding": {"embeddings": "weight"}}.get(op, {"kernel": "weight", "bias": "bias"})
    return {canon: (t[src], "" if canon == src else f"= {src}") for canon, src in names.items() if src in t}


def _keras_to_canonical(node: ir.Node, g: Group, flat: tuple | None = None) -> dict[str, tuple[np.ndarray, str]]:
    t, op = g.tensors, node.op
    if OPS[op].family in ("recurrent", "bidirectional"):
        kind = node.attrs["layer"]["op"] if op == "bidirectional" else op
        order = OPS[kind].gate_orders.get("keras", tuple(range(OPS[kind].gates)))  # Keras block j = canonical order[j]
        swap = tuple(order.index(i) for i in range(len(order)))  # Keras blocks -> canonical order
        out = {}
        for prefix, sub in ((("forward.", "forward/"), ("backward.", "backward/")) if op == "bidirectional"
                            else (("", ""),)):
            if kind == "gru" and t[f"{sub}bias"].ndim != 2:
                raise WeightsImportError(f"{g.name}: a GRU with reset_after=False computes another function than "
                                         f"the spec's gru (reset gate after the recurrent product)")
            out[f"{prefix}kernel"] = (_gates(t[f"{sub}kernel"].T, swap), "transposed" +
                                      (", gates z,r,h -> r,z,n" if kind == "gru" else ""))
            out[f"{prefix}recurrent_kernel"] = (_gates(t[f"{sub}recurrent_kernel"].T, swap), "transposed")
            if f"{sub}bias" in t:
                b = t[f"{sub}bias"]
                if kind == "gru":
                    out[f"{prefix}bias"] = (_gates(b[0], swap), "row 0")
                    out[f"{prefix}recurrent_bias"] = (_gates(b[1], swap), "row 1")
                else:
                    out[f"{prefix}bias"] = (b, "")
        return out
    out = {}
    for name, arr in t.items():
        how = ""
        if op == "dense" and name == "kernel":
            arr, rows = _flattened_rows(arr, g, flat)
            arr, how = arr.T, "transposed" + (f", {rows}" if rows else "")
        elif (name == "depthwise_kernel") or (op == "depthwise_conv2d" and name == "kernel"):
            kh, kw, c, m = arr.shape
            arr, how = arr.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw), "HWCM -> (C*M)1HW"
            name = "kernel" if op == "depthwise_conv2d" else name
        elif name in ("kernel", "pointwise_kernel") and arr.ndim >= 3:
            n = arr.ndim
            arr = arr.transpose((n - 1, n - 2, *range(n - 2)))
            how = "HWIO -> OIHW" if OPS[op].family != "conv_transpose" else "HWOI -> IOHW"
        out[name] = (arr, how)
    return out


_TORCH_KINDS = {
    "dense": {"Linear", "state"}, "embedding": {"Embedding", "state"},
    "batchnorm": {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "state"}, "layernorm": {"LayerNorm", "state"},
    "lstm": {"LSTM", "state"}, "gru": {"GRU", "state"}, "simple_rnn": {"RNN", "state"},
}
_KERAS_KINDS = {
    "dense": {"Dense"}, "embedding": {"Embedding"}, "batchnorm": {"BatchNormalization"},
    "layernorm": {"LayerNormalization"}, "lstm": {"LSTM"}, "gru": {"GRU"}, "simple_rnn": {"SimpleRNN"},
    "depthwise_conv2d": {"DepthwiseConv2D"}, "separable_conv2d": {"SeparableConv2D", "DepthwiseConv2D"},
    "bidirectional": {"Bidirectional"},
}


def _kind_fits(node: ir.Node, g: Group) -> bool:
    op, family = node.op, OPS[node.op].family
    if g.framework == "torch":
        if family in ("conv", "conv_transpose", "depthwise_conv", "separable_conv"):
            return g.kind == "state" or g.kind.startswith("Conv")
        if op == "bidirectional":
            return g.kind in ("state", {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "RNN"}[node.attrs["layer"]["op"]])
        return g.kind in _TORCH_KINDS.get(op, {"state"})
    if family == "conv_transpose":
        return g.kind.startswith("Conv") and g.kind.endswith("Transpose")
    if family == "conv":
        return g.kind.startswith("Conv") and not g.kind.endswith("Transpose")
    return g.kind in _KERAS_KINDS.get(op, set())


def _torch_separable(node: ir.Node, dw: Group, pw: Group) -> dict[str, tuple[np.ndarray, str]]:
    """A depthwise Conv2d and the 1x1 Conv2d after it as one ``separable_conv2d``."""
    for g in (dw, pw):
        extra = sorted(set(g.tensors) - {"weight", "bias"})
        if extra:
            raise WeightsImportError(f"'{g.name}' has tensors a Conv2d does not ({', '.join(extra)})")
    kd, kp = dw.tensors["weight"], pw.tensors["weight"]
    if kd.ndim != 4 or kd.shape[1] != 1:
        raise WeightsImportError(f"'{dw.name}' is not a depthwise convolution: its weight is {list(kd.shape)}, "
                                 "a depthwise one [C * depth_multiplier, 1, kh, kw]")
    return _separable(node, dw.name, pw.name, "weight", (kd, f"= {dw.name}.weight"), (kp, f"= {pw.name}.weight"),
                      dw.tensors.get("bias"), pw.tensors.get("bias"))


def _keras_separable(node: ir.Node, dw: Group, pw: Group) -> dict[str, tuple[np.ndarray, str]]:
    """A Keras ``DepthwiseConv2D`` and the 1x1 ``Conv2D`` that reads it as one ``separable_conv2d``.

    Kernels are converted as a ``SeparableConv2D``'s are (HWCM -> (C*M)1HW, HWIO -> OIHW).
    """
    if dw.kind != "DepthwiseConv2D" or not pw.kind.startswith("Conv") or pw.kind.endswith("Transpose"):
        raise WeightsImportError(f"'{dw.name} + {pw.name}' is a {dw.kind} and a {pw.kind}; a separable_conv2d "
                                 "takes a DepthwiseConv2D and a 1x1 Conv2D")
    if dw.partner != pw.name:  # a mapping named them: they must be a pair in the graph too
        raise WeightsImportError(dw.unpaired or f"'{dw.name}' (DepthwiseConv2D) is read by '{dw.partner}', "
                                 f"not by '{pw.name}'")
    for g in (dw, pw):
        extra = sorted(set(g.tensors) - {"kernel", "bias"})
        if extra:
            raise WeightsImportError(f"'{g.name}' has tensors a {g.kind} does not ({', '.join(extra)})")
    kd, kp = dw.tensors["kernel"], pw.tensors["kernel"]
    if kd.ndim != 4 or kp.ndim != 4:
        raise WeightsImportError(f"'{dw.name} + {pw.name}': kernels {list(kd.shape)} and {list(kp.shape)} are not "
                                 "those of 2-D convolutions")
    kh, kw, c, m = kd.shape
    depthwise = kd.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw)
    return _separable(node, dw.name, pw.name, "kernel", (depthwise, f"= {dw.name}.kernel, HWCM -> (C*M)1HW"),
                      (kp.transpose(3, 2, 0, 1), f"= {pw.name}.kernel, HWIO -> OIHW"),
                      dw.tensors.get("bias"), pw.tensors.get("bias"))


def _separable(node: ir.Node, dw: str, pw: str, kernel: str, depthwise: tuple[np.ndarray, str],
               pointwise: tuple[np.ndarray, str], bd: np.ndarray | None,
               bp: np.ndarray | None) -> dict[str, tuple[np.ndarray, str]]:
    """A separable_conv2d's canonical tensors from its two halves (kernels already canonical).

    The pointwise bias is the op's bias. A depthwise bias ``b`` is folded into it: the 1x1
    convolution is linear, so ``pw(dw(x) + b) = pw(dw(x)) + W @ b`` at every position.
    Without a bias in the spec, only zero biases can be dropped.
    """
    kp = pointwise[0]
    out = {"depthwise_kernel": depthwise, "pointwise_kernel": pointwise}
    if any(p.name == "bias" for p in node.params):
        if bd is None and bp is None:
            return out  # the caller says the bias is missing
        bias, how = (bp, f"= {pw}.bias") if bp is not None else (np.zeros(kp.shape[0], np.float32), "zeros")
        if bd is not None and np.any(bd != 0):
            if kp.ndim != 4 or kp.shape[1] != bd.shape[0]:
                raise WeightsImportError(f"'{pw}' reads {kp.shape[1]} channels, '{dw}' makes {bd.shape[0]}")
            bias = (bias.astype(np.float64) + kp[:, :, 0, 0].astype(np.float64) @ bd.astype(np.float64))
            how = (f"{pw}.bias + " if bp is not None else "") + f"{pw}.{kernel} @ {dw}.bias " \
                "(depthwise bias folded in)"
        out["bias"] = (bias, how)
        return out
    for name, b in ((dw, bd), (pw, bp)):
        if b is not None and np.any(b != 0):
            raise WeightsImportError(f"'{name}' has a nonzero bias, which the spec's separable_conv2d "
                                     "(use_bias=false) cannot hold; declare it with use_bias=true")
    return out


def _keras_pair_problem(dw: dict[str, Any], pw_name: str, pw: dict[str, Any]) -> str:
    """Why a Keras DepthwiseConv2D (``dw``: its config) and the Conv2D ``pw_name`` reading it
    are not the two halves of one separable convolution; "" when they are."""
    if dw.get("activation", "linear") != "linear":
        return (f"'{dw['name']}' (DepthwiseConv2D) applies activation '{dw['activation']}' before '{pw_name}' "
                "reads it; a separable_conv2d has nothing between its depthwise and pointwise halves "
                "(declare depthwise_conv2d -> conv2d(F, 1) in the spec)")
    if tuple(pw.get("kernel_size", ())) != (1, 1) or tuple(pw.get("strides", (1, 1))) != (1, 1) \
            or pw.get("groups", 1) != 1 or pw.get("data_format") != dw.get("data_format"):
        return (f"'{pw_name}' (kernel {list(pw.get('kernel_size', ()))}, strides {list(pw.get('strides', ()))}, "
                f"groups {pw.get('groups', 1)}) is not a 1x1 Conv2D with stride 1 reading '{dw['name']}' "
                "in its own data format: the two are not one separable_conv2d")
    return ""


class _Unfit(str):
    """Why a checkpoint layer is not even of the spec layer's kind (a weaker reason than a shape)."""


def _convert(node: ir.Node, g: Group, flat: tuple | None = None,
             partner: Group | None = None) -> tuple[dict[str, np.ndarray], Pair] | str:
    """The pair's canonical tensors, or why they do not fit (``flat``: what the spec's flatten read;
    ``partner``: the 1x1 conv after a depthwise conv, for a ``separable_conv2d``)."""
    if not _kind_fits(node, g):
        return _Unfit(f"'{g.name}' is a {g.kind}, the spec's layer is {node.op}")
    split = node.op == "separable_conv2d" and (g.framework == "torch" or g.kind == "DepthwiseConv2D")
    if split and partner is None:
        if g.framework == "keras":  # a DepthwiseConv2D where the spec has a separable_conv2d: say why not
            return g.unpaired or (f"'{g.name}' (DepthwiseConv2D): its 1x1 Conv2D '{g.partner}' is paired elsewhere"
                                  if g.partner else f"'{g.name}' (DepthwiseConv2D) is not read directly by a 1x1 "
                                  "Conv2D")
        return _Unfit(f"'{g.name}' is not a depthwise Conv2d read directly by a 1x1 Conv2d (the two halves of "
                      "the spec's separable_conv2d)")
    if partner is not None and not split:
        return f"'{g.name}' is a {g.kind}, which holds the whole {node.op}: name it alone"
    try:
        if split:
            conv = (_torch_separable if g.framework == "torch" else _keras_separable)(node, g, partner)
        else:
            conv = _torch_to_canonical(node, g) if g.framework == "torch" else _keras_to_canonical(node, g, flat)
    except KeyError as exc:
        return f"'{g.name}' has no tensor {exc}"
    except WeightsImportError as exc:
        return str(exc)
    want = {p.name: p.shape for p in node.params}
    source = f"{g.name} + {partner.name}" if split else g.name
    out, pair = {}, Pair(node.layer, node.op, source + (f" ({g.note})" if g.note else ""))
    for name, shape in want.items():
        if name not in conv:
            return f"'{source}' has no tensor for '{name}' {list(shape)}"
        arr, how = conv[name]
        if tuple(arr.shape) != tuple(shape):
            return f"'{source}': '{name}' has shape {list(arr.shape)} after conversion, the spec expects {list(shape)}"
        out[f"{node.layer}.{name}"] = np.ascontiguousarray(arr, dtype=np.float32)
        pair.tensors.append((f"{node.layer}.{name}", tuple(shape), how))
    extra = sorted(set(conv) - set(want))
    if extra:
        return f"'{source}' has tensors the spec's {node.op} does not ({', '.join(extra)})"
    return out, pair


def match(network: ir.Network, groups: list[Group], mapping: dict[str, str] | None = None,
          ordered_by_graph: bool = True) -> Result:
    """Pair checkpoint groups with the spec's weighted layers (see the module docstring).

    A mapping's checkpoint side may name two layers, ``depthwise + pointwise`` (PyTorch modules,
    or a Keras DepthwiseConv2D and Conv2D), for a ``separable_conv2d``; a depthwise conv alone
    brings the 1x1 conv that reads it.
    """
    layers = _spec_layers(network)
    flat = _flatten_inputs(network)
    by_name = {g.name: g for g in groups}
    stacked = {g.name.rpartition(".")[0]: g.note.split(" layer")[0] for g in groups if g.note}
    mapping = {s: [c.strip() for c in c.split("+")] for s, c in (mapping or {}).items()}
    known = {n.layer: n.op for n, _, _ in layers}
    for s, cs in mapping.items():
        if s not in known:
            raise WeightsImportError(f"mapping: the spec has no weighted layer '{s}'")
        if len(cs) > (2 if known[s] == "separable_conv2d" else 1):
            raise WeightsImportError(f"mapping: '{s}' ({known[s]}) <- {' + '.join(cs)}: only a separable_conv2d "
                                     "takes two checkpoint layers (depthwise + pointwise)")
        for c in cs:
            if c not in by_name:
                hint = (f" ('{c}' is a stacked {stacked[c]}: map its layers as {c}.l0, {c}.l1, ...)"
                        if c in stacked else "")
                raise WeightsImportError(f"mapping: the checkpoint has no weighted layer '{c}'{hint}")
    mapped = {c for cs in mapping.values() for c in cs}
    key = (lambda d, o: (d, o)) if ordered_by_graph else (lambda d, o: (0, o))
    layers.sort(key=lambda x: key(x[1], x[2]))
    pending = sorted((g for g in groups if g.name not in mapped), key=lambda g: key(g.depth, g.order))
    weights: dict[str, np.ndarray] = {}
    pairs: list[Pair] = []
    window = 8

    def partner_of(node, g, names):
        if node.op != "separable_conv2d" or (g.framework != "torch" and len(names) < 2 and not g.partner):
            return None
        name = names[1] if len(names) > 1 else g.partner
        return next((p for p in pending if p.name == name), by_name.get(name) if len(names) > 1 else None)

    for node, _, _ in layers:
        if node.layer in mapping:
            names = mapping[node.layer]
            g = by_name[names[0]]
            partner = partner_of(node, g, names)
            got = _convert(node, g, flat.get(node.layer), partner)
            if isinstance(got, str):
                raise WeightsImportError(f"spec layer '{node.layer}' ({node.op}) <- {got}")
            if partner is not None and partner in pending:
                pending.remove(partner)
        else:
            if not pending:
                raise WeightsImportError(f"spec layer '{node.layer}' ({node.op}) has no counterpart: the checkpoint's "
                                         "weighted layers are used up")
            got, reasons = None, []
            for k, g in enumerate(pending[:window]):
                partner = partner_of(node, g, [g.name])
                attempt = _convert(node, g, flat.get(node.layer), partner)
                if isinstance(attempt, str):
                    reasons.append(attempt)
                    continue
                got = attempt
                del pending[k]
                if partner is not None:
                    pending.remove(partner)
                break
            if got is None:  # the nearest candidate's reason, unless it is not even of the kind
                reasons.sort(key=lambda r: isinstance(r, _Unfit))
                raise WeightsImportError(f"spec layer '{node.layer}' ({node.op}, "
                                         f"{', '.join(f'{p.name} {list(p.shape)}' for p in node.params)}) has no "
                                         f"counterpart in the checkpoint: {reasons[0]}")
        arrays, pair = got
        weights.update(arrays)
        pairs.append(pair)
    if pending:
        names = ", ".join(g.name for g in pending[:5])
        raise WeightsImportError(f"the checkpoint has {len(pending)} weighted layer(s) the spec does not: {names}")
    bad = [k for k, v in weights.items() if not np.all(np.isfinite(v))]
    if bad:
        raise WeightsImportError(f"tensor '{bad[0]}' holds NaN or infinite values")
    return Result(weights, pairs, "by structure")


# PyTorch ----------------------------------------------------------------------------------------------

_RNN_KEY = re.compile(r"^(.*)_l(\d{1,9})(_reverse)?$")


def _split_stacked(g: Group) -> list[Group]:
    """A PyTorch RNN with ``num_layers > 1`` as one group per layer (``<name>.l<k>``), in order."""
    index = {}
    for key in g.tensors:
        m = _RNN_KEY.match(key)
        if m and m.group(1) in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"):
            index[key] = int(m.group(2))
    count = len(set(index.values()))
    if count <= 1 and not any(index.values()):
        return [g]
    if sorted(set(index.values())) != list(range(count)):
        raise WeightsImportError(f"'{g.name}' holds recurrent layers {sorted(set(index.values()))[:8]}, not "
                                 f"0 ... {count - 1}: not a state_dict of one nn.LSTM/GRU/RNN")
    hh = g.tensors.get("weight_hh_l0")
    kind = g.kind if g.kind != "state" else (
        {4: "LSTM", 3: "GRU", 1: "RNN"}.get(hh.shape[0] // max(hh.shape[1], 1), "RNN") if hh is not None and
        hh.ndim == 2 else "RNN")
    out = []
    for k in range(count):
        tensors = {key: v for key, v in g.tensors.items() if index.get(key, 0) == k}
        out.append(Group(f"{g.name}.l{k}" if g.name else f"l{k}", g.kind, tensors, g.depth, g.order,
                         g.framework, rnn_layer=k, note=f"{kind} layer {k + 1} of {count}"))
    return out


def _depthwise_then_pointwise(dw: np.ndarray | None, pw: np.ndarray | None) -> bool:
    """Whether two conv weights are a depthwise [C*M, 1, kh, kw] and a 1x1 [F, C*M, 1, 1] reading it."""
    return (dw is not None and pw is not None and dw.ndim == 4 and pw.ndim == 4 and dw.shape[1] == 1
            and tuple(pw.shape[2:]) == (1, 1) and pw.shape[1] == dw.shape[0])


def _pair_state_separables(groups: list[Group]) -> None:
    """A state_dict has no graph: a depthwise conv's partner is the 1x1 conv registered right after it."""
    for a, b in zip(groups, groups[1:]):
        if _depthwise_then_pointwise(a.tensors.get("weight"), b.tensors.get("weight")):
            a.partner = b.name


def _torch_groups_from_state(state: dict[str, Any]) -> list[Group]:
    groups: dict[str, Group] = {}
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        if leaf == "num_batches_tracked":
            continue
        arr = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        if prefix not in groups:
            groups[prefix] = Group(prefix, "state", {}, order=len(groups))
        groups[prefix].tensors[leaf] = arr
    out = [sub for g in groups.values() for sub in _split_stacked(g)]
    for k, g in enumerate(out):
        g.order = k
    _pair_state_separables(out)
    return out


def _torch_groups_from_module(module, fuse_separable: bool = False) -> tuple[list[Group], bool]:
    """Weighted modules in data-flow order (torch.fx when the module traces; else registration order).

    A stacked RNN counts one weighted layer per layer of its stack; with ``fuse_separable``
    (the spec has separable convolutions) a 1x1 conv that reads a depthwise conv directly
    counts with it as one, as the spec's ``separable_conv2d`` does.
    """
    import torch

    weighted = {name: m for name, m in module.named_modules()
                if any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False))}
    groups = {}
    for k, (name, m) in enumerate(weighted.items()):
        tensors = {n: t.detach().cpu().numpy() for n, t in [*m.named_parameters(recurse=False),
                                                            *m.named_buffers(recurse=False)]
                   if n != "num_batches_tracked"}
        groups[name] = Group(name, type(m).__name__, tensors, order=k)
    try:
        graph = torch.fx.symbolic_trace(module).graph
    except Exception:  # untraceable modules keep registration order
        out = [sub for g in groups.values() for sub in _split_stacked(g)]
        for k, g in enumerate(out):
            g.order = k
        _pair_state_separables(out)
        return out, False
    convs = {name: m for name, m in weighted.items() if isinstance(m, torch.nn.Conv2d)}
    for n in graph.nodes:
        if n.op == "call_module" and n.target in convs and len(n.users) == 1:
            dw, (user,) = convs[n.target], n.users
            pw = convs.get(user.target) if user.op == "call_module" else None
            if dw.groups == dw.in_channels and pw is not None and pw.kernel_size == (1, 1) and pw.groups == 1 \
                    and pw.stride == (1, 1) and pw.padding in ((0, 0), "valid") and pw.in_channels == dw.out_channels:
                groups[n.target].partner = user.target
    fused = {g.partner for g in groups.values() if g.partner} if fuse_separable else set()
    depth: dict[Any, int] = {}
    seen = set()
    for k, n in enumerate(graph.nodes):
        ins = [a for a in n.all_input_nodes]
        d = max((depth.get(a, 0) for a in ins), default=0)
        if n.op == "call_module" and n.target in groups and n.target not in seen:
            m = weighted[n.target]
            d += 0 if n.target in fused else getattr(m, "num_layers", 1) if isinstance(m, torch.nn.RNNBase) else 1
            seen.add(n.target)
            groups[n.target].depth, groups[n.target].order = d, k
        depth[n] = d
    out = []
    for g in groups.values():
        subs = _split_stacked(g)
        for k, sub in enumerate(subs):  # layer k of a stack of n ends n - 1 - k layers before the stack
            sub.depth = g.depth - (len(subs) - 1 - k)
        out += subs
    return out, True


def weights_from_torch(source, spec, network: str | None = None, mapping: dict[str, str] | None = None) -> Result:
    """Canonical weights from an ``nn.Module``, a state_dict, or a ``.pt``/``.pth``/``.safetensors`` file."""
    net = _network(spec, network)
    graph = False
    if isinstance(source, (str, Path)):
        source = _read_torch_file(Path(source))
    if hasattr(source, "state_dict") and hasattr(source, "named_modules"):
        state = source.state_dict()
        by_name = _by_name_torch(spec, network, state)
        if by_name is not None:
            return by_name
        groups, graph = _torch_groups_from_module(
            source, fuse_separable=any(n.op == "separable_conv2d" for n in net.nodes))
    else:
        if not isinstance(source, dict):
            raise WeightsImportError(f"expected an nn.Module, a state_dict or a checkpoint path; received "
                                     f"{type(source).__name__}")
        canonical = _as_canonical(net, source)
        if canonical is not None:
            return canonical
        by_name = _by_name_torch(spec, network, source)
        if by_name is not None:
            return by_name
        groups = _torch_groups_from_state(source)
    return match(net, groups, mapping, ordered_by_graph=graph)


def _read_torch_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise WeightsImportError(f"no such checkpoint '{path}'")
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        try:
            return dict(load_file(str(path)))
        except Exception as exc:
            raise WeightsImportError(f"cannot read '{path}' as safetensors: {exc}") from None
    import pickle

    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "refused"
        raise WeightsImportError(f"'{path}' is not a plain tensor checkpoint; torch.load(weights_only=True) "
                                 f"refused it ({first}). netspec never unpickles arbitrary objects: save a "
                                 "state_dict (or safetensors) instead") from None
    except Exception as exc:
        raise WeightsImportError(f"cannot read '{path}' as a PyTorch checkpoint: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise WeightsImportError(f"'{path}' does not hold a state_dict (a mapping of names to tensors)")
    return state


def _as_canonical(net: ir.Network, state: dict[str, Any]) -> Result | None:
    """A mapping already in canonical names and shapes (netspec's own files)."""
    want = {f"{layer}.{p.name}": p.shape for layer, params in net.layers().items() for p in params}
    if set(state) != set(want):
        return None
    arrays = {k: np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v) for k, v in state.items()}
    if any(tuple(arrays[k].shape) != tuple(s) for k, s in want.items()):
        return None
    return Result({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}, [], "by canonical name")


def _by_name_torch(spec, network, state) -> Result | None:
    """A state_dict of netspec's generated PyTorch model: load it strictly and read it back."""
    try:
        from ..backends import torch as backend

        net = _network(spec, network)
        model = backend.build(net)
        model_keys = set(model.state_dict())
        if set(state) != model_keys:
            return None
        import torch

        model.load_state_dict({k: torch.as_tensor(np.asarray(v) if not hasattr(v, "detach") else v)
                               for k, v in state.items()}, strict=True)
        return Result(backend.export_canonical(model, net), [], "by name (netspec's generated PyTorch model)")
    except Exception:  # not ours, or shapes differ: fall back to structure
        return None


# Keras ------------------------------------------------------------------------------------------------

def _keras_groups(model, fuse_separable: bool = False) -> list[Group]:
    """Weighted layers of a functional/sequential Keras model in data-flow order.

    A model used as a layer (a ``keras.applications`` backbone, a ``Sequential`` head) is
    flattened in place: its layers are named ``<model>/<layer>`` and continue the depth
    of whatever feeds it. A ``DepthwiseConv2D`` read only by a 1x1 ``Conv2D`` (stride 1, no
    activation between) gets it as its partner; with ``fuse_separable`` (the spec has
    separable convolutions) the two count as one weighted layer, as a ``separable_conv2d`` does.
    """
    groups: list[Group] = []
    _walk_keras(model, "", {}, 0, groups, [0], {}, fuse_separable)
    return groups


def _keras_conv_attrs(layer, name: str) -> dict[str, Any]:
    act = getattr(layer, "activation", None)
    return {"name": name, "activation": getattr(act, "__name__", type(act).__name__) if act else "linear",
            "kernel_size": tuple(getattr(layer, "kernel_size", ())), "strides": tuple(getattr(layer, "strides", ())),
            "groups": getattr(layer, "groups", 1), "data_format": getattr(layer, "data_format", None)}


def _keras_readers(model) -> tuple[dict[int, list], set[int]]:
    """{id(layer): the layers of ``model`` that read it} (first calls only), and the ids of
    the layers whose outputs are the model's."""
    readers: dict[int, list] = {}
    for layer in model.layers:
        for node in getattr(layer, "_inbound_nodes", [])[:1]:
            for t in getattr(node, "input_tensors", []) or []:
                hist = getattr(t, "_keras_history", None)
                if hist is not None:
                    readers.setdefault(id(hist[0]), []).append(layer)
    try:
        outs = {id(t._keras_history[0]) for t in model.outputs}
    except (AttributeError, TypeError, ValueError):
        outs = set()
    return readers, outs


def _keras_pair(group: Group, layer, prefix: str, readers: dict[int, list], outs: set[int]):
    """Sets ``group.partner`` (a DepthwiseConv2D's 1x1 Conv2D) or ``group.unpaired`` (why not);
    returns the partner layer or None."""
    rd = readers.get(id(layer), [])
    names = ", ".join(f"'{prefix}{r.name}' ({type(r).__name__})" for r in rd)
    if id(layer) in outs or len(rd) != 1:
        group.unpaired = (f"'{group.name}' (DepthwiseConv2D) is read by {names or 'no layer'}"
                          f"{' and is an output' if id(layer) in outs else ''}, not by one 1x1 Conv2D alone: "
                          "it is not the depthwise half of a separable_conv2d")
        return None
    reader = rd[0]
    if type(reader).__name__ != "Conv2D":
        group.unpaired = (f"'{group.name}' (DepthwiseConv2D) is read by {names}, not directly by a 1x1 Conv2D: a "
                          "separable_conv2d has nothing between its depthwise and pointwise halves (declare "
                          "depthwise_conv2d -> ... -> conv2d(F, 1) in the spec)")
        return None
    pw_attrs = _keras_conv_attrs(reader, prefix + reader.name)
    group.unpaired = _keras_pair_problem(group.attrs, prefix + reader.name, pw_attrs)
    if group.unpaired:
        return None
    group.partner = prefix + reader.name
    return reader


def _is_keras_model(layer) -> bool:
    return hasattr(layer, "layers") and callable(getattr(layer, "get_layer", None))


def _walk_keras(model, prefix: str, depth: dict[int, int], base: int, groups: list[Group], counter: list[int],
                bridge: dict[int, Any], fuse: bool = False) -> int:
    """Adds ``model``'s weighted layers to ``groups``; returns the depth of its output.

    ``base`` is the depth of the model's input: a layer whose parent is not one of its
    model's layers (its input, or a Sequential's implicit input layer) starts there.
    ``bridge`` maps a nested model's input layers to the outer layers that feed them.
    With ``fuse``, a 1x1 Conv2D that is a DepthwiseConv2D's partner counts with it as one
    weighted layer (adds no depth).
    """
    readers, outs = _keras_readers(model)
    partners: set[int] = set()
    for layer in model.layers:
        k = counter[0]
        counter[0] += 1
        parents = []
        for node in getattr(layer, "_inbound_nodes", [])[:1]:
            for t in getattr(node, "input_tensors", []) or []:
                hist = getattr(t, "_keras_history", None)
                if hist is not None:
                    parents.append(id(hist[0]))
        d = max((depth.get(p, base) for p in parents), default=base)
        if _is_keras_model(layer):
            inner = [getattr(t, "_keras_history", [None])[0] for t in getattr(layer, "inputs", None) or []]
            outer = [getattr(t, "_keras_history", [None])[0] for node in getattr(layer, "_inbound_nodes", [])[:1]
                     for t in getattr(node, "input_tensors", []) or []]
            bridge.update((id(i), o) for i, o in zip(inner, outer) if i is not None and o is not None)
            d = _walk_keras(layer, f"{prefix}{layer.name}/", depth, d, groups, counter, bridge, fuse)
        elif layer.weights:
            d += 0 if fuse and id(layer) in partners else 1
            tensors = {}
            for v in layer.weights:
                path = getattr(v, "path", v.name)
                name = path.rsplit("/", 1)[-1]
                if type(layer).__name__ == "Bidirectional":
                    name = ("forward/" if "forward" in path else "backward/") + name
                tensors[name] = np.asarray(v.numpy() if hasattr(v, "numpy") else v)
            group = Group(prefix + layer.name, type(layer).__name__, tensors, depth=d, order=k, framework="keras")
            if group.kind == "Dense":
                group.flattened, group.channels_last = _keras_flatten_order(layer, bridge)
            if group.kind in ("DepthwiseConv2D", "Conv2D"):
                group.attrs = _keras_conv_attrs(layer, group.name)
            if group.kind == "DepthwiseConv2D":
                reader = _keras_pair(group, layer, prefix, readers, outs)
                if reader is not None:
                    partners.add(id(reader))
            groups.append(group)
        depth[id(layer)] = d
    try:
        ends = [id(t._keras_history[0]) for t in model.outputs]
    except (AttributeError, TypeError, ValueError):  # a subclassed model has no graph: its last layer
        ends = [id(model.layers[-1])] if model.layers else []
    return max((depth.get(e, base) for e in ends), default=base)


def _keras_parent(layer, bridge: dict[int, Any] | None = None):
    """The layer that feeds ``layer``'s first input, or None; across nested models (``bridge``
    from a nested model's input layer to what feeds it; a nested model stands for its output layer)."""
    parent = None
    for node in getattr(layer, "_inbound_nodes", [])[:1]:
        for t in getattr(node, "input_tensors", []) or []:
            hist = getattr(t, "_keras_history", None)
            if hist is not None:
                parent = hist[0]
                break
    for _ in range(64):
        if parent is not None and bridge and id(parent) in bridge:
            parent = bridge[id(parent)]
        elif parent is not None and _is_keras_model(parent):
            outs = getattr(parent, "outputs", None) or []
            parent = getattr(outs[0], "_keras_history", [None])[0] if outs else None
        else:
            break
    return parent


def _keras_flatten_order(dense, bridge: dict[int, Any] | None = None) \
        -> tuple[tuple[int, ...] | None, bool | None]:
    """For a Dense fed by a Flatten (through weightless layers that keep the shape): the shape
    whose row-major order the flattened features follow, and whether it is channels-last
    spatial data (the nearest layer above with a ``data_format`` says so). The search crosses
    the borders of nested models (``bridge``, as in :func:`_walk_keras`)."""
    layer = _keras_parent(dense, bridge)
    while layer is not None and type(layer).__name__ != "Flatten":
        if layer.weights or not hasattr(layer.input, "shape") or \
                tuple(layer.input.shape) != tuple(layer.output.shape):
            return None, None
        layer = _keras_parent(layer, bridge)
    if layer is None:
        return None, None
    shape = tuple(layer.input.shape[1:])
    if len(shape) < 2 or not all(isinstance(d, int) for d in shape):
        return None, None
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return (*shape[1:], shape[0]), True
    above = _keras_parent(layer, bridge)
    for _ in range(64):
        if above is None or type(above).__name__ in ("Permute", "Reshape", "InputLayer"):
            return shape, False
        if hasattr(above, "data_format"):
            return shape, above.data_format == "channels_last"
        above = _keras_parent(above, bridge)
    return shape, None


def weights_from_keras(source, spec, network: str | None = None, mapping: dict[str, str] | None = None) -> Result:
    """Canonical weights from a ``keras.Model`` or a ``.keras`` file (loaded in Keras's safe mode)."""
    net = _network(spec, network)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise WeightsImportError(f"no such checkpoint '{path}'")
        if path.name.endswith(".weights.h5"):
            return _from_weights_h5(path, spec, network, mapping)
        import keras

        try:
            source = keras.saving.load_model(str(path), safe_mode=True, compile=False)
        except Exception as exc:
            raise WeightsImportError(f"cannot load '{path}' as a Keras model (safe mode): "
                                     f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if not hasattr(source, "layers"):
        raise WeightsImportError("expected a keras.Model or a .keras/.weights.h5 path; "
                                 f"received {type(source).__name__}")
    ours = _by_name_keras(net, source)
    if ours is not None:
        return ours
    groups = _keras_groups(source, fuse_separable=any(n.op == "separable_conv2d" for n in net.nodes))
    return match(net, groups, mapping, ordered_by_graph=True)


def _by_name_keras(net: ir.Network, model) -> Result | None:
    """A model whose layer names are the spec's (netspec's generated Keras model)."""
    from ..backends import keras as backend

    names = {layer.name for layer in model.layers if layer.weights}
    want = {backend.keras_name(layer) for layer in net.layers()}
    if not want or names != want:
        return None
    try:
        return Result(backend.export_canonical(model, net), [], "by name (netspec's generated Keras model)")
    except Exception:
        return None


def _from_weights_h5(path: Path, spec, network, mapping) -> Result:
    """A ``.weights.h5`` file: loaded into netspec's generated Keras model by name, or paired by order."""
    import h5py

    net = _network(spec, network)
    try:
        from ..backends import keras as backend

        model = backend.build(net)
        model.load_weights(str(path))
        return Result(backend.export_canonical(model, net), [], "by name (netspec's generated Keras model)")
    except Exception:
        pass
    groups = []
    try:
        with h5py.File(str(path), "r") as f:
            root = f.get("layers")
            if root is None:
                raise WeightsImportError(f"'{path}' is not a Keras 3 weights file (no 'layers' group)")
            for k, name in enumerate(root.keys()):
                tensors = {}
                _h5_vars(root[name], "", tensors)
                if tensors:
                    groups.append(Group(name, "?", tensors, order=k, framework="keras"))
    except OSError as exc:
        raise WeightsImportError(f"cannot read '{path}' as HDF5: {exc}") from None
    raise WeightsImportError(f"'{path}' holds weights without the model's graph ({len(groups)} layers); load the "
                             "model in Keras and pass it (or its .keras file) so layers can be paired by structure")


def _h5_vars(group, prefix: str, out: dict) -> None:
    for key in group.keys():
        item = group[key]
        if hasattr(item, "keys"):
            _h5_vars(item, f"{prefix}{key}/", out)
        else:
            out[f"{prefix}{key}"] = item[()]


def _network(spec, name: str | None) -> ir.Network:
    from ..weights import _network as pick

    return pick(spec, name)


def import_checkpoint(source, spec, network: str | None = None, mapping: dict[str, str] | None = None,
                      framework: str | None = None) -> Result:
    """Canonical weights from a checkpoint file or live model of either framework.

    ``framework`` ("torch" or "keras"; see ``CHECKPOINT_FORMATS``) defaults to the file's kind:
    ``.keras``/``.h5`` files and ``keras.Model`` objects are Keras's, everything else PyTorch's.
    """
    if framework is None:
        is_keras = (str(source).endswith((".keras", ".h5")) if isinstance(source, (str, Path))
                    else hasattr(source, "layers") and not hasattr(source, "state_dict"))
        framework = "keras" if is_keras else "torch"
    importer = weights_from_keras if framework == "keras" else weights_from_torch
    return importer(source, spec, network, mapping)


def read_mapping(path: str | Path) -> dict[str, str]:
    """A mapping file: one ``spec_layer = checkpoint_layer`` a line; ``#`` starts a comment."""
    out = {}
    for k, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if "=" not in line:
            raise WeightsImportError(f"{path}:{k}: expected 'spec_layer = checkpoint_layer', received '{line}'")
        left, right = (x.strip() for x in line.split("=", 1))
        out[left] = right
    return out
