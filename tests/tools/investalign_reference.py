"""Independent expectations for the reference answerers (sim/investalign/reference.hpp), recomputed here from
the formulas of docs/theory.md with numpy and scipy, never through herdsim:

* alpha from the lottery probability (section 4.1: p = (1 - e^{-alpha S}) / (1 - e^{-alpha W}), W = 10, S = 3);
* Merton amounts P_alpha(t) = v / (alpha sigma^2) e^{-r (T - t)} (section 3.1);
* the P3 closed form P*(t) = w P_alpha + (1 - w) Pbar with ln eta from ln eta = ln eta0 + I(eta) (section 3.2);
* the answer format: proportions P(t = j) / B_j rounded half away from zero to hundredths of a percent
  and clamped to [0, 100] % (sections 4.2 and 4.5), played as pi_j B_j.

P1 and P2 theory (a boundary-value problem and a Nash game) is not re-solved here: for those problems the
expected scores use the theory the run file records (theory/amount), so they check the answers, the parser
and the scoring against it; the P3 expectations are independent end to end.
"""
import math

import numpy as np
from scipy import integrate, optimize

MU, R, SIGMA = 0.07, 0.04, 0.17
V = MU - R
ALPHA_LEADER = 0.2
T = 10
BUDGET_LIST = [10.00, 10.59, 11.22, 11.89, 12.60, 13.35, 14.15, 15.01, 15.91, 16.88]
LOTTERIES = [0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
SCORES = list(range(11))


def alpha_of_lottery(p, win=10.0, sure=3.0):
    f = lambda a: (1 - math.exp(-a * sure)) / (1 - math.exp(-a * win)) - p
    return optimize.brentq(f, 1e-9, 50.0, xtol=1e-15, rtol=1e-15)


def merton(alpha, t):
    return V / (alpha * SIGMA**2) * math.exp(-R * (T - t))


def p3(alpha, theta, x0, t):
    """The P3 closed form at time t (rho = 0), continuous time, correct eta, in this module's market."""
    return p3_one_asset(alpha, theta, x0, t, T, R, V, SIGMA, V / (ALPHA_LEADER * SIGMA**2))


def p3_one_asset(alpha, theta, x0, t, horizon, r, v, sigma, advisor):
    """The P3 closed form at time t (rho = 0, continuous time, correct eta) in a one-asset market (r, excess
    return v, volatility sigma) over `horizon` years, the advisor holding advisor * e^{-r (horizon - t)} (a
    Merton leader of alpha_L: advisor = v / (alpha_L sigma^2)): P* = w P_alpha + (1 - w) Pbar with
    ln eta = ln eta0 + (alpha^2 sigma^2 / 2) D^2 Int (1 - w)^2, D = v / (alpha sigma^2) - advisor."""
    own = v / (alpha * sigma**2)
    discount = math.exp(-r * (horizon - t))
    if theta == 0.0:
        return own * discount
    ln_eta0 = -alpha * x0 * math.exp(r * horizon) - v**2 * horizon / (2 * sigma**2)
    ln_vartheta = math.log(theta / (alpha * sigma**2))
    c = (alpha * sigma * (own - advisor)) ** 2 / 2

    def one_minus_w(L, s):
        return 1.0 / (1.0 + math.exp(L + 2 * r * (horizon - s) - ln_vartheta))

    def F(L):
        i, _ = integrate.quad(lambda s: one_minus_w(L, s) ** 2, 0.0, horizon, epsabs=0, epsrel=1e-13, limit=200)
        return L - ln_eta0 - c * i

    L = optimize.brentq(F, ln_eta0 - 1.0, ln_eta0 + c * horizon + 1.0, xtol=1e-14, rtol=1e-15, maxiter=500)
    w = 1.0 - one_minus_w(L, t)
    return (w * own + (1 - w) * advisor) * discount


def budgets(x0):
    return [x0 / 10.0 * b for b in BUDGET_LIST[:T]]


def centi(fraction):
    """Hundredths of a percent, rounded half away from zero, clamped to [0, 100] %."""
    f = min(max(fraction, 0.0), 1.0)
    return math.floor(f * 10000.0 + 0.5)


def played(path_amounts, x0):
    """The amounts an answer of the path plays: two-decimal proportions of the reference budgets times B_j."""
    b = budgets(x0)
    return np.array([centi(a / bj) / 10000.0 * bj for a, bj in zip(path_amounts, b)])


def grid():
    """The investagent grid of scenarios/investalign/: agent i has lottery i // 11 and score i % 11."""
    return [(LOTTERIES[i // 11], SCORES[i % 11]) for i in range(66)]


def answerer_path(answerer, alpha, theta, x0, theory_row=None):
    """Amounts at t = 1..T of an answerer's path; own_theory of P1/P2 takes the recorded theory row."""
    ts = range(1, T + 1)
    if answerer == "advisor":
        return [merton(ALPHA_LEADER, t) for t in ts]
    if answerer == "merton":
        return [merton(alpha, t) for t in ts]
    if answerer == "p3_closed_form":
        return [p3(alpha, theta, x0, t) for t in ts]
    if answerer == "own_theory":
        return list(theory_row)
    raise ValueError(answerer)


def expected_mse(answerer, problem, wealth, theory=None, x0=10.0):
    """(MSE in amounts, MSE in percentage points) of one run group of the grid.

    wealth: (T, agents) realised wealth at the decisions (the run file's wealth rows 0..T-1 of path 0);
    theory: (T, agents) the recorded theory/amount, used for the problems not re-solved here (P1, P2) and
    for own_theory there. For P3 the theory is this module's closed form."""
    per_agent = expected_per_agent(answerer, problem, wealth, theory, x0)
    return float(np.mean([a for a, _ in per_agent])), float(np.mean([pp for _, pp in per_agent]))


def expected_per_agent(answerer, problem, wealth, theory=None, x0=10.0):
    """Per agent of the run (the first wealth.shape[1] of the grid): (MSE in amounts, in pp) over its decisions."""
    out = []
    for i, (p, score) in enumerate(grid()[: wealth.shape[1]]):
        alpha = alpha_of_lottery(p)
        theta = score * 1e-8
        if problem == "P3":
            target = np.array([p3(alpha, theta, x0, t) for t in range(1, T + 1)])
        else:
            target = np.asarray(theory[:, i])
        path = answerer_path(answerer, alpha, theta, x0, target)
        got = played(path, x0)
        out.append((float(np.mean((got - target) ** 2)), float(np.mean((100.0 * (got - target) / wealth[:, i]) ** 2))))
    return out
