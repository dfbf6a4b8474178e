"""Long fuzzing campaigns: the generators of tests/test_robustness.py, many more inputs.

Each input must give a clean spec or located diagnostics (the property of
``tests/test_robustness.check_text``), answered in bounded time. Failures do not
stop the campaign: each is written to the report with its input.

    python scripts/fuzz.py --examples 100000            # spread over every generator
    python scripts/fuzz.py --examples 5000 --only big_ints expansion
    python scripts/fuzz.py --large 131072               # large inputs up to the size limit

Prints, per generator, the inputs run, the failures, and the slowest input; exits 1
on any failure. ``--report FILE`` writes the failures (and slow inputs) as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def generators(rb) -> dict:
    """name -> (strategy, file name, weight) for each generator of tests/test_robustness.py."""
    from hypothesis import strategies as st

    net_text = st.one_of(st.text(max_size=200), st.lists(st.sampled_from(rb.VOCAB), max_size=40).map(" ".join),
                         st.lists(st.sampled_from(rb.VOCAB), max_size=40).map("".join))
    yaml_text = st.one_of(st.text(max_size=200), st.lists(st.sampled_from(
        rb.VOCAB + ["networks:", "blocks:", "  ", "- ", "&a", "*a", "? ", "|", ">", "!!int", "{", "}", "inputs:",
                    "values:"]), max_size=40).map("".join))
    return {
        "mutated_net": (rb.mutated(rb.NET_SPECS), "fuzz.net", 3),
        "random_net": (net_text, "fuzz.net", 1),
        "mutated_yaml": (rb.mutated(rb.YAML_SPECS), "fuzz.yaml", 2),
        "structural_yaml": (rb.yaml_documents(), "fuzz.yaml", 1),
        "random_yaml": (yaml_text, "fuzz.yaml", 1),
        "op_chains": (rb.op_chains(), "ops.net", 2),
        "big_ints": (rb.big_int_specs(), None, 2),
        "expansion": (rb.expansion_specs(), "fuzz.net", 1),
        "large": (rb.large_specs(), None, 1),
        "odd_names": (rb.odd_name_specs(), "fuzz.net", 2),
    }


def _name_for(text: str, fixed: str | None) -> str:
    if fixed:
        return fixed
    return "fuzz.yaml" if text.startswith(("networks:", "#x")) else "fuzz.net"


def run(name: str, strategy, fixed: str | None, examples: int, seed: int, slow: float, rb) -> dict:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    stats = {"inputs": 0, "failures": [], "slow": [], "max_s": 0.0}

    @hseed(seed)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(text=strategy)
    def one(text):
        stats["inputs"] += 1
        start = time.perf_counter()
        try:
            rb.check_text(text, _name_for(text, fixed))
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, the campaign goes on
            if len(stats["failures"]) < 50:
                stats["failures"].append({"error": f"{type(exc).__name__}: {str(exc)[:2000]}", "input": text[:20000]})
            else:
                stats["failures"].append(None)
        took = time.perf_counter() - start
        stats["max_s"] = max(stats["max_s"], took)
        if took > slow and len(stats["slow"]) < 20:
            stats["slow"].append({"seconds": round(took, 2), "input": text[:2000]})

    one()
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=10_000, help="inputs in all, spread by weight")
    ap.add_argument("--only", nargs="*", help="run only these generators")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--large", type=int, default=None, help="largest 'large' input in bytes (default 20000)")
    ap.add_argument("--slow", type=float, default=2.0, help="report inputs slower than this many seconds")
    ap.add_argument("--report", type=Path, help="write failures and slow inputs here as JSON")
    args = ap.parse_args(argv)
    if args.large:
        os.environ["NETSPEC_FUZZ_LARGE"] = str(args.large)
    import test_robustness as rb

    gens = generators(rb)
    if args.only:
        gens = {k: v for k, v in gens.items() if k in args.only}
    total_weight = sum(w for _, _, w in gens.values())
    results, start = {}, time.perf_counter()
    print(f"seed {args.seed}")
    for name, (strategy, fixed, weight) in gens.items():
        n = max(1, args.examples * weight // total_weight)
        t0 = time.perf_counter()
        stats = run(name, strategy, fixed, n, args.seed, args.slow, rb)
        results[name] = stats
        print(f"{name:16} {stats['inputs']:8,} inputs  {len(stats['failures']):4} failures  "
              f"slowest {stats['max_s']:.2f} s  ({time.perf_counter() - t0:.0f} s)", flush=True)
    inputs = sum(s["inputs"] for s in results.values())
    failures = sum(len(s["failures"]) for s in results.values())
    print(f"total            {inputs:8,} inputs  {failures:4} failures  in {time.perf_counter() - start:.0f} s")
    if args.report:
        args.report.write_text(json.dumps({"seed": args.seed, "results": results}, indent=1), encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
