"""The ``netspec`` command line.

Exit status: 0 clean, 1 spec errors (diagnostics printed), 2 usage errors
(bad flags, unreadable files, unknown network or target).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .diagnostics import SpecError

EXIT_OK, EXIT_SPEC, EXIT_USAGE = 0, 1, 2


class _UsageError(Exception):
    pass


def write_atomic(path: str | Path, data) -> None:
    """Write a whole file or nothing (see :func:`netspec.files.write_atomic`)."""
    from .files import write_atomic as write

    try:
        write(path, data)
    except FileNotFoundError as exc:
        raise _UsageError(f"cannot write '{path}': {exc}") from None


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
        report = spec.check()
        if args.format == "json":
            results.append(report.to_json())
        else:
            if len(args.files) > 1:
                print(f"== {path}")
            print(report.render())
            print()
    if args.format == "json":
        import json

        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    return status


def cmd_fmt(args) -> int:
    from .checker import check_module
    from .frontend import form_of, parse_source, read_source
    from .frontend.format import format_module, source_comments

    form = form_of(args.file)
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
    spec = _load(args.file)
    network = _network_name(spec, args.network)
    options = {}
    if args.target == "keras":
        options["layout"] = args.layout
    elif args.layout != "channels_last":
        raise _UsageError("--layout applies to --target keras only")
    text = spec.compile(args.target, network, **options)
    if args.output:
        write_atomic(args.output, text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_export(args) -> int:
    spec = _load(args.file)
    network = _network_name(spec, args.network)
    weights = _read_weights(args.weights)
    from .backends import onnx as backend

    model = spec.to_onnx(weights, network, opset=args.opset, keep_bn=args.keep_bn, seed=args.seed)
    if not (Path(args.output).parent if str(Path(args.output).parent) else Path(".")).is_dir():
        raise _UsageError(f"cannot write '{args.output}': no such directory '{Path(args.output).parent}'")
    backend.save(model, args.output)
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
    weights = _read_weights(args.weights)
    nets = [spec.network(network)] if network else list(spec.networks)
    if args.train:
        results = [v.verify_training(n, backends, weights, steps=args.steps or v.TRAIN_STEPS, seed=args.seed,
                                     batch=args.batch or v.TRAIN_BATCH, atol=args.atol, rtol=args.rtol,
                                     dtype="float64" if args.float64 else "float32")
                   for n in nets]
    else:
        results = [v.verify(n, backends, weights, seed=args.seed, batch=args.batch or 2, atol=args.atol,
                            rtol=args.rtol) for n in nets]
    if args.format == "json":
        out = {"file": args.file, "networks": [r.to_json() for r in results]}
        if args.train:
            out = {"file": args.file, "mode": "train", "networks": out["networks"]}
        import json

        print(json.dumps(out, indent=2))
    else:
        print("\n\n".join(r.render() for r in results))
    return EXIT_OK if all(r.passed for r in results) else EXIT_SPEC


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="netspec", description="Check, format, compile and export neural-network specs.")
    p.add_argument("--version", action="version", version=f"netspec {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("check", help="shapes, parameters and MACs of every layer; errors point at the spec")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--format", choices=("text", "json"), default="text")
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
    m.add_argument("--target", choices=("torch", "keras"), required=True)
    m.add_argument("-o", "--output", metavar="OUT")
    m.add_argument("--network", metavar="NAME", help="which network (default: the first)")
    m.add_argument("--layout", choices=("channels_last", "channels_first"), default="channels_last",
                   help="Keras input layout (default: channels_last)")
    m.set_defaults(func=cmd_compile)

    e = sub.add_parser("export", help="write an ONNX model straight from the spec")
    e.add_argument("file", metavar="FILE")
    e.add_argument("-o", "--output", metavar="OUT", required=True)
    e.add_argument("--weights", metavar="W", help="canonical weights (.safetensors); default: init_weights(--seed)")
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
    v.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance, scaled by max(1, |reference|)")
    v.add_argument("--rtol", type=float, default=0.0, help="relative tolerance (default 0)")
    v.add_argument("--format", choices=("text", "json"), default="text")
    v.set_defaults(func=cmd_verify)
    _add_lsp(sub)
    return p


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
    except _UsageError as exc:
        print(f"netspec: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ImportError as exc:
        missing = exc.name or str(exc)
        print(f"netspec: error: this command needs '{missing}'; install the backend extra, "
              "e.g. pip install 'netspec[all]'", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # pragma: no cover - e.g. `netspec check x | head`
        return EXIT_OK


def entry() -> None:  # console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry()
