"""Benchmark 5, Transformers (issue 14): GPT-2 forward, checking a GPT-3-sized spec, GPT-2 to ONNX.

Usage: python benchmarks/transformer_models.py [--quick | --smoke] [--threads N] [--json OUT]

- GPT-2 small forward (T=128, batch 1 and 8, CPU): the model netspec generates from
  specs/gpt2_small.net against Hugging Face's ``GPT2LMHeadModel(GPT2Config())`` (random
  weights, nothing downloaded), the generated model loaded with the reference's weights
  and the logits checked equal first. Per-round ratio generated / Hugging Face; target
  <= 1.05x.
- ``netspec check specs/large/gpt3.net`` (174.6B parameters) as a whole process: wall time
  and peak RSS; targets under 1 s and under 64 MiB.
- ONNX export of GPT-2 small: netspec's exporter against ``torch.onnx.export(dynamo=False)``
  of the generated PyTorch model (same weights): export time, node count, and ONNX Runtime
  latency of both files (T=128, batch 1).

--smoke runs a one-block GPT-2 at T=8 (the scripts' plumbing only; numbers meaningless).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import _common as c

SPEC = c.ROOT / "specs" / "gpt2_small.net"
GPT3 = c.ROOT / "specs" / "large" / "gpt3.net"
TARGET_RATIO = 1.05
CHECK_SECONDS, CHECK_MIB = 1.0, 64.0


def _gpt2(args):
    """(HF model, netspec spec, canonical weights, T) — one block at T=8 under --smoke."""
    import torch
    import transformers

    import netspec

    layers = 1 if args.smoke else 12
    text = SPEC.read_text(encoding="utf-8").replace("gpt2_block * 12", f"gpt2_block * {layers}")
    spec = netspec.parse_text(text, str(SPEC))
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=layers)).eval()
    return hf, spec, canonical(hf), 8 if args.smoke else 128


def canonical(hf) -> dict:
    """GPT2LMHeadModel's weights under gpt2_small.net's canonical names (Conv1D weights are [in, out])."""
    sd = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
    d = hf.config.n_embd
    out = {"wte.embeddings": sd["transformer.wte.weight"],
           "h.position_embedding.embeddings": sd["transformer.wpe.weight"],
           "h.layernorm.gamma": sd["transformer.ln_f.weight"], "h.layernorm.beta": sd["transformer.ln_f.bias"]}
    for i in range(hf.config.n_layer):
        p, q = f"transformer.h.{i}.", f"h.{i}."
        for j, name in enumerate("qkv"):
            out[f"{q}a.attention.{name}_kernel"] = sd[p + "attn.c_attn.weight"][:, j * d:(j + 1) * d].T
            out[f"{q}a.attention.{name}_bias"] = sd[p + "attn.c_attn.bias"][j * d:(j + 1) * d]
        out[q + "a.attention.o_kernel"], out[q + "a.attention.o_bias"] = sd[p + "attn.c_proj.weight"].T, sd[
            p + "attn.c_proj.bias"]
        for ours, theirs in (("a.layernorm", "ln_1"), ("m.layernorm", "ln_2")):
            out[f"{q}{ours}.gamma"], out[f"{q}{ours}.beta"] = sd[f"{p}{theirs}.weight"], sd[f"{p}{theirs}.bias"]
        for ours, theirs in (("m.dense", "mlp.c_fc"), ("m.dense_1", "mlp.c_proj")):
            out[f"{q}{ours}.kernel"], out[f"{q}{ours}.bias"] = sd[f"{p}{theirs}.weight"].T, sd[f"{p}{theirs}.bias"]
    return {k: v.copy() for k, v in out.items()}


def forward(args, hf, spec, weights, length) -> tuple[list, list, dict]:
    import torch

    gen = spec.to_torch(weights=weights).eval()
    ids = torch.randint(0, 50257, (2, length), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        a, b = hf(ids).logits, gen(ids)
    diff = (a - b).abs().max().item()
    if diff > 1e-4 * max(1.0, a.abs().max().item()):
        raise SystemExit(f"logits differ: max |difference| {diff:g}")
    rows, targets, data = [], [], {}
    for batch in ((1,) if args.smoke else (1, 8)):
        n_rounds = c.rounds(args, full=7 if batch == 1 else 4, quick=3 if batch == 1 else 2)
        calls = 1 if args.smoke or batch > 1 else 2
        x = torch.randint(0, 50257, (batch, length), generator=torch.Generator().manual_seed(batch))

        def case(model, x=x, calls=calls, hf_side=False):
            def run() -> float:
                with torch.inference_mode():
                    return min(c.timed(lambda: model(x).logits if hf_side else model(x)) for _ in range(calls))
            return run

        c.progress(f"GPT-2 forward: batch {batch}, T={length}, {n_rounds} rounds ...")
        out = c.interleaved({"hf": case(hf, hf_side=True), "gen": case(gen)}, n_rounds, c.warmups(args))
        ratios = c.Stats.of([g / h for g, h in zip(out["gen"], out["hf"])])
        hs, gs = c.Stats.of(out["hf"]), c.Stats.of(out["gen"])
        rows.append([str(batch), str(length), c.fmt_seconds(hs.median), c.fmt_seconds(gs.median),
                     c.fmt_ratio(ratios.median), c.fmt_ratio_iqr(ratios), c.fmt_ratio_range(ratios), str(ratios.n)])
        targets.append(c.target(f"generated GPT-2 / Hugging Face GPT-2, PyTorch forward, T={length}, batch {batch}: "
                                f"<= {TARGET_RATIO:.2f}x",
                                f"{c.fmt_ratio(ratios.median)} (quartiles {c.fmt_ratio_iqr(ratios)})",
                                ratios.median <= TARGET_RATIO))
        data[f"forward|{batch}"] = {"hf_s": hs.as_dict(), "generated_s": gs.as_dict(), "ratio": ratios.as_dict()}
    note = (f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), inference_mode; logits checked equal "
            f"first (max |difference| {diff:.2g}); Hugging Face's attention implementation: "
            f"{getattr(hf.config, '_attn_implementation', 'default')}")
    return [c.section("GPT-2 small forward (CPU)", ["batch", "T", "Hugging Face (median)", "generated (median)",
                                                     "ratio (median)", "ratio quartiles", "ratio min - max", "rounds"],
                      rows, [note])], targets, data


def check_gpt3(args) -> tuple[list, list, dict]:
    n_rounds = c.rounds(args, full=5, quick=3)
    runs = [c.run_process([c.PYTHON, "-m", "netspec", "check", str(GPT3)], capture_stdout=True)
            for _ in range(n_rounds)]
    bad = [r for r in runs if r.returncode != 0]
    if bad:
        raise SystemExit(f"netspec check failed: {c.last_line(bad[0].stderr)}")
    total = next(line for line in runs[0].stdout.splitlines() if line.startswith("total params")).split(":")[1].strip()
    ts, ms = c.Stats.of([r.seconds for r in runs]), c.Stats.of([r.peak_mib for r in runs])
    rows = [[total, c.fmt_seconds(ts.median), f"{c.fmt_seconds(ts.min)} - {c.fmt_seconds(ts.max)}",
             c.fmt_mib(ms.median), str(ts.n)]]
    targets = [c.target(f"`netspec check` GPT-3-sized spec under {CHECK_SECONDS:.0f} s (whole process)",
                        f"{c.fmt_seconds(ts.median)} median", ts.median < CHECK_SECONDS),
               c.target(f"`netspec check` GPT-3-sized spec under {CHECK_MIB:.0f} MiB peak", c.fmt_mib(ms.median),
                        ms.median < CHECK_MIB)]
    note = ("the parameters would take 650 GiB in float32: the backends' preflight refuses to build the model "
            "(E304) before allocating anything")
    return [c.section("`netspec check specs/large/gpt3.net`", ["parameters", "wall (median)", "min - max",
                                                              "peak RSS", "runs"], rows, [note])], targets, \
        {"check_gpt3": {"seconds": ts.as_dict(), "peak_mib": ms.as_dict()}}


def export(args, spec, weights, length) -> tuple[list, list, dict]:
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    from netspec.backends import onnx as ob

    net = spec.network()
    gen = spec.to_torch(weights=weights).eval()
    n_threads = c.threads(args)
    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs = Path(tmp) / "netspec.onnx", Path(tmp) / "torch.onnx"
        t0 = time.perf_counter()
        ob.save(ob.export(net, weights), ours)
        t_ours = time.perf_counter() - t0
        ids = torch.randint(0, 50257, (1, length), generator=torch.Generator().manual_seed(2))
        t0 = time.perf_counter()
        torch.onnx.export(gen, (ids,), str(theirs), input_names=["ids"], output_names=["logits"], opset_version=18,
                          dynamic_axes={"ids": {0: "N", 1: "T"}, "logits": {0: "N", 1: "T"}}, dynamo=False)
        t_theirs = time.perf_counter() - t0
        nodes = {k: len(onnx.load(str(p), load_external_data=False).graph.node) for k, p in
                 (("ours", ours), ("theirs", theirs))}
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = n_threads
        sessions = {k: ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
                    for k, p in (("ours", ours), ("theirs", theirs))}
        feed = {"ids": ids.numpy()}
        a, b = (s.run(None, feed)[0] for s in sessions.values())
        diff = float(np.abs(a - b).max())
        n_rounds = c.rounds(args, full=7, quick=3)
        out = c.interleaved({k: (lambda s=s: c.timed(lambda: s.run(None, feed))) for k, s in sessions.items()},
                            n_rounds, c.warmups(args))
    ratios = c.Stats.of([o / t for o, t in zip(out["ours"], out["theirs"])])
    rows = [["netspec (decomposed attention, opset 18)", c.fmt_seconds(t_ours), str(nodes["ours"]),
             c.fmt_seconds(c.Stats.of(out["ours"]).median)],
            ["torch.onnx.export(dynamo=False) of the generated model", c.fmt_seconds(t_theirs), str(nodes["theirs"]),
             c.fmt_seconds(c.Stats.of(out["theirs"]).median)]]
    targets = [c.target("GPT-2 export faster than torch.onnx.export (dynamo=False)",
                        f"{c.fmt_seconds(t_ours)} vs {c.fmt_seconds(t_theirs)}", t_ours < t_theirs),
               c.target("GPT-2: no more nodes than torch.onnx.export (dynamo=False)",
                        f"{nodes['ours']} vs {nodes['theirs']}", nodes["ours"] <= nodes["theirs"]),
               c.target(f"GPT-2 ONNX Runtime latency equal to the torch.onnx.export file, T={length}, batch 1",
                        f"{c.fmt_ratio(ratios.median)} ({c.ratio_verdict(ratios.as_dict())[0]})",
                        c.ratio_verdict(ratios.as_dict())[1])]
    n_params = sum(p.numel() for p in gen.parameters())
    note = (f"one export each (the machine is shared; {n_params:,} parameters); ONNX Runtime {ort.__version__}, "
            f"{n_threads} intra-op thread(s), {n_rounds} interleaved rounds; the two files' logits differ by at most "
            f"{diff:.2g}")
    return [c.section("GPT-2 small to ONNX", ["exporter", "export time", "nodes", f"ORT latency, T={length}, batch 1"],
                      rows, [note])], targets, {"export": {"ours_s": t_ours, "torch_s": t_theirs, "nodes": nodes,
                                                           "ratio": ratios.as_dict()}}


def main(argv=None) -> dict:
    args = c.parser(__doc__.splitlines()[0]).parse_args(argv)
    import torch

    torch.set_num_threads(c.threads(args))
    hf, spec, weights, length = _gpt2(args)
    sections, targets, data = [], [], {}
    for part in (lambda: forward(args, hf, spec, weights, length), lambda: check_gpt3(args),
                 lambda: export(args, spec, weights, length)):
        s, t, d = part()
        sections += s
        targets += t
        data.update(d)
    result = {"benchmark": "transformers", "title": "5. Transformers: GPT-2, a GPT-3-sized check, GPT-2 to ONNX",
              "mode": c.mode_name(args), "sections": sections, "targets": targets, "data": data}
    c.finish(result, args)
    return result


if __name__ == "__main__":
    main()
