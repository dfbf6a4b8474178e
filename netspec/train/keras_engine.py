"""Training with Keras: the generated, compiled model's ``train_on_batch``; TF distribution for replicas.

Keras 3's ``keras.distribution.DataParallel`` is implemented for the JAX backend only (its TensorFlow
module is a prototype marked "DO NOT USE"), so with TensorFlow data parallelism uses TensorFlow's own
engine: the model is built and compiled inside ``tf.distribute.MirroredStrategy`` over ``replicas``
local devices (GPUs; on a machine without them, as many logical CPU devices), and each global batch is
split across the replicas by TensorFlow. docs/training.md has the details.
"""

from __future__ import annotations

import contextlib
import os

from .. import ir
from . import metrics as m
from .torch_engine import UsageError


class KerasEngine:
    backend = "keras"
    rank, world, local_rank = 0, 1, 0

    def __init__(self, network: ir.Network, weights, *, device: str = "cpu", amp: bool = False,
                 fsdp: bool = False, replicas: int = 1, eager: bool = False, threads: int | None = None):
        from ..backends import keras as kb

        if amp or fsdp:
            raise UsageError(f"{'--amp' if amp else '--fsdp'} applies to --backend torch only")
        if network.optimizer is None or not network.loss:
            raise UsageError(f"network {network.name} needs a loss and an optimizer statement to train")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        quiet_import = getattr(kb, "_keras", None)  # the backend's import with TensorFlow's C++ log silenced
        if quiet_import is not None:
            quiet_import()
        import keras
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")  # e.g. retracing notes for the short last batch
        if threads:
            with contextlib.suppress(RuntimeError):
                tf.config.threading.set_intra_op_parallelism_threads(threads)
        gpus = tf.config.list_physical_devices("GPU")
        if device == "cuda" and not gpus:
            raise UsageError("--device cuda: TensorFlow sees no GPU here")
        self.strategy = None
        if replicas > 1:
            if gpus:
                if len(gpus) < replicas:
                    raise UsageError(f"--replicas {replicas}: TensorFlow sees {len(gpus)} GPU(s)")
                devices = [f"/gpu:{i}" for i in range(replicas)]
            else:
                cpus = tf.config.list_physical_devices("CPU")
                try:
                    tf.config.set_logical_device_configuration(
                        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(replicas)])
                except RuntimeError:  # already initialised: use what exists
                    pass
                devices = [d.name for d in tf.config.list_logical_devices("CPU")][:replicas]
                if len(devices) < replicas:
                    raise UsageError(f"--replicas {replicas}: TensorFlow was initialised with {len(devices)} "
                                     "CPU device(s) before netspec could split it")
            self.strategy = tf.distribute.MirroredStrategy(devices)
        self.note = (f"keras: tf.distribute.MirroredStrategy, {self.strategy.num_replicas_in_sync} replicas on "
                     f"{', '.join(devices)}" if self.strategy else "")
        self.replicas = replicas
        self.network = network
        self.kb = kb
        self.keras = keras
        with self.strategy.scope() if self.strategy else contextlib.nullcontext():
            self.model = kb.build(network, weights)
        self.model.run_eagerly = eager
        self.signature = kb.interface(network)
        self.moved = dict(self.signature["inputs"])
        self.acc = m.accuracy_terms(network)
        self.train_metrics = self._add_accuracy_metrics()

    def _add_accuracy_metrics(self) -> dict[str, str]:
        """Recompile with Keras accuracy metrics for the training step's own forward pass.

        Returns accuracy name -> Keras metric name; empty (no training accuracy) when the compile
        arguments cannot be read back or a class axis is not the model's last axis.
        """
        config = getattr(getattr(self.model, "_compile_config", None), "config", None)
        if not self.acc or not isinstance(config, dict):
            return {}
        keras = self.keras
        outputs = list(self.network.outputs)
        per_output: list[list] = [[] for _ in outputs]
        names = {}
        for j, (name, term) in enumerate(self.acc.items()):
            i = outputs.index(term.args[0])
            rank = self.network.type_of(term.args[0]).rank
            moved = self.signature["outputs"][i][1]
            if term.fn != "binary_crossentropy":
                axis = term.attrs.get("axis", -1) % rank
                if axis != (0 if moved else rank - 1):
                    return {}
            key = f"netspec_accuracy_{j}"
            if term.fn == "sparse_categorical_crossentropy":
                metric = keras.metrics.SparseCategoricalAccuracy(name=key)
            elif term.fn == "categorical_crossentropy":
                metric = keras.metrics.CategoricalAccuracy(name=key)
            else:  # Keras's BinaryAccuracy compares soft targets as they are; this thresholds them at 0.5
                metric = keras.metrics.MeanMetricWrapper(
                    _binary_hits(keras, 0.0 if term.attrs.get("from_logits") else 0.5), name=key)
            per_output[i].append(metric)
            names[name] = key
        try:
            with self.strategy.scope() if self.strategy else contextlib.nullcontext():
                self.model.compile(**{**config, "metrics": per_output[0] if len(outputs) == 1 else per_output})
        except Exception:  # pragma: no cover - a compile form this cannot extend: no training accuracy
            return {}
        return names

    def _train_counts(self, logs: dict, arrays: dict) -> list[float]:
        counts: list[float] = []
        for name, term in self.acc.items():
            key = self.train_metrics.get(name)
            value = next((v for k, v in logs.items() if key and k.endswith(key)), None)
            if value is None:
                counts += [float("nan"), 0.0]
                continue
            target = arrays[term.args[1]]
            total = target.size  # one prediction per id (sparse) or per element (binary)
            if term.fn == "categorical_crossentropy":
                axis = term.attrs.get("axis", -1) % self.network.type_of(term.args[0]).rank + 1
                total //= target.shape[axis]
            counts += [round(float(value) * total), float(total)]
        return counts

    def allreduce(self, values: list[float]) -> list[float]:
        return values

    def barrier(self) -> None:
        pass

    def close(self) -> None:
        pass

    def reseed(self, seed: int, epoch: int) -> None:
        self.keras.utils.set_random_seed((seed * 1_000_003 + epoch * 1009) % 2**31)

    def _feeds(self, arrays: dict):
        import numpy as np

        feeds = [np.moveaxis(arrays[v.name], 1, -1) if self.moved[v.name] else arrays[v.name]
                 for v in self.network.inputs]
        return feeds if len(feeds) > 1 else feeds[0]

    def train_batch(self, arrays: dict, n_local: int, n_global: int, real: bool = True) -> list[float]:
        y = self.kb.fit_targets(self.network, arrays, signature=self.signature)
        self.model.reset_metrics()
        logs = self.model.train_on_batch(self._feeds(arrays), y, return_dict=True)
        return [float(logs["loss"]) * n_local, *self._train_counts(logs, arrays)]

    def _outputs(self, arrays: dict) -> list:
        out = self.model(self._feeds(arrays), training=False)
        out = out if isinstance(out, (tuple, list)) else (out,)
        return [self.kb.from_model_layout(self.network, name, self.keras.ops.convert_to_numpy(o))
                for name, o in zip(self.network.outputs, out)]

    def eval_batch(self, arrays: dict, n_local: int, real: bool = True) -> list[float]:
        y = self.kb.fit_targets(self.network, arrays, signature=self.signature)
        self.model.reset_metrics()
        logs = self.model.test_on_batch(self._feeds(arrays), y, return_dict=True)
        counts: list[float] = []
        if self.acc:
            outs = self._outputs(arrays)
            for term in self.acc.values():
                pred = outs[list(self.network.outputs).index(term.args[0])]
                c, n = m.correct(term, self.network, pred, arrays[term.args[1]])
                counts += [float(c), float(n)]
        return [float(logs["loss"]) * n_local, *counts]

    def predict(self, arrays: dict) -> list:
        return self._outputs(arrays)

    def weights(self) -> dict:
        return self.kb.export_canonical(self.model, self.network)

    def optimizer_state(self) -> tuple[dict, dict]:
        opt = self.model.optimizer
        if not opt.built:
            opt.build(self.model.trainable_variables)
        tensors = {f"optimizer.{i}": self.keras.ops.convert_to_numpy(v) for i, v in enumerate(opt.variables)}
        return tensors, {"paths": [v.path for v in opt.variables]}

    def load_optimizer_state(self, tensors: dict, meta: dict) -> None:
        opt = self.model.optimizer
        if not opt.built:
            with self.strategy.scope() if self.strategy else contextlib.nullcontext():
                opt.build(self.model.trainable_variables)
        if len(opt.variables) != len(meta["paths"]):
            raise ValueError(f"the saved optimiser state has {len(meta['paths'])} variables, "
                             f"the model's optimiser {len(opt.variables)}")
        for i, v in enumerate(opt.variables):
            v.assign(tensors[f"optimizer.{i}"])


def _binary_hits(keras, cut: float):
    """Per-element 1.0 where (prediction > cut) equals (target > 0.5), as netspec.train.metrics counts."""
    def hits(y_true, y_pred):
        ops = keras.ops
        return ops.cast(ops.equal(ops.greater(y_true, 0.5), ops.greater(y_pred, cut)), "float32")
    return hits
