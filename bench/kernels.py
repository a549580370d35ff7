"""Kernel choices of grok_core.kernels timed one against the other: row-chunked products against one bmm,
and a RowIndex's gradient sum by one-hot product against the inverse table.

Usage (from the repository root):
    python bench/kernels.py --only chunking    # row-chunked products vs one bmm, and each product alone
    python bench/kernels.py --only takeback    # one-hot vs inverse-table gradient sums (CUDA)

Parts (--only): chunking (grok_core.kernels.linear on the programme's product shapes, forward and backward as
one CUDA graph, and each of its three products alone for 1-16 chunks per run), takeback (whole programme
batches, compiled, with each way of summing). Printed and written under --out as <parts>_<device>.txt / .json.

--quick is a smoke test on a CPU (two product shapes with 1,024 rows; the quick profiles' batches); its
numbers are not comparable.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grok_core.kernels as kernels                                                    # noqa: E402
from bench.common import arguments, chosen_parts, Report, time_recorded_and_train_only, time_steps  # noqa: E402
from bench.programme import programme_batches                                          # noqa: E402
from grok_core.runner import batch_label                                               # noqa: E402

CHUNK_SHAPES = [(8, 43136, 128, 512), (8, 43136, 512, 128), (8, 43136, 128, 379), (8, 4736, 128, 512),
                (8, 4736, 128, 384), (8, 4736, 128, 128), (8, 4736, 128, 97), (16, 3776, 256, 1024),
                (16, 3776, 128, 97)]
# and the deeper layers' products, where positions 1 and 2 go through one product (twice the rows)
CHUNK_SHAPES_DEEP = [(8, 9472, 128, 384), (8, 9472, 128, 512), (8, 9472, 512, 128), (8, 9472, 128, 128)]


def graphed(fn, dev):
    """fn captured as a CUDA graph and returned as its replay (on CUDA), as the Trainer runs its step:
    the timing is then the GPU's, not the launch overhead of many small eager calls."""
    if torch.device(dev).type != "cuda":
        return fn
    side = torch.cuda.Stream(dev)
    side.wait_stream(torch.cuda.current_stream(dev))
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream(dev).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def product_inputs(shapes, dev, quick: bool = False):
    """For each product shape (runs, rows, d_in, d_out): the shape and seeded random x, W and output gradient gy.
    quick: the last two shapes only, with 1,024 rows."""
    for R, n, d_in, d_out in (shapes[-2:] if quick else shapes):
        n = 1024 if quick else n
        g = torch.Generator(device=dev).manual_seed(0)
        yield (R, n, d_in, d_out, torch.randn(R, n, d_in, device=dev, generator=g),
               torch.randn(R, d_in, d_out, device=dev, generator=g), torch.randn(R, n, d_out, device=dev, generator=g))


def chunking_check(dev, quick: bool = False) -> list[dict]:
    """grok_core.kernels.linear (rows cut into chunks for few runs) against one plain bmm, forward and
    backward (gradients of x and W) as one CUDA graph each, on the product shapes of the programme's
    small batches (runs, padded train rows, d_in, d_out)."""
    rows = []
    for R, n, d_in, d_out, x, W, gy in product_inputs(CHUNK_SHAPES, dev, quick):
        x.requires_grad_()
        W.requires_grad_()
        row = {"runs": R, "rows": n, "d_in": d_in, "d_out": d_out, "chunks": kernels.row_chunks(R, n)}
        for name, f in (("plain", lambda: torch.bmm(x, W)), ("chunked", lambda: kernels.linear(x, W))):
            step = graphed(lambda: torch.autograd.grad(f(), (x, W), gy), dev)
            row[f"{name}_ms"] = time_steps(step, dev, 2 if quick else 20) * 1e3
        row["speedup"] = row["plain_ms"] / row["chunked_ms"]
        rows.append(row)
    return rows


def chunk_products_check(dev, quick: bool = False) -> list[dict]:
    """The three products of a chunked `linear`, each timed alone (a CUDA graph on CUDA) for 1 to 16 chunks per
    run: forward x @ W, input gradient gy @ W^T, weight gradient x^T @ gy summed over the chunks. `linear` cuts
    all three alike; this shows which chunk count suits which product."""
    rows = []
    for R, n, d_in, d_out, x, W, gy in product_inputs(CHUNK_SHAPES + CHUNK_SHAPES_DEEP, dev, quick):
        row = {"runs": R, "rows": n, "d_in": d_in, "d_out": d_out, "ms": {}}
        for S in (1, 2, 4, 8, 16):
            if n % S:
                continue
            xs, gys = x.view(R * S, n // S, d_in), gy.view(R * S, n // S, d_out)
            Ws = W[:, None].expand(R, S, d_in, d_out).reshape(R * S, d_in, d_out)
            products = {"forward": lambda: torch.bmm(xs, Ws),
                        "input_grad": lambda: torch.bmm(gys, Ws.transpose(1, 2)),
                        "weight_grad": lambda: torch.bmm(xs.transpose(1, 2), gys).view(R, S, d_in, d_out).sum(1)}
            row["ms"][S] = {k: time_steps(graphed(f, dev), dev, 2 if quick else 20) * 1e3 for k, f in products.items()}
        row["best"] = {k: min(row["ms"], key=lambda S: row["ms"][S][k])
                       for k in ("forward", "input_grad", "weight_grad")}
        rows.append(row)
    return rows


def take_backward_check(dev, max_batch: int = 128, quick: bool = False) -> list[dict]:
    """How a RowIndex sums the gradient of its table (grok_core.kernels.ONEHOT_MAX_P): a product with the
    one-hot matrix or a gather through the inverse table, compiled as the runner trains, on the programme's
    largest batch, its cheapest batch of a deeper model and its batch at p = 211 (mixed ms per run-step)."""
    batches, _ = programme_batches(max_batch, dev, quick)
    picked = [max(range(len(batches)), key=lambda k: len(batches[k]))]
    picked += [k for k in range(len(batches) - 1, -1, -1) if batches[k][0].n_layers > 1][:1]
    picked += [k for k in range(len(batches)) if batches[k][0].p == 211][:1]
    rows, default = [], kernels.ONEHOT_MAX_P
    try:
        for k in dict.fromkeys(picked):
            b = batches[k]
            row = {"batch": batch_label(b), "runs": len(b),
                   "default": "onehot" if b[0].p <= default else "inverse"}
            for how, limit in (("onehot", 10 ** 9), ("inverse", 0)):
                kernels.ONEHOT_MAX_P = limit
                row[how] = time_recorded_and_train_only(b, dev, n_steps=2 if quick else 10, repeats=1 if quick else 3,
                                                        compile=True)["ms_per_run_step_mixed"]
            row["inverse_over_onehot"] = row["inverse"] / row["onehot"]
            rows.append(row)
    finally:
        kernels.ONEHOT_MAX_P = default
    return rows


def part_chunking(report: Report):
    report.say("models.linear with rows cut into chunks vs one bmm, forward + backward (x and W gradients), "
               f"{'CUDA graphs' if report.cuda else 'eager'}, ms:")
    report.res["chunking"] = chunking_check(report.dev, report.quick)
    for row in report.res["chunking"]:
        report.say(f"  {row['runs']:3d} runs x {row['rows']:6d} rows, {row['d_in']:4d} -> {row['d_out']:4d}, "
                   f"{row['chunks']:2d} chunks: plain {row['plain_ms']:.3f} / chunked {row['chunked_ms']:.3f} = "
                   f"{row['speedup']:.2f}x")
    report.say("each product of a chunked linear alone, ms for 1/2/4/8/16 chunks per run "
               "(forward | input gradient | weight gradient with the sum over chunks; best count in brackets):")
    report.res["chunk_products"] = chunk_products_check(report.dev, report.quick)
    for row in report.res["chunk_products"]:
        cols = ["/".join(f"{row['ms'][S][k]:.3f}" for S in row["ms"]) + f" [{row['best'][k]}]"
                for k in ("forward", "input_grad", "weight_grad")]
        report.say(f"  {row['runs']:3d} runs x {row['rows']:6d} rows, {row['d_in']:4d} -> {row['d_out']:4d}: "
                   + " | ".join(cols))


def part_takeback(report: Report):
    if not report.runs_here("takeback"):                # a CPU always sums through the inverse table
        return
    report.say("a RowIndex's table gradient by one-hot product vs inverse-table gather, compiled; ms per run-step, "
               f"mixed as in the programme (one-hot up to p = {kernels.ONEHOT_MAX_P}):")
    report.res["take_backward"] = take_backward_check(report.dev, report.args.max_batch, report.quick)
    for row in report.res["take_backward"]:
        report.say(f"  {row['batch']:<48} {row['runs']:3d} runs: one-hot {row['onehot']:.4f} / inverse "
                   f"{row['inverse']:.4f} = {row['inverse_over_onehot']:.2f}x (default: {row['default']})")


PARTS = {"chunking": part_chunking, "takeback": part_takeback}


def main():
    ap = arguments(__doc__, "smoke test on a CPU: two product shapes with 1,024 rows, the quick profiles' batches "
                   "(numbers not comparable)", list(PARTS), max_batch=True)
    args = ap.parse_args()
    chosen = chosen_parts(ap, args, list(PARTS))
    Report(args, "_".join(chosen)).run(PARTS, chosen)


if __name__ == "__main__":
    main()
