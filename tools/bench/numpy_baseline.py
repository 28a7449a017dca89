#!/usr/bin/env python3
"""The loop a researcher would otherwise write: NumPy-vectorised wealth updates (and a SciPy-sparse
network for adaptive peers). Called by bench_engine in the same benchmark run; prints one line
`agent_steps_per_s=<float>`.

  numpy_baseline.py plan  AGENTS PATHS STEPS
  numpy_baseline.py peers AGENTS PATHS STEPS
"""
import sys
import time

import numpy as np


def plan(agents, paths, steps):
    rng = np.random.default_rng(1)
    r, v, sigma, dt = 0.04, 0.03, 0.17, 1.0
    amounts = rng.uniform(1.0, 8.0, size=(steps, agents))  # precomputed plans, as in the engine
    eps = rng.standard_normal((steps, paths))
    wealth = np.full((paths, agents), 10.0)
    start = time.perf_counter()
    for k in range(steps):
        excess = v * dt + sigma * np.sqrt(dt) * eps[k]
        wealth *= 1.0 + r * dt
        wealth += amounts[k][None, :] * excess[:, None]
    return time.perf_counter() - start, wealth


def peers(agents, paths, steps):
    import scipy.sparse as sp
    rng = np.random.default_rng(2)
    r, v, sigma, dt, T = 0.04, 0.03, 0.17, 1.0, float(steps)
    alpha = rng.uniform(0.09, 0.77, size=agents)
    theta = np.full(agents, 1e-7)
    # Ring, 2 neighbours on each side, theta_ij = theta_i / degree.
    rows = np.repeat(np.arange(agents), 4)
    cols = (rows + np.tile([-2, -1, 1, 2], agents)) % agents
    weights = sp.csr_matrix((np.full(rows.size, 0.25), (rows, cols)), shape=(agents, agents))
    eps = rng.standard_normal((steps, paths))
    wealth = np.full((agents, paths), 10.0)
    previous = np.zeros((agents, paths))
    start = time.perf_counter()
    for k in range(steps):
        growth_t = (1 + r * dt) ** (steps - 1 - k)
        merton = v / (alpha * sigma**2 * growth_t)
        if k == 0:
            amount = np.repeat(merton[:, None], paths, axis=1)
        else:
            seen = (weights @ previous) * (1 + r * dt)
            ln_eta = -alpha[:, None] * wealth * (1 + r * dt) ** (steps - k) - v**2 * (T - k * dt) / (2 * sigma**2)
            ln_kappa = np.log(theta / (alpha * sigma**2))[:, None] - ln_eta - 2 * np.log(growth_t)
            w = 1.0 / (1.0 + np.exp(ln_kappa))
            amount = w * merton[:, None] + (1 - w) * seen
        excess = v * dt + sigma * np.sqrt(dt) * eps[k]
        wealth = wealth * (1 + r * dt) + amount * excess[None, :]
        previous = amount
    return time.perf_counter() - start, wealth


if __name__ == "__main__":
    kind, agents, paths, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    fn = plan if kind == "plan" else peers
    best = min(fn(agents, paths, steps)[0] for _ in range(3))
    print(f"agent_steps_per_s={agents * paths * steps / best:.6g}")
