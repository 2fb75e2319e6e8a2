"""Cost of ``TrueTime.now()`` per call from Python beside ``time.time_ns()`` (the baseline) in
one run: 50 batches of 20 000 calls each, alternating, reported as ns per call (median and p90
over batches) and the ratio of the medians.

    python python/benches/now.py [PAGE]     # default: a simulated source
"""

import json
import statistics
import sys
import time

import truetime

BATCHES, N = 50, 20_000


def per_call(f):
    t0 = time.perf_counter_ns()
    for _ in range(N):
        f()
    return (time.perf_counter_ns() - t0) / N


def main():
    tt = truetime.TrueTime(sys.argv[1]) if len(sys.argv) > 1 else truetime.TrueTime.simulated(1_000)
    tt.now()  # fail early if the page is not trustworthy
    ours, base = [], []
    for _ in range(BATCHES):
        ours.append(per_call(tt.now))
        base.append(per_call(time.time_ns))
    q = lambda xs, p: sorted(xs)[int(len(xs) * p)]
    out = {
        "source": tt.source,
        "truetime_now_ns": {"p50": round(statistics.median(ours), 1), "p90": round(q(ours, 0.9), 1)},
        "time_time_ns_ns": {"p50": round(statistics.median(base), 1), "p90": round(q(base, 0.9), 1)},
        "ratio_p50": round(statistics.median(ours) / statistics.median(base), 2),
        "calls_per_s": round(1e9 / statistics.median(ours)),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
