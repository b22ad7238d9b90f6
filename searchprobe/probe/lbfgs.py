"""Batched L-BFGS: many independent smooth convex problems solved side by side, each with its own
history, step length and stopping test, as if each ran alone in scipy.

Parameters are `theta` (G, F, p): G groups (e.g. probes on the same activations, which share
their data) of F fits of p parameters each. `objective(theta_sub, g_idx, f_idx)` returns the loss
(g', f') and gradient (g', f', p) of the sub-block of groups `g_idx` × fits `f_idx`. Each iteration
evaluates only the smallest such block that holds every unfinished fit, so a fit that has
converged stops costing work once its whole row or column of the block has.

A single L-BFGS over the sum of all objectives (what `torch.optim.LBFGS` does when given them all)
shares one step length and one curvature history across fits and needs several times the
iterations each fit needs alone; here every fit takes the iterations scipy would give it.
"""

from __future__ import annotations

from typing import Callable


def minimize(objective: Callable, theta0, *, max_iter: int = 100, tol: float = 1e-4, history: int = 10,
             max_line_search: int = 20, c1: float = 1e-4):
    """Minimise every fit of theta0 (G, F, p) until its largest gradient entry is ≤ `tol` (scipy's
    `gtol`, sklearn's `tol`), `max_iter` iterations, or a failed line search; returns theta.

    Directions come from the two-loop recursion over each fit's last `history` (s, y) pairs;
    steps from backtracking with the Armijo condition (c1), starting at 1 (at 1/‖g‖ on the first
    iteration). The objectives must be convex, so that accepted steps have s·y > 0. Each iteration
    works on the block of unfinished fits only: a finished fit never resumes, so its state is left as is.
    """
    import torch

    theta = theta0.clone()
    G, F, p = theta.shape
    loss, grad = objective(theta, torch.arange(G), torch.arange(F))
    S = theta.new_zeros((history, G, F, p))
    Y = theta.new_zeros((history, G, F, p))
    rho = theta.new_zeros((history, G, F))  # 0: an empty or skipped slot, which the recursion ignores
    gamma = theta.new_ones((G, F))  # initial inverse-Hessian scale s·y / y·y of the newest pair
    fresh = torch.ones(G, F, dtype=torch.bool)  # no history yet: first step 1/‖g‖
    active = grad.abs().amax(-1) > tol
    for k in range(max_iter):
        if not bool(active.any()):
            break
        g_idx, f_idx = _block(active)
        whole = len(g_idx) == G and len(f_idx) == F
        at = (g_idx[:, None], f_idx[None, :])
        state = [theta, loss, grad, active, fresh, gamma]
        th, ls, gr, act, fr, gm = state if whole else [t[at] for t in state]
        Sb, Yb, rb = (S, Y, rho) if whole else (t[:, at[0], at[1]] for t in (S, Y, rho))
        direction = -_two_loop(gr, Sb, Yb, rb, gm, k, history)
        slope = (gr * direction).sum(-1)
        uphill = act & ~(slope < 0)  # only by rounding: restart these fits from steepest descent
        if bool(uphill.any()):
            direction = torch.where(uphill[..., None], -gr, direction)
            slope = torch.where(uphill, -(gr * gr).sum(-1), slope)
            rb[:, uphill] = 0
            gm[uphill] = 1
            fr |= uphill
        step = torch.where(fr, 1.0 / gr.norm(dim=-1).clamp(min=1e-12), torch.ones_like(ls))
        new_th, new_ls, new_gr = th.clone(), ls.clone(), gr.clone()
        pending = act.clone()
        for _ in range(max_line_search):
            li, lf = _block(pending)
            sub = (li[:, None], lf[None, :])
            trial = th[sub] + step[sub][..., None] * direction[sub]
            trial_loss, trial_grad = objective(trial, g_idx[li], f_idx[lf])
            waiting = pending[sub]
            ok = waiting & (trial_loss <= ls[sub] + c1 * step[sub] * slope[sub])
            new_th[sub] = torch.where(ok[..., None], trial, new_th[sub])
            new_ls[sub] = torch.where(ok, trial_loss, new_ls[sub])
            new_gr[sub] = torch.where(ok[..., None], trial_grad, new_gr[sub])
            pending[sub] = waiting & ~ok
            if not bool(pending.any()):
                break
            # minimiser of the quadratic through f(0), f'(0) and f(t), kept within [0.1 t, 0.5 t]
            t, rise = step[sub], trial_loss - ls[sub] - slope[sub] * step[sub]
            shrunk = (-slope[sub] * t * t / (2 * rise)).nan_to_num(0.0)
            shrunk = torch.minimum(torch.maximum(shrunk, 0.1 * t), 0.5 * t)
            step[sub] = torch.where(waiting & ~ok, shrunk, t)
        moved = act & ~pending
        act = act & ~pending  # a line search that found no decrease: as converged as float precision allows
        s, y = new_th - th, new_gr - gr
        sy, yy = (s * y).sum(-1), (y * y).sum(-1)
        keep = moved & (sy > 1e-10 * yy.clamp(min=1e-30))
        slot = k % history
        rb[slot] = torch.where(keep, 1.0 / sy.clamp(min=1e-30), torch.zeros_like(sy))
        gm = torch.where(keep, sy / yy.clamp(min=1e-30), gm)
        fr = fr & ~keep
        act = act & (new_gr.abs().amax(-1) > tol)
        if whole:
            S[slot], Y[slot] = s, y
            theta, loss, grad, active, fresh, gamma = new_th, new_ls, new_gr, act, fr, gm
        else:
            S[slot][at], Y[slot][at], rho[:, at[0], at[1]] = s, y, rb
            for full, part in zip((theta, loss, grad, active, fresh, gamma), (new_th, new_ls, new_gr, act, fr, gm)):
                full[at] = part
    return theta


def _two_loop(grad, S, Y, rho, gamma, k: int, history: int):
    """H·grad for every fit from its stored pairs (newest slot is (k - 1) mod history)."""
    q = grad.clone()
    slots = [(k - 1 - i) % history for i in range(min(k, history))]
    alphas = []
    for j in slots:
        a = rho[j] * (S[j] * q).sum(-1)
        q -= a[..., None] * Y[j]
        alphas.append(a)
    r = gamma[..., None] * q
    for j, a in zip(reversed(slots), reversed(alphas)):
        beta = rho[j] * (Y[j] * r).sum(-1)
        r += (a - beta)[..., None] * S[j]
    return r


def _block(mask):
    """Indices (groups, fits) of the smallest block of the (G, F) grid that holds every True cell."""
    import torch

    g_idx = torch.nonzero(mask.any(1))[:, 0]
    f_idx = torch.nonzero(mask[g_idx].any(0))[:, 0]
    return g_idx, f_idx
