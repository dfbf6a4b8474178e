"""The ``netspec`` command line.

Exit status: 0 clean, 1 spec errors (diagnostics printed), 2 usage errors
(bad flags, unreadable files, unknown network or target, an output that cannot be
written). Every file a command writes goes through :func:`write_atomic`, and
commands check their ``-o`` target with :func:`check_output` before working.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .diagnostics import SpecError
from .files import WriteError

EXIT_OK, EXIT_SPEC, EXIT_USAGE = 0, 1, 2


class _UsageError(Exception):
    pass


def write_atomic(path: str | Path, data) -> None:
    """Write a whole file or nothing (see :mod:`netspec.files`); WriteError is a usage error."""
    from .files import write_atomic as write

    write(path, data)


def check_output(path: str | Path | None) -> None:
    """Refuse an output that cannot be written (missing or read-only folder, a directory,
    a read-only file) before a command does its work; :func:`write_atomic` checks again."""
    from .files import check_target

    if path is not None:
        check_target(path)


def _load(path: str):
    from . import load

    return load(path)


def _is_usage(exc: SpecError) -> bool:
    return all(d.code in ("E001", "E002") for d in exc.diagnostics)


def _network_name(spec, name: str | None) -> str | None:
    if name is None:
        return None
    names = [n.name for n in spec.networks]
    if name not in names:
        raise _UsageError(f"no network '{name}' in {spec.source.name}; networks: {', '.join(names)}")
    return name


def _read_weights(path: str | None):
    """Canonical weights from a safetensors file, or None when no file is given."""
    if not path:
        return None
    from .weights import load_weights

    try:
        return load_weights(path)
    except Exception as exc:  # safetensors raises several types for bad files
        raise _UsageError(f"cannot read weights '{path}': {exc}") from None


def cmd_check(args) -> int:
    status = EXIT_OK
    results = []
    for path in args.files:
        try:
            spec = _load(path)
        except SpecError as exc:
            if _is_usage(exc):
                status = max(status, EXIT_USAGE)
            else:
                status = max(status, EXIT_SPEC)
            if args.format == "json":
                results.append({"file": path, "errors": [d.to_json() for d in exc.diagnostics]})
            else:
                print(exc.render(), file=sys.stderr)
                n = len(exc.diagnostics)
                print(f"{path}: {n} error{'s' if n != 1 else ''}", file=sys.stderr)
            continue
        report = _check_report(spec, args)
        if args.format == "json":
            results.append({**report.to_json(), **({"warnings": [w.to_json() for w in spec.warnings]}
                                                   if spec.warnings else {})})
        else:
            if spec.warnings:
                print(spec.render_warnings(), file=sys.stderr)
            if len(args.files) > 1:
                print(f"== {path}")
            print(report.render())
            print()
    if args.format == "json":
        import json

        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    return status


def _parse_dims(items: list[str]) -> dict[str, int]:
    dims: dict[str, int] = {}
    for item in items:
        name, sep, size = item.partition("=")
        if not sep or not name.strip().isidentifier() or not size.strip().lstrip("-").isdigit():
            raise _UsageError(f"--dim takes NAME=SIZE, e.g. --dim T=128; received '{item}'")
        dims[name.strip()] = int(size)
    return dims


def _check_report(spec, args):
    """The report with the check options: --dim, --training, --batch, --optimizer-state."""
    training = getattr(args, "training", False)
    batch = getattr(args, "batch", None)
    if batch is not None and not training:
        raise _UsageError("--batch applies to --training only")
    if getattr(args, "optimizer_state", False) and not training:
        raise _UsageError("--optimizer-state applies to --training only")
    if batch is not None and batch < 1:
        raise _UsageError(f"--batch must be at least 1; received {batch}")
    dims = _parse_dims(getattr(args, "dim", None) or [])
    from .report import build_report, dim_names

    if len(getattr(args, "files", ())) > 1:  # several files: each binds the names it uses
        used = {d for n in spec.plain_program.networks for d in dim_names(n)}
        dims = {k: v for k, v in dims.items() if k in used}
    if not training and not dims:
        return spec.check()

    try:
        return build_report(spec.plain_program, training_batch=(batch or 1) if training else None, dims=dims,
                            show_slots=getattr(args, "optimizer_state", False))
    except ValueError as exc:
        raise _UsageError(str(exc)) from None


def _add_check_flags(c) -> None:
    c.add_argument("--training", action="store_true",
                   help="add the memory of a training step: weights, gradients, optimiser state, activations "
                        "kept for backward, and the peak")
    c.add_argument("--batch", type=int, default=None, metavar="N", help="batch size for --training (default 1)")
    c.add_argument("--optimizer-state", action="store_true",
                   help="with --training: list each optimiser state tensor (momentum, exp_avg, ...) on its own line")
    c.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                   help="bind a run-time dimension for shapes, MACs and memory (repeatable), e.g. --dim T=128")


def cmd_fmt(args) -> int:
    from .checker import check_module
    from .frontend import form_of, parse_source, read_source
    from .frontend.format import format_module, source_comments

    form = form_of(args.file)
    if args.output:
        check_output(args.output)
    elif args.in_place:
        check_output(args.file)
    source = read_source(args.file)
    try:
        module = parse_source(source)
        check_module(module, source)
    except SpecError as exc:
        exc.sources.setdefault(source.name, source)
        raise
    target = args.to or form
    comments = source_comments(source.text, form)
    text = format_module(module, target, comments=comments, keep_breaks=form == "net")
    if args.check:
        if text != source.text:
            print(f"{args.file}: not in canonical form", file=sys.stderr)
            return EXIT_SPEC
        return EXIT_OK
    if args.output:
        write_atomic(args.output, text)
    elif args.in_place:
        if args.to and args.to != form_of(args.file):
            raise _UsageError("--in-place keeps the file's form; use -o to convert")
        write_atomic(args.file, text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_compile(args) -> int:
    check_output(args.output)
    spec = _load(args.file)
    network = _network_name(spec, args.network)
    from .backends import TARGETS, get

    options = {}
    if "layout" in get(args.target).options:
        options["layout"] = args.layout
    elif args.layout != "channels_last":
        takers = [t for t in TARGETS if "layout" in get(t).options]
        raise _UsageError(f"--layout applies to --target {' or '.join(takers)} only")
    text = spec.compile(args.target, network, **options)
    if args.output:
        write_atomic(args.output, text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_export(args) -> int:
    check_output(args.output)
    spec = _load(args.file)
    network = _network_name(spec, args.network)
    if args.weights and args.random_weights:
        raise _UsageError("--weights and --random-weights exclude each other")
    weights = _read_weights(args.weights)
    from .backends import onnx as backend

    model = spec.to_onnx(weights, network, opset=args.opset, keep_bn=args.keep_bn, seed=args.seed)
    backend.save(model, args.output)  # netspec.files.write_atomic
    if weights is None and not args.random_weights:
        print(f"warning: no --weights: {args.output} holds freshly initialised weights "
              f"(init_weights(seed={args.seed})), not trained ones; pass --weights W, or --random-weights "
              "to mean it (the ONNX metadata 'netspec.weights' records it)", file=sys.stderr)
    return EXIT_OK


def cmd_import(args) -> int:
    """ONNX -> a .net spec beside its canonical weights (both written, or neither)."""
    import os

    from .importers.onnx import ConversionError, import_onnx
    from .weights import save_weights

    if Path(args.output).suffix != ".net":
        raise _UsageError(f"-o must name a .net file; received '{args.output}'")
    weights_out = args.weights_out or str(Path(args.output).with_suffix(".safetensors"))
    try:
        result = import_onnx(args.model, network=args.network)
    except ConversionError as exc:
        print(f"netspec: error: {args.model}: {exc}", file=sys.stderr)
        return EXIT_SPEC
    existed = os.path.exists(weights_out)
    try:
        save_weights(result.weights, weights_out)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise _UsageError(f"cannot write '{weights_out}': {exc}") from None
    try:
        write_atomic(args.output, result.text)
    except BaseException:
        if not existed and os.path.exists(weights_out):
            os.unlink(weights_out)
        raise
    if args.mapping:
        for name, source, shape in result.mapping:
            print(f"{name} <- {source} {list(shape)}")
    count = sum(int(a.size) for a in result.weights.values())
    print(f"wrote {args.output} (network {result.network}) and {weights_out} "
          f"({len(result.weights)} tensors, {count:,} values)", file=sys.stderr)
    return EXIT_OK


def cmd_weights_import(args) -> int:
    """A PyTorch or Keras checkpoint -> canonical safetensors for a spec (written whole, or not at all)."""
    from .importers.weights import WeightsImportError, import_checkpoint, read_mapping
    from .weights import save_weights

    spec = _load(args.spec)
    network = _network_name(spec, args.network)
    source = args.checkpoint
    try:
        mapping = read_mapping(args.mapping) if args.mapping else None
        result = import_checkpoint(source, spec, network, mapping, framework=args.source)
    except (WeightsImportError, OSError) as exc:
        print(f"netspec: error: {source}: {exc}", file=sys.stderr)
        return EXIT_SPEC
    save_weights(result.weights, args.output)
    if args.report:
        print(result.report())
    count = sum(int(a.size) for a in result.weights.values())
    print(f"wrote {args.output}: {len(result.weights)} tensors, {count:,} values, matched {result.how}",
          file=sys.stderr)
    return EXIT_OK


def cmd_verify(args) -> int:
    from . import verify as v

    spec = _load(args.file)
    network = _network_name(spec, args.network)
    choices = v.TRAIN_BACKENDS if args.train else v.BACKENDS
    backends = [b.strip() for b in (args.backends or ",".join(choices)).split(",") if b.strip()]
    unknown = [b for b in backends if b not in choices]
    if args.train and unknown and all(b in v.BACKENDS for b in unknown):
        raise _UsageError(f"--train compares {' and '.join(choices)}; {', '.join(unknown)} cannot train")
    if unknown or not backends:
        raise _UsageError(f"unknown backend(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(choices)}")
    if (args.steps is not None or args.float64) and not args.train:
        raise _UsageError(f"{'--steps' if args.steps is not None else '--float64'} applies to --train only")
    if args.steps is not None and args.steps < 1:
        raise _UsageError(f"--steps must be at least 1; received {args.steps}")
    if args.batch is not None and args.batch < 1:
        raise _UsageError(f"--batch must be at least 1; received {args.batch}")
    if args.no_noise_floor and not args.train:
        raise _UsageError("--no-noise-floor applies to --train only")
    weights = _read_weights(args.weights)
    nets = [spec.network(network)] if network else list(spec.networks)
    dims = _parse_dims(args.dim or [])
    from .report import dim_names

    unused = [k for k in dims if not any(k in dim_names(n) for n in nets)]
    if unused:
        known = sorted({d for n in nets for d in dim_names(n)})
        raise _UsageError(f"--dim {unused[0]}: no network verified has a run-time dimension '{unused[0]}' "
                          f"(run-time dimensions: {', '.join(known) or 'none'})")
    try:
        bound = {n.name: v.run_dims(n, {k: s for k, s in dims.items() if k in dim_names(n)}) for n in nets}
    except v.DimsError as exc:
        raise _UsageError(str(exc)) from None
    for n in nets:  # located refusals of what the machine should not allocate, before any framework loads
        spec.preflight("train" if args.train else "verify", n.name, [b for b in backends if v.available(b)],
                       args.batch or (v.TRAIN_BATCH if args.train else 2), steps=args.steps or v.TRAIN_STEPS,
                       float64=args.float64, noise_floor=not args.no_noise_floor)
    if args.train:
        results = [v.verify_training(n, backends, weights, steps=args.steps or v.TRAIN_STEPS, seed=args.seed,
                                     batch=args.batch or v.TRAIN_BATCH, atol=args.atol, rtol=args.rtol,
                                     dtype="float64" if args.float64 else "float32", dims=bound[n.name],
                                     noise_floor=not args.no_noise_floor)
                   for n in nets]
    else:
        results = [v.verify(n, backends, weights, seed=args.seed, batch=args.batch or 2, atol=args.atol,
                            rtol=args.rtol, dims=bound[n.name]) for n in nets]
    if args.format == "json":
        out = {"file": args.file, "networks": [r.to_json() for r in results]}
        if args.train:
            out = {"file": args.file, "mode": "train", "networks": out["networks"]}
        import json

        print(json.dumps(out, indent=2))
    else:
        print("\n\n".join(r.render() for r in results))
    return EXIT_OK if all(r.passed for r in results) else EXIT_SPEC


def cmd_graph(args) -> int:
    """Draw one network as SVG or HTML; a spec with errors is drawn up to them, and exits 1."""
    from .frontend import form_of, read_source
    from .graph import draw_source

    suffix = Path(args.output).suffix.lower()
    fmt = {".svg": "svg", ".html": "html", ".htm": "html"}.get(suffix)
    if fmt is None:
        raise _UsageError(f"-o {args.output}: the drawing is written as .svg or .html; "
                          f"received '{suffix or 'no suffix'}'")
    if args.depth is not None and args.depth < 0:
        raise _UsageError(f"--depth must be 0 or more; received {args.depth}")
    form_of(args.file)
    source = read_source(args.file)
    try:
        text, diagnostics = draw_source(source, fmt, args.network, depth=-1 if args.depth is None else args.depth,
                                        expand=args.expand)
    except KeyError:
        from .frontend import parse_source
        from .graph.partial import check_partial

        names = [n.name for n in check_partial(parse_source(source), source)[0]]
        raise _UsageError(f"no network '{args.network}' in {source.name}; networks: {', '.join(names)}") from None
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    write_atomic(args.output, text)
    if diagnostics:
        print(SpecError(diagnostics, {source.name: source}).render(), file=sys.stderr)
        n = len(diagnostics)
        print(f"{args.file}: {n} error{'s' if n != 1 else ''}; {args.output} shows the network up to "
              f"{'them' if n != 1 else 'it'}", file=sys.stderr)
        return EXIT_SPEC
    return EXIT_OK


def _add_graph_parser(sub) -> None:
    g = sub.add_parser("graph", help="draw a network as SVG or as an interactive HTML page")
    g.add_argument("file", metavar="SPEC")
    g.add_argument("-o", "--output", metavar="FILE", required=True, help="FILE.svg or FILE.html")
    g.add_argument("--network", metavar="N", help="which network (default: the first)")
    g.add_argument("--depth", type=int, default=None, metavar="K",
                   help="open blocks nested at most K deep; deeper ones are one box each "
                        "(default: the deepest that keeps the drawing to about 40 boxes)")
    g.add_argument("--expand", action="append", default=[], metavar="NAME",
                   help="also open this block instance (features.3) or every use of this block (repeatable)")
    g.set_defaults(func=cmd_graph)


# train / evaluate (netspec/train) ---------------------------------------------------------------------------

_TRAIN_EPILOG = """\
--batch-size is the GLOBAL batch: under torchrun (or --nproc N) each process takes its part of every
batch and gradients are averaged, so a run gives the same weights on 1 or N processes (see
docs/training.md). Data: .npz (arrays named after the spec's inputs and targets), NAME.npy or
NAME=PATH.npy (memory-mapped), a folder of .npy files, or .csv for tabular specs; --data may be
repeated. Writes to --out: last.safetensors, best.safetensors, state.safetensors (--resume),
metrics.jsonl, summary.json.
"""


def _train_errors(func):
    """Run a train/evaluate command: bad data or options -> one-line usage error (exit 2)."""
    def run(args) -> int:
        from .train import DataError, TrainingError, UsageError

        try:
            return func(args)
        except (DataError, UsageError) as exc:
            raise _UsageError(str(exc)) from None
        except TrainingError as exc:
            print(f"netspec: training stopped: {exc}", file=sys.stderr)
            return EXIT_SPEC
        except OSError as exc:  # e.g. the disk filled up while writing a checkpoint (the old one is kept)
            raise _UsageError(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None
        except KeyboardInterrupt:  # pragma: no cover - interactive
            print("netspec: interrupted; the last finished epoch's checkpoint is kept", file=sys.stderr)
            return 130
    return run


def _relaunch_argv(args) -> list[str]:
    """The `netspec train` arguments of ``args`` without --nproc (what each torchrun worker runs)."""
    argv = ["train", args.file]
    for d in args.data:
        argv += ["--data", d]
    for d in args.val or ():
        argv += ["--val", d]
    for flag, value in (("--backend", args.backend), ("--epochs", args.epochs), ("--batch-size", args.batch_size),
                        ("--seed", args.seed), ("--weights", args.weights), ("--out", args.out),
                        ("--network", args.network), ("--device", args.device), ("--threads", args.threads),
                        ("--progress", args.progress), ("--format", args.format)):
        if value is not None:
            argv += [flag, str(value)]
    for flag, on in (("--resume", args.resume), ("--overwrite", args.overwrite), ("--no-shuffle", args.no_shuffle),
                     ("--no-value-check", args.no_value_check),
                     ("--amp", args.amp), ("--fsdp", args.fsdp), ("--keep-epochs", args.keep_epochs)):
        if on:
            argv.append(flag)
    return argv


def cmd_train(args) -> int:
    from . import train

    if args.nproc is not None:
        if args.nproc < 1:
            raise _UsageError(f"--nproc must be at least 1; received {args.nproc}")
        if args.backend != train.TORCHRUN_BACKEND:
            raise _UsageError(f"--nproc launches torchrun and applies to --backend {train.TORCHRUN_BACKEND}; "
                              f"for {args.backend} use --replicas N")
        import os
        import subprocess

        if "WORLD_SIZE" in os.environ:
            raise _UsageError("--nproc inside torchrun: drop --nproc (torchrun already started the processes)")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}",
               "-m", "netspec", *_relaunch_argv(args)]
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "1")
        return subprocess.call(cmd, env=env)
    spec = _load(args.file)
    network = _network_name(spec, args.network)
    result = train.fit(spec, args.data, args.val, backend=args.backend, epochs=args.epochs,
                       batch_size=args.batch_size, seed=args.seed, weights=args.weights, out=args.out,
                       resume=args.resume, overwrite=args.overwrite, network=network, shuffle=not args.no_shuffle,
                       device=args.device, amp=args.amp, fsdp=args.fsdp, replicas=args.replicas,
                       keep_epochs=args.keep_epochs, progress=args.progress, threads=args.threads,
                       check_values=not args.no_value_check)
    import os

    if int(os.environ.get("RANK", 0)) == 0:
        if args.format == "json":
            import json

            print(json.dumps(result.to_json(), indent=2))
        else:
            print(result.render())
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        # A torchrun worker whose work is done and written: leave without the interpreter's teardown,
        # where gloo's threads can abort the process ("terminate called without an active exception")
        # after the fact and make torchrun report a failed run.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_OK)
    return EXIT_OK


def cmd_evaluate(args) -> int:
    from . import train

    spec = _load(args.file)
    network = _network_name(spec, args.network)
    weights = _read_weights(args.weights)
    if args.batch_size < 1:
        raise _UsageError(f"--batch-size must be at least 1; received {args.batch_size}")
    result = train.evaluate(spec, weights, args.data, backend=args.backend, batch_size=args.batch_size,
                            network=network, device=args.device)
    if args.format == "json":
        import json

        print(json.dumps({"file": args.file, "network": spec.network(network).name, **result}, indent=2))
    else:
        print("  ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))
    return EXIT_OK


def add_train_parsers(sub) -> None:
    from .backends import TRAINERS
    """The `train` and `evaluate` subcommands (netspec/train)."""
    t = sub.add_parser("train", help="train a spec's network on data; canonical checkpoints, metrics, resume",
                       description="Train the spec's network with its loss and optimizer.", epilog=_TRAIN_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("file", metavar="SPEC")
    t.add_argument("--data", action="append", required=True, metavar="TRAIN",
                   help="training data: .npz, NAME.npy, NAME=PATH.npy, a folder of .npy, or .csv (repeatable)")
    t.add_argument("--val", action="append", metavar="VAL", help="validation data, same forms (repeatable)")
    t.add_argument("--backend", choices=TRAINERS, default=TRAINERS[0])
    t.add_argument("--epochs", type=int, default=1, help="total epochs (with --resume: up to this many)")
    t.add_argument("--batch-size", type=int, default=32,
                   help="GLOBAL batch size, split across processes (default 32)")
    t.add_argument("--seed", type=int, default=0, help="initial weights, sample order and dropout (default 0)")
    t.add_argument("--weights", metavar="W", help="start from canonical weights (.safetensors)")
    t.add_argument("--out", metavar="DIR", help="write checkpoints, metrics.jsonl and summary.json here")
    t.add_argument("--resume", action="store_true", help="continue the run in --out exactly (optimizer included)")
    t.add_argument("--overwrite", action="store_true", help="replace a finished or stopped run in --out")
    t.add_argument("--keep-epochs", action="store_true", help="also keep epoch-NNN.safetensors for every epoch")
    t.add_argument("--network", metavar="NAME", help="which network (default: the first)")
    t.add_argument("--no-shuffle", action="store_true", help="visit samples in file order")
    t.add_argument("--no-value-check", action="store_true",
                   help="skip the scan for NaN and out-of-range ids (shapes and dtypes are still checked)")
    t.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    t.add_argument("--amp", action="store_true", help="torch: mixed precision (torch.autocast, bfloat16)")
    t.add_argument("--fsdp", action="store_true", help="torch: shard the model with FSDP (needs cuda, torchrun)")
    t.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="torch: launch N data-parallel processes on this machine (torchrun --standalone)")
    t.add_argument("--replicas", type=int, default=1, metavar="N",
                   help="keras: N replicas with tf.distribute.MirroredStrategy (GPUs, else logical CPUs)")
    t.add_argument("--threads", type=int, default=None,
                   help="CPU threads per process (default: 1 for tiny models, else the framework's default)")
    t.add_argument("--progress", choices=("auto", "bar", "lines", "quiet"), default="auto",
                   help="auto: a live bar on a terminal, one line per epoch otherwise (CI, pipes)")
    t.add_argument("--format", choices=("text", "json"), default="text", help="the final summary's form")
    t.set_defaults(func=_train_errors(cmd_train))

    e = sub.add_parser("evaluate", help="the spec's loss (and accuracy) of canonical weights on data")
    e.add_argument("file", metavar="SPEC")
    e.add_argument("--weights", metavar="W", required=True, help="canonical weights (.safetensors)")
    e.add_argument("--data", action="append", required=True, metavar="DATA", help="same forms as train --data")
    e.add_argument("--backend", choices=TRAINERS, default=TRAINERS[0])
    e.add_argument("--batch-size", type=int, default=256)
    e.add_argument("--network", metavar="NAME")
    e.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    e.add_argument("--format", choices=("text", "json"), default="text")
    e.set_defaults(func=_train_errors(cmd_evaluate))


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .backends import TARGETS

    p = argparse.ArgumentParser(prog="netspec", description="Check, format, compile and export neural-network specs.")
    p.add_argument("--version", action="version", version=f"netspec {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("check", help="shapes, parameters and MACs of every layer; errors point at the spec")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--format", choices=("text", "json"), default="text")
    _add_check_flags(c)
    c.set_defaults(func=cmd_check)

    f = sub.add_parser("fmt", help="print the canonical form of a spec, or convert .net <-> YAML")
    f.add_argument("file", metavar="FILE")
    f.add_argument("--to", choices=("net", "yaml"), help="convert to this form (default: the file's own)")
    f.add_argument("-o", "--output", metavar="OUT", help="write here instead of standard output")
    f.add_argument("-i", "--in-place", action="store_true", help="rewrite FILE in canonical form")
    f.add_argument("--check", action="store_true", help="exit 1 if FILE is not in canonical form")
    f.set_defaults(func=cmd_fmt)

    m = sub.add_parser("compile", help="generate PyTorch or Keras source")
    m.add_argument("file", metavar="FILE")
    m.add_argument("--target", choices=TARGETS, required=True)
    m.add_argument("-o", "--output", metavar="OUT")
    m.add_argument("--network", metavar="NAME", help="which network (default: the first)")
    m.add_argument("--layout", choices=("channels_last", "channels_first"), default="channels_last",
                   help="Keras input layout (default: channels_last)")
    m.set_defaults(func=cmd_compile)

    e = sub.add_parser("export", help="write an ONNX model straight from the spec")
    e.add_argument("file", metavar="FILE")
    e.add_argument("-o", "--output", metavar="OUT", required=True)
    e.add_argument("--weights", metavar="W", help="canonical weights (.safetensors); default: init_weights(--seed)")
    e.add_argument("--random-weights", action="store_true",
                   help="export freshly initialised weights on purpose (no warning); the metadata says so")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--opset", type=int, default=None)
    e.add_argument("--network", metavar="NAME")
    e.add_argument("--keep-bn", action="store_true", help="keep BatchNorm nodes instead of folding them")
    e.set_defaults(func=cmd_export)

    v = sub.add_parser("verify", help="build every backend from one checkpoint and compare their outputs "
                                      "(or, with --train, K training steps)")
    v.add_argument("file", metavar="FILE")
    v.add_argument("--backends", default=None,
                   help="comma-separated (default: torch,keras,onnx; with --train: torch,keras)")
    v.add_argument("--network", metavar="NAME", help="one network (default: all)")
    v.add_argument("--weights", metavar="W", help="canonical weights (.safetensors); default: init_weights(--seed)")
    v.add_argument("--seed", type=int, default=0, help="weights, inputs and targets (default 0)")
    v.add_argument("--batch", type=int, default=None, help="batch size (default: 2; with --train: 4)")
    v.add_argument("--train", action="store_true",
                   help="compare the loss and every weight over K optimisation steps instead of inference outputs")
    v.add_argument("--steps", type=int, default=None, metavar="K", help="training steps with --train (default 5)")
    v.add_argument("--float64", action="store_true",
                   help="with --train: train both backends in float64, to tell meaning from float32 rounding")
    v.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                   help="size of a run-time dimension (repeatable), e.g. --dim T=64; default: the smallest "
                        "from 5 up that the spec's shapes allow")
    v.add_argument("--no-noise-floor", action="store_true",
                   help="with --train: judge float32 by --atol alone, without the reference's float64 noise floor")
    v.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance, scaled by max(1, |reference|)")
    v.add_argument("--rtol", type=float, default=0.0, help="relative tolerance (default 0)")
    v.add_argument("--format", choices=("text", "json"), default="text")
    v.set_defaults(func=cmd_verify)
    _add_graph_parser(sub)
    add_train_parsers(sub)
    _add_import_parsers(sub)
    _add_lsp(sub)
    return p


def _add_import_parsers(sub) -> None:
    """``netspec weights import`` and ``netspec import`` (netspec/importers)."""
    from .importers import CHECKPOINT_FORMATS

    w = sub.add_parser("weights", help="bring pretrained weights in: PyTorch or Keras checkpoints -> canonical")
    wsub = w.add_subparsers(dest="weights_command", required=True, metavar="ACTION")
    wi = wsub.add_parser("import", help="match a checkpoint's layers to the spec's and write canonical safetensors")
    wi.add_argument("spec", metavar="SPEC")
    wi.add_argument("checkpoint", metavar="CHECKPOINT",
                    help=".pt/.pth (read with weights_only=True), .safetensors, .keras or .weights.h5")
    wi.add_argument("-o", "--output", metavar="OUT.safetensors", required=True)
    wi.add_argument("--from", dest="source", choices=CHECKPOINT_FORMATS,
                    help="the checkpoint's framework (default: from the file name)")
    wi.add_argument("--mapping", metavar="FILE", help="pairs fixed by hand: 'spec_layer = checkpoint_layer' lines")
    wi.add_argument("--network", metavar="NAME")
    wi.add_argument("--report", action="store_true", help="print the mapping: spec name <- checkpoint name, "
                                                          "shape, conversion")
    wi.set_defaults(func=cmd_weights_import)

    im = sub.add_parser("import", help="an ONNX model as a .net spec and a canonical weights file")
    im.add_argument("model", metavar="MODEL.onnx")
    im.add_argument("-o", "--output", metavar="OUT.net", required=True)
    im.add_argument("--weights-out", metavar="W", help="canonical weights (default: OUT.safetensors)")
    im.add_argument("--network", metavar="NAME", help="the network's name (default: from the graph)")
    im.add_argument("--mapping", action="store_true",
                    help="print which initialiser each canonical weight came from")
    im.set_defaults(func=cmd_import)


def _add_lsp(sub) -> None:
    """``netspec lsp``: the language server (netspec/lsp), over stdio."""
    s = sub.add_parser("lsp", help="run the language server (LSP over stdio) for editors")
    s.add_argument("--stdio", action="store_true", help="talk over standard input and output (the default)")
    s.add_argument("--clientProcessId", help=argparse.SUPPRESS)  # passed by some clients; unused

    def cmd_lsp(args) -> int:
        try:
            from .lsp.server import serve
        except ImportError as exc:  # pygls or lsprotocol missing
            raise _UsageError(f"netspec lsp needs '{exc.name or exc}'; install it with "
                              "pip install 'netspec[lsp]'") from None
        serve()
        return EXIT_OK

    s.set_defaults(func=cmd_lsp)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        return args.func(args)
    except SpecError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_USAGE if _is_usage(exc) else EXIT_SPEC
    except (_UsageError, WriteError) as exc:
        print(f"netspec: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ImportError as exc:
        missing = exc.name or str(exc)
        print(f"netspec: error: this command needs '{missing}'; install the backend extra, "
              "e.g. pip install 'netspec[all]'", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # pragma: no cover - e.g. `netspec check x | head`
        return EXIT_OK
    except MemoryError:  # the preflight's estimate fits the limits, but this machine has less free memory
        print("netspec: error: out of memory; lower NETSPEC_MAX_MEMORY_BYTES to what this machine can "
              "spare, and the command will be refused before it allocates", file=sys.stderr)
        return EXIT_SPEC
    except OSError as exc:  # standard output on a full disk, or a file no command named in a message
        from .files import quote, reason

        where = quote(exc.filename) if exc.filename is not None else "standard output"
        print(f"netspec: error: cannot write {where}: {reason(exc)}" if exc.filename is None
              else f"netspec: error: {where}: {reason(exc)}", file=sys.stderr)
        return EXIT_USAGE


def entry() -> None:  # console script
    code = main()
    if sys.stdout.closed:  # the language server's transport closes standard output on exit
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.exit(code)
    except BrokenPipeError:  # pragma: no cover - the reader went away: not an error
        pass
    except OSError as exc:  # e.g. `netspec compile ... > /dev/full`
        from .files import reason

        if code != EXIT_USAGE:  # not reported by main() already
            print(f"netspec: error: cannot write standard output: {reason(exc)}", file=sys.stderr)
        code = EXIT_USAGE
    # Python would try to flush the unwritten buffer again at exit, and complain.
    import os

    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
