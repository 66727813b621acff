#!/usr/bin/env python3
"""Encoder-only gradient norms of DietCL's weighted loss terms, from runs trained with
`--set strategy.term_norms_every=K`: a Markdown table of the mean over the given runs (seeds) at
each measured iteration of stage 1, per time step, with the MAE/CE ratio.

    python3 scripts/experiments/term_norms.py runs/dietcl-pretrained/dietcl-labels0.01-seed*/
"""
import json
import sys
from collections import defaultdict


def main(runs):
    # (time step, iteration) -> term -> values over runs
    table = defaultdict(lambda: defaultdict(list))
    for run in runs:
        with open(f"{run.rstrip('/')}/metrics.jsonl") as f:
            for line in f:
                d = json.loads(line)
                if d.get("type") != "train" or d.get("stage") != "joint" or d.get("encoder_norm_mae") is None:
                    continue
                row = table[(d["step"] + 1, d["iteration"])]
                for term in ("mae", "current", "buffer"):
                    value = d.get(f"encoder_norm_{term}")
                    if value is not None:
                        row[term].append(value)
    mean = lambda v: sum(v) / len(v) if v else float("nan")
    print(f"Mean of {len(runs)} runs; MAE / CE is the MAE norm over the norm of both CE terms together.\n")
    print("| time step | iteration | MAE (×w) | current CE | buffer CE | MAE / CE |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for (t, i), row in sorted(table.items()):
        mae, cur, buf = (mean(row[k]) for k in ("mae", "current", "buffer"))
        ce = (cur**2 + (buf if buf == buf else 0.0) ** 2) ** 0.5
        print(f"| {t} | {i} | {mae:.3f} | {cur:.3f} | {'–' if buf != buf else f'{buf:.3f}'} | {mae / ce:.1f} |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
