"""The batched per-fit L-BFGS against scipy, fit by fit, and the probe solver's shortcuts against plain fits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize as scipy_minimize

from searchprobe.probe.lbfgs import minimize
from searchprobe.probe.linear import fit_batched


def logistic_problems(G: int, F: int, n: int = 300, d: int = 6, seed: int = 0):
    """G × F L2-regularised logistic regressions with different data scales and penalties (float64):
    the per-fit objective, a batched objective over any block, and each fit alone for scipy."""
    rng = np.random.default_rng(seed)
    X = torch.tensor(rng.normal(size=(G, n, d)) * rng.uniform(0.3, 4.0, size=(G, 1, d)))
    y = torch.tensor((rng.normal(size=(G, n, F)) + X[..., :1].numpy() > 0).astype(float))
    lam = torch.tensor(10.0 ** rng.uniform(-4, -1, size=(G, F)))

    def one(theta, g, f):  # theta (..., d + 1): loss and gradient of fit (g, f)
        logits = X[g] @ theta[..., :d].T + theta[..., d]
        loss = (torch.nn.functional.softplus(logits) - y[g][:, f, None] * logits).mean(0) + 0.5 * lam[g, f] * (theta[..., :d] ** 2).sum(-1)
        r = (torch.sigmoid(logits) - y[g][:, f, None]) / n
        grad = torch.cat([r.T @ X[g] + lam[g, f] * theta[..., :d], r.sum(0)[:, None]], dim=-1)
        return loss, grad

    calls = []

    def batched(theta, g_idx, f_idx):
        calls.append((g_idx.tolist(), f_idx.tolist()))
        losses = torch.zeros(len(g_idx), len(f_idx), dtype=torch.float64)
        grads = torch.zeros_like(theta)
        for i, g in enumerate(g_idx.tolist()):
            for j, f in enumerate(f_idx.tolist()):
                loss, grad = one(theta[i, j][None], g, f)
                losses[i, j], grads[i, j] = loss[0], grad[0]
        return losses, grads

    return one, batched, calls, d + 1


def test_every_fit_reaches_the_optimum_scipy_finds_for_it_alone():
    G, F = 3, 4
    one, batched, _, p = logistic_problems(G, F)
    theta = minimize(batched, torch.zeros(G, F, p, dtype=torch.float64), max_iter=500, tol=1e-9)
    for g in range(G):
        for f in range(F):
            def fun(x):
                loss, grad = one(torch.tensor(x)[None], g, f)
                return loss.item(), grad[0].numpy()

            ref = scipy_minimize(fun, np.zeros(p), jac=True, method="L-BFGS-B", options={"gtol": 1e-11, "ftol": 1e-15, "maxiter": 2000})
            np.testing.assert_allclose(theta[g, f].numpy(), ref.x, atol=1e-6)
            assert fun(theta[g, f].numpy())[0] == pytest.approx(ref.fun, abs=1e-12)


def test_a_fit_takes_the_same_steps_alone_as_in_a_batch():
    G, F = 2, 3
    _, batched, _, p = logistic_problems(G, F, seed=1)
    together = minimize(batched, torch.zeros(G, F, p, dtype=torch.float64), max_iter=30, tol=1e-9)

    def only(g, f):
        def objective(theta, g_idx, f_idx):
            return batched(theta, torch.tensor([g]), torch.tensor([f]))
        return minimize(objective, torch.zeros(1, 1, p, dtype=torch.float64), max_iter=30, tol=1e-9)[0, 0]

    for g in range(G):
        for f in range(F):
            np.testing.assert_allclose(together[g, f].numpy(), only(g, f).numpy(), rtol=0, atol=1e-12)


def test_converged_fits_stop_being_evaluated():
    G, F = 2, 3
    _, batched, calls, p = logistic_problems(G, F, seed=2)
    start = torch.zeros(G, F, p, dtype=torch.float64)
    solved = minimize(batched, start, max_iter=500, tol=1e-8)
    start[0] = solved[0]  # problem 0's fits start at their optimum: converged before the first step
    calls.clear()
    again = minimize(batched, start, max_iter=500, tol=1e-8)
    assert calls[0] == ([0, 1], [0, 1, 2]) and len(calls) > 2  # the initial evaluation covers everything
    assert all(g == [1] for g, _ in calls[1:])  # then only problem 1's block
    assert torch.equal(again[0], solved[0])


@pytest.mark.parametrize("kind", ["multiclass", "binary"])
def test_a_cv_sweep_in_one_solve_equals_each_fit_solved_alone(kind):
    """fit_batched warm-starts along the L2 path and skips each fold's own rows in the fits that leave
    it out; neither may change any fit's answer."""
    rng = np.random.default_rng(3)
    G, n, d, K = 2, 240, 5, 3
    X = rng.normal(size=(G, n, d))
    scores = X @ rng.normal(size=(d, K)) + rng.normal(size=(G, n, K))
    y = scores.argmax(-1) if kind == "multiclass" else (scores > 0).astype(np.int64)
    train = np.arange(n) < 200
    fold = np.arange(n) * 3 // 200  # training rows sorted by fold, as fit_label orders them
    weights, l2s = [], []
    for lam in (1e-3, 1e-2, 1e-1):
        for f in range(4):
            weights.append(train & (fold != f) if f < 3 else train)
            l2s.append(lam)
    w = np.stack(weights).astype(np.float64)
    kwargs = dict(n_classes=K if kind == "multiclass" else None, max_iter=1000, tol=1e-9, dtype=torch.float64)
    W, b = fit_batched(X, y, w, np.array(l2s), kind, **kwargs)
    for j in range(len(l2s)):
        W1, b1 = fit_batched(X, y, w[j:j + 1], np.array(l2s[j:j + 1]), kind, **kwargs)
        np.testing.assert_allclose(W[:, j].numpy(), W1[:, 0].numpy(), atol=1e-5)
        np.testing.assert_allclose(b[:, j].numpy(), b1[:, 0].numpy(), atol=1e-5)


@pytest.mark.parametrize("kind", ["multiclass", "binary"])
def test_a_row_weight_of_two_is_the_row_twice(kind):
    rng = np.random.default_rng(4)
    n, d, K = 150, 4, 3
    X = rng.normal(size=(1, n, d))
    scores = X @ rng.normal(size=(d, K)) + rng.normal(size=(1, n, K))
    y = scores.argmax(-1) if kind == "multiclass" else (scores > 0).astype(np.int64)
    weights = rng.integers(0, 3, size=n).astype(np.float64)  # 0, 1 or 2
    rows = np.repeat(np.arange(n), weights.astype(int))
    kwargs = dict(n_classes=K if kind == "multiclass" else None, max_iter=1000, tol=1e-10, dtype=torch.float64)
    W, b = fit_batched(X, y, weights[None], [0.01], kind, **kwargs)
    W2, b2 = fit_batched(X[:, rows], y[:, rows], np.ones((1, len(rows))), [0.01], kind, **kwargs)
    np.testing.assert_allclose(W.numpy(), W2.numpy(), atol=1e-6)
    np.testing.assert_allclose(b.numpy(), b2.numpy(), atol=1e-6)
