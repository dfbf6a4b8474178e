"""The Keras generator's training part: the spec's loss, optimiser, initialisers and regularisers in Keras terms.

``TrainingMixin`` is mixed into :class:`netspec.backends.keras.KerasGenerator`: it maps each loss
term to a model output (Keras's own losses where their formula is the spec's, generated functions
elsewhere), builds ``compile``'s arguments and, for ``kl_normal`` terms, a ``keras.Model`` subclass.
See docs/keras.md, "Loss and optimiser".
"""

from __future__ import annotations

from math import prod

from .. import ir
from ..diagnostics import Diagnostic
from ..ops.functions import CLIPS, CONTROLS
from ..ops.registry import FAMILIES
from .base import literal
from .keras_render import _kw, _lit


class TrainingMixin:
    """Loss, optimiser and model-class generation; expects the generator's names and layouts."""

    model_class_name = ""

    def training(self) -> tuple[list[str] | None, list[str], str]:
        """(model subclass lines, compile arguments, a fit example) for the spec's loss and optimiser."""
        net = self.network
        outputs = list(net.outputs)
        feedable = {v.name for v in (*net.targets, *net.inputs)}
        per_output: dict[int, list[ir.LossTerm]] = {}
        extra: list[ir.LossTerm] = []
        for term in net.loss:
            if term.fn in _OUTPUT_LOSSES:
                missing = [a for a in term.args if a not in outputs]
                if missing:
                    self.errors.append(Diagnostic(
                        "E601", f"the keras backend computes {term.fn} from model outputs; "
                        f"'{_short(net, missing[0])}' is not an output (add it to `output`)", term.span))
                    continue
                extra.append(term)
                continue
            pred, target = term.args
            if pred not in outputs:
                self.errors.append(Diagnostic(
                    "E601", f"the keras backend maps each loss term to a model output; '{_short(net, pred)}' "
                    f"is not an output (add it to `output`)", term.span))
                continue
            if target not in feedable:
                self.errors.append(Diagnostic(
                    "E601", f"the keras backend feeds a loss target as `y`; '{_short(net, target)}' is neither "
                    "a target nor an input", term.span))
                continue
            i = outputs.index(pred)
            if per_output.get(i) and per_output[i][0].args[1] != target:
                self.errors.append(Diagnostic(
                    "E601", f"the keras backend needs one target per output; output '{_short(net, pred)}' "
                    f"is compared with '{per_output[i][0].args[1]}' and '{target}'", term.span))
                continue
            per_output.setdefault(i, []).append(term)
        args: list[str] = []
        if net.optimizer is not None:
            args.append(_kw("optimizer", self.optimizer_expr(net.optimizer)))
        losses: list[str] = []
        weights: list[float] = []
        for i, value in enumerate(outputs):
            terms = per_output.get(i, [])
            rank, layout = self.rank(value), self.output_layouts[i]
            if not terms:
                losses.append("None")
                weights.append(1.0)
            elif len(terms) == 1 and self.loss_term(terms[0], rank, layout)[0] is not None:
                losses.append(self.loss_term(terms[0], rank, layout)[0])
                weights.append(terms[0].weight)
            else:
                losses.append(self.loss_function(i, terms, rank, layout))
                weights.append(1.0)
        if per_output:
            if len(outputs) == 1:
                args.append(_kw("loss", losses[0]))
            else:
                args.append(_kw("loss", "[" + ", ".join(losses) + "]"))
            if any(w != 1.0 for w in weights):
                w = literal(weights[0]) if len(outputs) == 1 else "[" + ", ".join(literal(x) for x in weights) + "]"
                args.append(_kw("loss_weights", w))
        model_cls = self.model_class(extra, bool(per_output)) if extra else None
        ins = [v.name for v in net.inputs]
        x = ins[0] if len(ins) == 1 else "[" + ", ".join(ins) + "]"
        if per_output:
            ys = [per_output[i][0].args[1] if i in per_output else "None" for i in range(len(outputs))]
            y = ys[0] if len(ys) == 1 else "[" + ", ".join(ys) + "]"
            fit = f"model.fit(x={x}, y={y})"
        elif extra:
            fit = f"model.fit(x={x})"
        else:
            fit = ""
        return model_cls, args, fit

    def optimizer_expr(self, opt: ir.Optimizer) -> str:
        """The optimiser's constructor: Keras's class, a schedule helper, dense gradients for embeddings.

        TensorFlow differentiates an embedding lookup into sparse slices (one per occurrence of an id),
        which Keras's RMSprop, Adagrad, Adam, ... square slice by slice: an id repeated in a batch gets
        the sum of the squares instead of the square of the summed gradient. A network with an
        embedding gets a subclass that sums them into a dense gradient first, the spec's ``g``.
        """
        a = opt.attrs
        cls, _ = _OPTIMIZERS[opt.name]
        lr = literal(a["lr"])
        if a["schedule"] != "constant" or a["warmup"]:
            self.helpers.add("SpecSchedule")
            keys = [k for k in ("schedule", "decay_steps", "decay_rate", "alpha", "warmup")
                    if a[k] != CONTROLS[k].default]
            shown = [_kw(k, _lit(a[k]) if isinstance(a[k], str) else literal(a[k])) for k in keys]
            lr = f"SpecSchedule({', '.join([lr, *shown])})"
        cls = f"keras.optimizers.{cls}"
        if any(n.op == "embedding" for n in self.network.nodes):
            name = self.pyname(f"Dense{cls.rsplit('.', 1)[1]}")
            self.helpers.add(name)
            self.local_helpers[name] = (
                '@keras.saving.register_keras_serializable(package="netspec")\n'
                f"class {name}({cls}):\n"
                f'    """{cls.rsplit(".", 1)[1]} on dense gradients: an embedding\'s sparse gradient is summed '
                'per id first."""\n\n'
                "    def apply(self, grads, trainable_variables=None):\n"
                "        grads = [dense_gradient(g) for g in grads]\n"
                "        return super().apply(grads, trainable_variables)\n")
            self.helpers.add("dense_gradient")
            cls = name
        return _optimizer_expr(opt, cls, lr)

    def loss_term(self, term: ir.LossTerm, rank: int, layout: str) -> tuple[str | None, str]:
        """(an entry of compile's ``loss`` list, or None; the term as a call on ``y_true, y_pred``).

        Keras's own losses where their formula is the spec's; generated functions (``_HELPERS``) for
        probabilities (Keras's TensorFlow backend reads a softmax or sigmoid output as logits), for
        ``categorical_crossentropy`` on logits (TensorFlow's gradient assumes targets summing to 1), for
        ``hinge`` (Keras maps 0/1 targets to -1/1) and for class axes Keras's functions do not take.
        """
        fn, a = term.fn, term.attrs
        args = "y_true, y_pred"
        if fn in ("mse", "mae"):
            name = {"mse": "mean_squared_error", "mae": "mean_absolute_error"}[fn]
            return _lit(fn), f"keras.losses.{name}({args})"
        if fn == "huber":
            if a["delta"] == 1.0:
                return '"huber"', f"keras.losses.huber({args})"
            delta = literal(a["delta"])
            return f"keras.losses.Huber(delta={delta})", f"keras.losses.huber({args}, delta={delta})"
        if fn == "contrastive":
            self.helpers.add("contrastive")
            if a["margin"] == 1.0:
                return "contrastive", f"contrastive({args})"
            return None, f"contrastive({args}, margin={literal(a['margin'])})"
        if fn == "hinge":
            self.helpers.add("hinge")
            return "hinge", f"hinge({args})"
        if fn == "kl_divergence":
            axis = self.kaxis(-1, rank, layout) if rank else -1
            if axis == -1:
                return '"kl_divergence"', f"keras.losses.kl_divergence({args})"
            self.helpers.add("kl_divergence")
            return None, f"kl_divergence({args}, axis={axis})"
        if fn == "cosine_similarity":
            axis = self.kaxis(-1, rank, layout) if rank else -1
            if axis == -1:
                return '"cosine_similarity"', f"keras.losses.cosine_similarity({args})"
            return (f"keras.losses.CosineSimilarity(axis={axis})",
                    f"keras.losses.cosine_similarity({args}, axis={axis})")
        logits = a["from_logits"]
        if fn == "binary_crossentropy":
            if logits:
                return ("keras.losses.BinaryCrossentropy(from_logits=True)",
                        f"keras.losses.binary_crossentropy({args}, from_logits=True)")
            self.helpers.add(fn)
            return fn, f"{fn}({args})"
        axis = self.kaxis(a["axis"], rank, layout) if rank else -1
        kws = (["from_logits=True"] if logits else []) + ([f"axis={axis}"] if axis != -1 else [])
        call_args = ", ".join([args, *kws])
        if logits and fn == "sparse_categorical_crossentropy" and axis == -1:  # TensorFlow: the class axis last
            return f"keras.losses.SparseCategoricalCrossentropy({', '.join(kws)})", f"keras.losses.{fn}({call_args})"
        # categorical_crossentropy on logits is a generated function too: TensorFlow's gradient,
        # softmax(x) - t, assumes targets that sum to 1; the spec's is sum(t) softmax(x) - t
        self.helpers.add(fn)
        if fn == "sparse_categorical_crossentropy":
            self.helpers.add("categorical_crossentropy")
        return (fn if not kws else None), f"{fn}({call_args})"

    def loss_function(self, i: int, terms: list[ir.LossTerm], rank: int, layout: str) -> str:
        name = self.pyname(f"loss_{self.network.output_names[i] if self.network.output_names else i}")
        self.helpers.add(name)
        doc = f'    """The spec\'s loss {"term" if len(terms) == 1 else "terms, summed"} on output {i}."""\n'
        if len(terms) == 1 and terms[0].weight == 1.0:
            call = self.loss_term(terms[0], rank, layout)[1]
            self.local_helpers[name] = f"def {name}(y_true, y_pred):\n{doc}    return {call}\n"
            return name
        lines, parts = [], []
        for k, t in enumerate(terms, 1):  # each term a mean over every position, then the weighted sum
            lines.append(f"    term_{k} = keras.ops.mean({self.loss_term(t, rank, layout)[1]})\n")
            parts.append(f"term_{k}" if t.weight == 1.0 else f"{literal(t.weight)} * term_{k}")
        body = " + ".join(parts).replace("+ -", "- ")
        self.local_helpers[name] = f"def {name}(y_true, y_pred):\n{doc}{''.join(lines)}    return {body}\n"
        return name

    def model_class(self, extra: list[ir.LossTerm], compiled: bool) -> list[str]:
        self.model_class_name = self.pyname(f"{self.network.name}Model")
        outputs = list(self.network.outputs)
        parts = []
        for t in extra:
            self.helpers.add(t.fn)
            w = "" if t.weight == 1.0 else f"{literal(t.weight)} * "
            args = [f"y_pred[{outputs.index(a)}]" if len(outputs) > 1 else "y_pred" for a in t.args]
            if t.attrs.get("margin") is not None:
                args.append(f"margin={literal(t.attrs['margin'])}")
            parts.append(f"{w}{t.fn}({', '.join(args)})")
        extra_sum = " + ".join(parts).replace("+ -", "- ")
        lines = [
            '@keras.saving.register_keras_serializable(package="netspec")',
            f"class {self.model_class_name}(keras.Model):",
            '    """The functional model; its loss adds the terms that compare outputs with each other."""',
            "",
            "    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):",
        ]
        if compiled:
            lines += ["        loss = super().compute_loss(x, y, y_pred, sample_weight, training=training)",
                      f"        return loss + {extra_sum}"]
        else:
            lines += [f"        loss = {extra_sum}",
                      "        for penalty in self.losses:",
                      "            loss = loss + penalty",
                      "        return loss"]
        return lines


#: losses computed from model outputs only (no target): a term of the model's compute_loss
_OUTPUT_LOSSES = ("kl_normal", "triplet")


def _short(net: ir.Network, value: str) -> str:
    for name, v in zip(net.output_names, net.outputs):
        if v == value:
            return name
    return value


def _fans(shape) -> tuple[int, int]:
    from ..weights import fans

    return fans(tuple(shape))


def _keras_fans(shape) -> tuple[int, int]:
    """Keras's fans for a kernel in Keras's layout (inputs on axis -2, outputs on -1)."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _init_expr(init: dict, canon=None, keras=None) -> str:
    name = init["name"]
    member = FAMILIES["initializer"][name]
    if member.variance is not None:
        if canon is not None and _fans(canon) != _keras_fans(keras):
            # Keras computes fans in its own layout: the spec's variance, rescaled to Keras's fan_in
            scale = member.variance(*_fans(canon)) * _keras_fans(keras)[0]
            return f'keras.initializers.VarianceScaling({literal(scale)}, "fan_in", "{member.distribution}")'
        return _lit(name)
    if name in ("zeros", "ones"):
        return _lit(name)
    if name == "constant":
        return f"keras.initializers.Constant({literal(init['value'])})"
    if name == "normal":
        return f"keras.initializers.RandomNormal(mean={literal(init['mean'])}, stddev={literal(init['std'])})"
    if name == "uniform":
        return f"keras.initializers.RandomUniform(minval={literal(init['a'])}, maxval={literal(init['b'])})"
    if name == "orthogonal":
        gain = init.get("gain", 1.0)
        if canon and keras and keras[-1] != canon[0]:  # depthwise (kh, kw, C, m): Keras would orthogonalise m columns
            return f"SpecOrthogonal({literal(gain)}, depthwise=True)"
        return '"orthogonal"' if gain == 1.0 else f"keras.initializers.Orthogonal(gain={literal(gain)})"
    raise ValueError(f"unknown initializer {name}")  # pragma: no cover - the registry lists them all


def _reg_expr(reg: dict) -> str:
    name = reg["name"]
    if name == "l1":
        return f"keras.regularizers.L1({literal(reg['l1'])})"
    if name == "l2":
        return f"keras.regularizers.L2({literal(reg['l2'])})"
    return f"keras.regularizers.L1L2(l1={literal(reg['l1'])}, l2={literal(reg['l2'])})"


_OPTIMIZERS = {
    # spec name: (Keras class, [(spec attr, Keras argument, Keras default)])
    "sgd": ("SGD", [("momentum", "momentum", 0.0), ("nesterov", "nesterov", False)]),
    "rmsprop": ("RMSprop", [("rho", "rho", 0.9), ("momentum", "momentum", 0.0), ("eps", "epsilon", 1e-7),
                            ("centered", "centered", False)]),
    "adagrad": ("Adagrad", [("initial_accumulator", "initial_accumulator_value", 0.1), ("eps", "epsilon", 1e-7)]),
    "adadelta": ("Adadelta", [("rho", "rho", 0.95), ("eps", "epsilon", 1e-7)]),
    "adam": ("Adam", [("beta1", "beta_1", 0.9), ("beta2", "beta_2", 0.999), ("eps", "epsilon", 1e-7),
                      ("amsgrad", "amsgrad", False)]),
    "nadam": ("Nadam", [("beta1", "beta_1", 0.9), ("beta2", "beta_2", 0.999), ("eps", "epsilon", 1e-7)]),
    "adamw": ("AdamW", [("beta1", "beta_1", 0.9), ("beta2", "beta_2", 0.999), ("eps", "epsilon", 1e-7),
                        ("amsgrad", "amsgrad", False)]),
}


def _optimizer_expr(opt: ir.Optimizer, cls: str | None = None, lr: str | None = None) -> str:
    """``keras.optimizers.<Class>(...)`` (or ``cls``) with the spec's hyperparameters and clipping."""
    name, table = _OPTIMIZERS[opt.name]
    a = opt.attrs
    args = [_kw("learning_rate", lr or literal(a["lr"]))]
    for spec, kname, default in table:
        if a[spec] != default:
            args.append(_kw(kname, literal(a[spec])))
    if opt.name == "adamw" or a["weight_decay"]:
        args.append(_kw("weight_decay", literal(a["weight_decay"])))
    args += [_kw(k, literal(a[k])) for k in CLIPS if a[k]]  # Keras's clipping is the spec's formula
    return f"{cls or 'keras.optimizers.' + name}({', '.join(args)})"
