"""Benchmark: encrypted scoring, batched vs one ciphertext per record (TenSEAL's tutorial) vs plaintext.

For each case (breast-cancer and adult logistic regression, breast-cancer square-activation MLP) one model is
trained with the engine (`baseline` settings) and then, in the same process and run:

  plaintext       numpy float64 scoring of the whole test set (the reference decisions)
  batched         engine.he: feature-major packing, every test record, client/server split with
                  serialisation (encrypt / evaluate / decrypt timed apart); no rotation keys
  interactive     engine.he: one record per ciphertext through the same client/server code (Galois keys)
  tutorial        TenSEAL's tutorial code for encrypted logistic regression evaluation: one context
                  (N=8192, [60,40,40,60], 2^40, Galois keys), `ts.ckks_vector(ctx, x).dot(w) + b`, decrypt;
                  no serialisation (logreg only)
  enc_matmul      rows packed with `ts.enc_matmul_encoding` + `enc_matmul_plain` (GUIDE section 4), same
                  context as the tutorial (logreg only)

One-ciphertext-per-record modes run on the first --sample test records (they are ~100x slower). Prints a
table and writes every figure to --out as JSON.

    .venv/bin/python benchmarks/bench_he.py                 # all cases (about 2 minutes on 2 quiet cores)
    .venv/bin/python benchmarks/bench_he.py --quick         # breast-cancer logreg only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

CASES = (("breast-cancer", "logreg"), ("adult", "logreg"), ("breast-cancer", "mlp"))


def machine_info() -> dict:
    try:
        model = next(line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor()
    import tenseal

    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "tenseal": tenseal.__version__, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "load_average_before": [round(v, 2) for v in os.getloadavg()]}


def train(dataset: str, model: str):
    from engine import services
    from engine.config import SweepSpec
    from engine.he import plain_model
    from engine.techniques.base import RunContext
    from engine.workspace import Workspace
    from engine.techniques.baseline import train_baseline
    from engine.techniques.he_inference import square_mlp_for
    from engine.techniques.training import model_for

    plan = services.plan(SweepSpec(dataset=dataset, techniques=("baseline",), model=model, seeds=(0,)),
                         Workspace.at(None))
    (config,), data = plan.configs, plan.data
    build = square_mlp_for if model == "mlp" else model_for
    trained, _ = train_baseline(config, data, context=RunContext(device="cpu"), build=build)
    return plain_model(trained), data


def tutorial_per_record(weight: np.ndarray, bias: float, x: np.ndarray) -> tuple[np.ndarray, dict]:
    """TenSEAL tutorial 1 (encrypted evaluation of logistic regression), one record at a time."""
    import tenseal as ts

    start = time.perf_counter()
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=8192, coeff_mod_bit_sizes=[60, 40, 40, 60])
    ctx.global_scale = 2 ** 40
    ctx.generate_galois_keys()
    setup = time.perf_counter() - start
    encrypt = evaluate = decrypt = 0.0
    scores = np.zeros(len(x))
    for i, record in enumerate(x):
        t0 = time.perf_counter()
        enc_x = ts.ckks_vector(ctx, record.tolist())
        t1 = time.perf_counter()
        enc_out = enc_x.dot(weight.tolist()) + bias
        t2 = time.perf_counter()
        scores[i] = enc_out.decrypt()[0]
        t3 = time.perf_counter()
        encrypt, evaluate, decrypt = encrypt + t1 - t0, evaluate + t2 - t1, decrypt + t3 - t2
    n = len(x)
    return scores, {"ms_per_record": (encrypt + evaluate + decrypt) * 1e3 / n, "ms_encrypt": encrypt * 1e3 / n,
                    "ms_evaluate": evaluate * 1e3 / n, "ms_decrypt": decrypt * 1e3 / n, "records": n,
                    "setup_s": setup, "context_bytes_with_galois": len(ctx.serialize(save_secret_key=False))}


def enc_matmul_rows(weight: np.ndarray, bias: float, x: np.ndarray) -> tuple[np.ndarray, dict]:
    """Rows packed with enc_matmul_encoding; enc_matmul_plain sums each row with rotations."""
    import tenseal as ts

    ctx = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=8192, coeff_mod_bit_sizes=[60, 40, 40, 60])
    ctx.global_scale = 2 ** 40
    ctx.generate_galois_keys()
    padded = 1 << int(np.ceil(np.log2(x.shape[1])))
    rows = 4096 // padded  # records per ciphertext
    encrypt = evaluate = decrypt = 0.0
    parts, up = [], 0
    for start in range(0, len(x), rows):
        block = x[start:start + rows]
        t0 = time.perf_counter()
        enc = ts.enc_matmul_encoding(ctx, block)
        up += len(enc.serialize())
        t1 = time.perf_counter()
        out = enc.enc_matmul_plain(weight.tolist(), len(block)) + bias
        t2 = time.perf_counter()
        parts.append(np.array(out.decrypt()[: len(block)]))
        t3 = time.perf_counter()
        encrypt, evaluate, decrypt = encrypt + t1 - t0, evaluate + t2 - t1, decrypt + t3 - t2
    n = len(x)
    return np.concatenate(parts), {"ms_per_record": (encrypt + evaluate + decrypt) * 1e3 / n,
                                   "ms_encrypt": encrypt * 1e3 / n, "ms_evaluate": evaluate * 1e3 / n,
                                   "ms_decrypt": decrypt * 1e3 / n, "records": n, "records_per_ciphertext": rows,
                                   "upload_bytes_per_record": up / n}


def run_case(dataset: str, model_name: str, sample: int, mlp_sample: int, with_matmul: bool) -> dict:
    from engine.he import score_encrypted

    model, data = train(dataset, model_name)
    x, y = data.x_test.astype(np.float64), data.y_test
    t0 = time.perf_counter()
    plain = model.scores(x)
    plain_ms = (time.perf_counter() - t0) * 1e3 / len(x)
    plain_decisions = model.decide(plain)
    per_record = min(mlp_sample if model_name == "mlp" else sample, len(x))
    session = score_encrypted(model, x, interactive_sample=per_record)
    m = session.metrics
    result = {
        "dataset": dataset, "model": model_name, "test_records": len(x), "features": x.shape[1],
        "parameters": session.params.describe(),
        "plaintext": {"ms_per_record": plain_ms, "accuracy": float(np.mean(plain_decisions == y))},
        "batched": {k.replace("he_", ""): v for k, v in m.items() if "batched" in k or k in (
            "he_agreement", "he_max_abs_error", "he_bytes_per_record", "he_context_bytes", "he_n_records")},
        "interactive": {k.replace("he_", ""): v for k, v in m.items() if "interactive" in k or k in (
            "he_context_galois_bytes",)},
        "accuracy_encrypted": float(np.mean(session.decisions == y)),
    }
    result["ratios"] = {
        "interactive_over_batched": m["he_ms_per_record_interactive"] / m["he_ms_per_record_batched"],
        "batched_over_plaintext": m["he_ms_per_record_batched"] / plain_ms,
    }
    if model_name == "logreg":
        weight, bias = model.linear_scores()
        tutorial_scores, tutorial = tutorial_per_record(weight[0], float(bias[0]), x[:per_record])
        tutorial["agreement"] = float(np.mean((tutorial_scores > 0) == plain_decisions[:per_record].astype(bool)))
        result["tutorial"] = tutorial
        result["ratios"]["tutorial_over_batched"] = tutorial["ms_per_record"] / m["he_ms_per_record_batched"]
        if with_matmul:
            matmul_scores, matmul = enc_matmul_rows(weight[0], float(bias[0]), x)
            matmul["agreement"] = float(np.mean((matmul_scores > 0) == plain_decisions.astype(bool)))
            result["enc_matmul"] = matmul
            result["ratios"]["enc_matmul_over_batched"] = matmul["ms_per_record"] / m["he_ms_per_record_batched"]
    return result


def print_table(results: list[dict]) -> None:
    print("\n| case | mode | records | ms/record (encrypt / evaluate / decrypt) | agreement | bytes/record up+down |")
    print("|---|---|---|---|---|---|")
    for r in results:
        case = f"{r['dataset']} {r['model']}"
        b, i = r["batched"], r["interactive"]
        print(f"| {case} | plaintext (numpy) | {r['test_records']} | {r['plaintext']['ms_per_record']:.5f} | 1 | 0 |")
        print(f"| {case} | batched (engine) | {b['n_records']} | {b['ms_per_record_batched']:.3f} "
              f"({b['ms_encrypt_batched']:.3f} / {b['ms_evaluate_batched']:.3f} / {b['ms_decrypt_batched']:.4f}) | "
              f"{b['agreement']:.4f} | {b['bytes_per_record']:,.0f} |")
        if "enc_matmul" in r:
            e = r["enc_matmul"]
            print(f"| {case} | enc_matmul rows | {e['records']} | {e['ms_per_record']:.3f} ({e['ms_encrypt']:.3f} / "
                  f"{e['ms_evaluate']:.3f} / {e['ms_decrypt']:.4f}) | {e['agreement']:.4f} | {e['upload_bytes_per_record']:,.0f} (up) |")
        print(f"| {case} | one ct/record (engine) | {i['interactive_sample']} | {i['ms_per_record_interactive']:.2f} "
              f"({i['ms_encrypt_interactive']:.2f} / {i['ms_evaluate_interactive']:.2f} / {i['ms_decrypt_interactive']:.2f}) | "
              f"{i['agreement_interactive']:.4f} | {i['upload_bytes_per_record_interactive'] + i['download_bytes_per_record_interactive']:,.0f} |")
        if "tutorial" in r:
            t = r["tutorial"]
            print(f"| {case} | one ct/record (TenSEAL tutorial) | {t['records']} | {t['ms_per_record']:.2f} "
                  f"({t['ms_encrypt']:.2f} / {t['ms_evaluate']:.2f} / {t['ms_decrypt']:.2f}) | {t['agreement']:.4f} | n/a |")
    print("\n| case | parameters | tutorial / batched | engine one-ct / batched | batched / plaintext |")
    print("|---|---|---|---|---|")
    for r in results:
        q = r["ratios"]
        tutorial = f"{q['tutorial_over_batched']:.0f}x" if "tutorial_over_batched" in q else "n/a"
        print(f"| {r['dataset']} {r['model']} | {r['parameters']} | {tutorial} | {q['interactive_over_batched']:.0f}x | "
              f"{q['batched_over_plaintext']:.0f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="breast-cancer logreg only")
    parser.add_argument("--sample", type=int, default=200, help="records scored one ciphertext at a time (logreg)")
    parser.add_argument("--mlp-sample", type=int, default=16, help="records scored one at a time (mlp, ~1 s each)")
    parser.add_argument("--no-matmul", action="store_true", help="skip the enc_matmul_encoding variant")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out" / "bench_he.json")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Secure RNG turned off")
    info = machine_info()
    print(f"machine: {info['cpu']}, {info['cores']} cores, load {info['load_average_before']}, {info['date']}")
    results = []
    for dataset, model in (CASES[:1] if args.quick else CASES):
        start = time.perf_counter()
        results.append(run_case(dataset, model, args.sample, args.mlp_sample, not args.no_matmul))
        print(f"{dataset} {model}: {time.perf_counter() - start:.1f} s", flush=True)
    info["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": info, "results": results}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
