"""Benchmark 3, export: ResNet-50 with weights to ONNX, netspec against torch.onnx.export.

Usage: python benchmarks/export_onnx.py [--quick | --smoke] [--device cpu|cuda] [--threads N] [--json OUT]

All exporters get the same weights: the hand-written torchvision-form ResNet-50
(benchmarks/reference_models.py, BatchNorm statistics randomised), and netspec its
state_dict as canonical weights.

- ``netspec export specs/resnet50.net -o OUT --weights W.safetensors``, a whole process;
- the netspec API in this process: ``spec.to_onnx(weights)`` then ``netspec.backends.onnx.save``
  (spec already loaded, weights in memory);
- ``torch.onnx.export(model, ..., dynamo=False)`` (the legacy TorchScript exporter), in this
  process and as a whole process (import torch, build the model, load the state_dict, export);
- ``torch.onnx.export(model, ..., dynamo=True)`` (the torch.export-based exporter, the default
  since PyTorch 2.9); where it fails here, the table gives its error instead of a number.

Every file has a dynamic batch axis and opset 18. Then: node counts and sizes of the files,
and ONNX Runtime latency of the netspec file against each torch file (batch 1 and 8, outputs
checked equal first, ratio netspec / torch per round).
"""

from __future__ import annotations

import collections
import sys
import tempfile
import warnings
from pathlib import Path

import _common as c

SPEC = c.ROOT / "specs" / "resnet50.net"
OPSET = 18
BATCHES = (1, 8)


def _counts(path: Path) -> dict:
    import onnx

    model = onnx.load(str(path))
    ops = collections.Counter(n.op_type for n in model.graph.node)
    return {"nodes": len(model.graph.node), "initializers": len(model.graph.initializer),
            "ops": dict(ops.most_common()), "mib": path.stat().st_size / 2**20,
            "opset": next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)}


def main(argv=None) -> dict:
    p = c.parser(__doc__.splitlines()[0])
    args = p.parse_args(argv)
    missing = [m for m in ("torch", "onnx", "onnxruntime", "numpy") if not c.installed(m)]
    if missing:
        result = {"benchmark": "export", "title": "3. Export to ONNX", "intro": "", "settings": {},
                  "sections": [c.section("Export", ["exporter", "result"],
                                         [[m, c.NOT_INSTALLED] for m in missing])], "targets": [], "data": {}}
        c.finish(result, args)
        return result

    import numpy as np
    import onnxruntime as ort
    import torch

    import netspec
    from netspec.backends import onnx as onnx_backend
    from netspec.weights import save_weights

    sys.path.insert(0, str(c.BENCH))
    from reference_models import canonical_weights, randomize_batchnorm, resnet50

    if args.device == "cuda":
        c.require_cuda_torch()
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            sys.exit(f"--device cuda: onnxruntime {ort.__version__} has no CUDAExecutionProvider "
                     f"(providers: {', '.join(ort.get_available_providers())}); run with --device cpu")
    n_threads = c.threads(args)
    torch.set_num_threads(n_threads)
    n_rounds = c.rounds(args, full=5, quick=3)

    torch.manual_seed(0)
    ref = randomize_batchnorm(resnet50()).eval()
    spec = netspec.load(SPEC)
    weights = canonical_weights(ref, spec.network())
    tmp = Path(tempfile.mkdtemp(prefix="netspec-bench-"))
    wfile, ptfile = tmp / "resnet50.safetensors", tmp / "resnet50.pt"
    save_weights(weights, wfile)
    torch.save(ref.state_dict(), ptfile)
    files = {"netspec CLI": tmp / "netspec_cli.onnx", "netspec API": tmp / "netspec_api.onnx",
             "torch legacy": tmp / "torch_legacy.onnx", "torch legacy process": tmp / "torch_legacy_proc.onnx",
             "torch dynamo": tmp / "torch_dynamo.onnx"}
    x1 = torch.randn(1, 3, 224, 224)
    axes = {"image": {0: "N"}, "logits": {0: "N"}}

    def torch_export(path: Path, dynamo: bool) -> None:
        with warnings.catch_warnings(), torch.inference_mode(False):
            warnings.simplefilter("ignore")
            kw = {"dynamo": dynamo, "input_names": ["image"], "output_names": ["logits"], "opset_version": OPSET}
            if dynamo:
                kw["dynamic_shapes"] = {"x": {0: torch.export.Dim("N")}}
            else:
                kw["dynamic_axes"] = axes
            torch.onnx.export(ref, (x1,), str(path), **kw)

    legacy_code = "\n".join([
        "import sys, warnings; warnings.simplefilter('ignore')",
        f"sys.path.insert(0, {str(c.BENCH)!r})",
        "import torch",
        "from reference_models import resnet50",
        f"torch.set_num_threads({n_threads})",
        "model = resnet50().eval()",
        f"model.load_state_dict(torch.load({str(ptfile)!r}))",
        f"torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), {str(files['torch legacy process'])!r}, "
        f"dynamo=False, input_names=['image'], output_names=['logits'], opset_version={OPSET}, "
        f"dynamic_axes={axes!r})",
    ])

    failures: dict[str, str] = {}
    peaks: dict[str, float] = {}

    def process(name: str, cmd: list[str]):
        def run() -> float:
            if name in failures:
                return float("nan")
            r = c.run_process(cmd)
            if r.returncode:
                failures[name] = f"failed (exit {r.returncode}): {c.last_line(r.stderr)}"
                c.progress(r.stderr[-3000:])
            peaks[name] = max(peaks.get(name, 0.0), r.peak_mib)
            return r.seconds
        return run

    def in_process(name: str, fn):
        def run() -> float:
            if name in failures:
                return float("nan")
            try:
                return c.timed(fn)
            except Exception as exc:  # an exporter failing here is a result to report
                failures[name] = f"failed: {type(exc).__name__}: {c.last_line(str(exc))}"
                c.progress(f"{name}: {failures[name]}")
                return float("nan")
        return run

    cases = {
        "netspec export (CLI process)": process("netspec export (CLI process)", [
            c.PYTHON, "-m", "netspec", "export", str(SPEC), "-o", str(files["netspec CLI"]), "--weights", str(wfile),
            "--opset", str(OPSET)]),
        "netspec API to_onnx + save (in process)": in_process(
            "netspec API to_onnx + save (in process)",
            lambda: onnx_backend.save(spec.to_onnx(weights=weights, opset=OPSET), files["netspec API"])),
        "torch.onnx.export dynamo=False (in process)": in_process(
            "torch.onnx.export dynamo=False (in process)", lambda: torch_export(files["torch legacy"], False)),
        "torch.onnx.export dynamo=False (whole process)": process(
            "torch.onnx.export dynamo=False (whole process)", [c.PYTHON, "-c", legacy_code]),
        "torch.onnx.export dynamo=True (in process)": in_process(
            "torch.onnx.export dynamo=True (in process)", lambda: torch_export(files["torch dynamo"], True)),
    }
    # One try of each first: an exporter that fails is reported, not timed again.
    if args.smoke:  # the slowest case; the in-process row runs the same exporter
        failures["torch.onnx.export dynamo=False (whole process)"] = "skipped in --smoke"
    first = {}
    for name, case in cases.items():
        c.progress(f"export: first run of {name} ...")
        first[name] = [case()]
    if args.smoke:
        times = first  # one run each: proves the script runs
    else:
        c.progress(f"export: {n_rounds} rounds ...")
        times = c.interleaved(cases, n_rounds, 0)

    base_api = base_proc = None
    rows, data = [], {"export": {}, "files": {}, "ort": {}}
    for name in cases:
        if name in failures:
            rows.append([name, failures[name], "", "", ""])
            data["export"][name] = {"error": failures[name]}
            continue
        st = c.Stats.of(times[name])
        if name.startswith("netspec API"):
            base_api = st
        if name.startswith("netspec export"):
            base_proc = st
        rows.append([name, *c.fmt_stats(st), c.fmt_mib(peaks[name]) if name in peaks else "(this process)", ""])
        data["export"][name] = {**st.as_dict(), "peak_mib": peaks.get(name)}
    for row, name in zip(rows, cases):
        if name in failures:
            continue
        st = c.Stats.of(times[name])
        base = base_proc if "process" in name and "in process" not in name else base_api
        if base:
            row[4] = c.fmt_ratio(st.median / base.median)

    # The files: node counts and sizes.
    file_rows, counts = [], {}
    labels = {"netspec CLI": "netspec export", "torch legacy": "torch.onnx.export dynamo=False",
              "torch dynamo": "torch.onnx.export dynamo=True"}
    for key, label in labels.items():
        path = files[key]
        if not path.exists():
            file_rows.append([label, "no file (the export failed)", "", "", "", ""])
            continue
        n = counts[key] = _counts(path)
        top = ", ".join(f"{op} {k}" for op, k in list(n["ops"].items())[:6])
        file_rows.append([label, str(n["nodes"]), str(n["initializers"]), f"{n['mib']:.1f} MiB", str(n["opset"]), top])
        data["files"][label] = n
    same_bytes = files["netspec API"].read_bytes() == files["netspec CLI"].read_bytes()
    file_notes = [f"the netspec CLI and API files are {'byte-identical' if same_bytes else 'DIFFERENT'}",
                  "netspec folds each BatchNorm into its convolution, as torch.onnx.export does in eval mode"]

    # ONNX Runtime latency: netspec's file against each torch file.
    providers = (["CUDAExecutionProvider", "CPUExecutionProvider"] if args.device == "cuda"
                 else ["CPUExecutionProvider"])

    def session(path: Path):
        so = ort.SessionOptions()
        so.intra_op_num_threads = n_threads
        so.inter_op_num_threads = 1
        return ort.InferenceSession(str(path), so, providers=providers)

    sessions = {key: session(files[key]) for key in ("netspec CLI", "torch legacy", "torch dynamo")
                if files[key].exists()}
    xs = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = ref(xs).numpy()
    scale = float(np.abs(expected).max())
    diffs = {}
    for key, s in sessions.items():
        got = s.run(None, {s.get_inputs()[0].name: xs.numpy()})[0]
        diffs[key] = float(np.abs(got - expected).max())
        if not np.allclose(got, expected, rtol=1e-3, atol=1e-4 * scale):
            raise SystemExit(f"ONNX Runtime output of the {key} file differs from PyTorch's by {diffs[key]:g} "
                             f"(largest |output| {scale:g})")
    ort_notes = [f"onnxruntime {ort.__version__}, {', '.join(providers)}, intra-op threads {n_threads}, inter-op 1, "
                 f"default graph optimisations; ratio = netspec file / torch file per round; a file's time in a "
                 f"round is the fastest of 3 runs (batch 1) or 2 (batch 8)",
                 "outputs checked against the PyTorch model before timing: max abs difference "
                 + ", ".join(f"{labels[k]} {v:.3g}" for k, v in diffs.items()) + f" (largest |output| {scale:.3g})"]
    ort_rows = []
    ratio_stats = {}
    for batch in BATCHES[:1] if args.smoke else BATCHES:
        xb = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224)).astype(np.float32)
        calls = 1 if args.smoke else 3 if batch == 1 else 2
        rounds_b = 1 if args.smoke else c.rounds(args, full=20, quick=8) if batch == 1 else c.rounds(args, 10, 4)

        def case(s, xb=xb, calls=calls):
            feed = {s.get_inputs()[0].name: xb}
            return lambda: min(c.timed(lambda: s.run(None, feed)) for _ in range(calls))

        c.progress(f"export: onnxruntime batch {batch}, {rounds_b} rounds ...")
        out = c.interleaved({k: case(s) for k, s in sessions.items()}, rounds_b, 0 if args.smoke else 2)
        for key in sessions:
            if key == "netspec CLI":
                continue
            ratios = [a / b for a, b in zip(out["netspec CLI"], out[key])]
            qs = c.Stats.of(ratios)
            ns, ts = c.Stats.of(out["netspec CLI"]), c.Stats.of(out[key])
            ort_rows.append([f"netspec vs {labels[key]}", str(batch), c.fmt_seconds(ns.median),
                             c.fmt_seconds(ts.median), c.fmt_ratio(qs.median), c.fmt_ratio_iqr(qs),
                             c.fmt_ratio_range(qs), str(qs.n)])
            ratio_stats[f"{key}|{batch}"] = qs
            data["ort"][f"{labels[key]}|{batch}"] = {"netspec_s": ns.median, "torch_s": ts.median,
                                                     "ratio": qs.as_dict()}
    for key in ("torch dynamo",):
        if key not in sessions:
            ort_rows.append([f"netspec vs {labels[key]}", "", "no file (the export failed)", "", "", "", "", ""])

    targets = []
    legacy = "torch.onnx.export dynamo=False (in process)"
    if base_api and legacy not in failures:
        lt = c.Stats.of(times[legacy])
        targets.append(c.target("export faster than torch.onnx.export (dynamo=False), in process",
                                f"{c.fmt_seconds(base_api.median)} vs {c.fmt_seconds(lt.median)}",
                                base_api.median < lt.median))
    dyn = "torch.onnx.export dynamo=True (in process)"
    if dyn in failures:
        targets.append(c.target("export faster than torch.onnx.export (dynamo=True)", failures[dyn], None))
    elif base_api:
        dt = c.Stats.of(times[dyn])
        targets.append(c.target("export faster than torch.onnx.export (dynamo=True), in process",
                                f"{c.fmt_seconds(base_api.median)} vs {c.fmt_seconds(dt.median)}",
                                base_api.median < dt.median))
    for key in ("torch legacy", "torch dynamo"):
        if key in counts and "netspec CLI" in counts:
            a, b = counts["netspec CLI"]["nodes"], counts[key]["nodes"]
            targets.append(c.target(f"no more nodes than {labels[key]}", f"{a} vs {b}", a <= b))
    for key, qs in ratio_stats.items():
        which, batch = key.split("|")
        words, ok = c.ratio_verdict(qs.as_dict())
        targets.append(c.target(f"ONNX Runtime latency equal to the {labels[which]} file, batch {batch}",
                                f"{qs.median:.2f}x (quartiles {qs.q1:.2f}x - {qs.q3:.2f}x): {words}", ok))

    result = {
        "benchmark": "export",
        "title": "3. Export to ONNX: ResNet-50 with weights",
        "intro": ("Time to write ResNet-50 with its weights as an ONNX file, the files' node counts, and ONNX "
                  "Runtime latency of the files, all with the same weights."),
        "settings": {"rounds": n_rounds, "device": args.device, "threads": n_threads, "mode": c.mode_name(args)},
        "sections": [
            c.section("Export time", ["exporter", "median", "min - max", "peak RSS", "time / netspec"], rows,
                      [f"{len(next(iter(times.values())))} interleaved rounds after one untimed first run of each "
                       "(smoke: the first run only); in-process rows are "
                       "compared with the netspec API, whole-process rows with the netspec CLI",
                       "in process: the model (or spec) and weights are already in memory; the time is the "
                       "export and the file write",
                       f"torch {torch.__version__}; onnxscript (needed by dynamo=True): {c.version('onnxscript')}"]),
            c.section("Files", ["exporter", "nodes", "initializers", "size", "opset", "most common ops"], file_rows,
                      file_notes),
            c.section("ONNX Runtime latency", ["files", "batch", "netspec file", "torch file", "ratio (median)",
                                               "ratio quartiles", "ratio min - max", "rounds"], ort_rows, ort_notes),
        ],
        "targets": targets,
        "data": data,
    }
    c.finish(result, args)
    for path in tmp.iterdir():
        path.unlink()
    tmp.rmdir()
    return result


if __name__ == "__main__":
    main()
