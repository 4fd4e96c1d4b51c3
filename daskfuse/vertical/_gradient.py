"""Global-gradient fusion over column blocks: L-BFGS on the whole model, blocks in parallel.

Every pass of :class:`~daskfuse.vertical.GlobalGradient` is one set of tasks:

* ``margin`` ``(p, b)``: block ``b`` multiplies its columns by its part of the search
  direction, ``X_b d_b`` (n x k); all blocks at once.
* ``sum`` ``(p, level, i)``: a tree of adds sums the blocks' margins (n x k each).
* ``line`` ``(p,)``: where the targets and the model's linear predictor are, an exact
  line search along the summed direction (Newton's method in one dimension, on
  n-vectors), the new predictor and the residuals of the new point.
* ``grad`` ``(p, b)``: block ``b``'s gradient ``r^T X_b`` (k x p_b); all blocks at once.
* ``root`` ``(p,)``: the L-BFGS two-loop recursion over the concatenated coefficients
  (parameter-sized): the next direction, the history and the convergence test.

Only parameter-sized vectors and n-vectors travel; a block's raw columns are read
by its own ``margin`` and ``grad`` tasks only. After convergence the tasks pass
their inputs through, so ``fit_graph`` can unroll ``max_passes`` passes.
"""

from __future__ import annotations

import operator
import time
import warnings

import dask
import numpy as np
from dask import delayed
from sklearn.exceptions import ConvergenceWarning

from .._graph import _worker_name
from ._backfit import _logistic_terms, _problem, block_target, linear_model
from ._blocks import block_matrix, check_target

#: pairs kept by the L-BFGS memory
MEMORY = 10
#: the line search stops when Newton's step changes the step length by less than this
LINE_RTOL = 1e-10
#: the fan-in of the tree that sums the blocks' margins
FAN_IN = 4


def gradient_block(spec, index, y, *pieces):
    """Block ``index``'s columns as one array (a ``daskfuse-block`` task, persisted)."""
    return block_matrix(spec, index, pieces, len(check_target(y)))


def _terms(kind, z, target, weights):
    """Summed data loss at the predictor ``z``, the (weighted) residuals and ``p``."""
    if kind == "logistic":
        return _logistic_terms(z, target, weights)
    residual = z - target
    return 0.5 * float(np.sum(residual * residual)), residual, None


def _curvature(kind, u, prob, weights):
    """Second derivative of the summed data loss along the predictor direction ``u``."""
    if kind == "squares":
        return float(np.sum(u * u))
    pu = prob * u
    values = np.sum(pu * u, axis=1) - np.sum(pu, axis=1) ** 2
    if prob.shape[1] == 1:
        values = prob[:, 0] * (1 - prob[:, 0]) * u[:, 0] ** 2
    return float(values.sum() if weights is None else values @ weights)


def start_line(spec, y):
    """The targets and the linear predictor at zero (the ``line`` task of pass 0)."""
    kind, _, _ = _problem(spec.estimator)
    target, weights = block_target(spec, check_target(y))
    total = float(len(target) if weights is None else weights.sum())
    state = {"kind": kind, "target": target, "weights": weights, "total": total}
    state["z"] = np.zeros(target.shape)
    data, residual, _ = _terms(kind, state["z"], target, weights)
    info = {"t": 0.0, "data": data, "total": total, "intercept_grad": residual.sum(0) / total}
    return state, residual / total, info


def line_search(state, u, line):
    """Exact line search along the predictor direction ``u`` (a ``line`` task).

    ``line`` holds the penalty along the line, ``a + b t + c t^2``, and the
    intercepts' direction. Newton's method on the one-dimensional convex function,
    halving a step that does not lower it. Returns the new state, the residuals
    divided by the total weight and a small info dict.
    """
    if u is None:
        return state, None, None
    start = time.perf_counter()
    kind, target, weights, total = (state[k] for k in ("kind", "target", "weights", "total"))
    u = u + line["d_intercept"]
    a, b, c = line["penalty"]

    def at(t):
        data, residual, prob = _terms(kind, state["z"] + t * u, target, weights)
        slope = float(np.sum(residual * u)) / total + b + 2 * c * t
        return data / total + a + b * t + c * t * t, slope, data, residual, prob

    t, current = 0.0, at(0.0)
    first = abs(current[1])
    for _ in range(30):
        value, slope, _, _, prob = current
        if abs(slope) <= 1e-13 * first:
            break
        curvature = _curvature(kind, u, prob, weights) / total + 2 * c
        # (no curvature left, e.g. saturated probabilities: a unit step, then halving)
        step = -slope / curvature if curvature > 0 else -np.sign(slope)
        moved = False
        # a change of t below LINE_RTOL of it moves no coefficient by a relevant amount
        while not moved and abs(step) > LINE_RTOL * max(abs(t), 1.0):
            candidate = at(t + step)
            # a step is taken where it lowers the loss, or where the slope shrinks: on
            # a nearly flat line (the last passes' short directions) the summed loss
            # cannot tell a lower value from rounding, while the slope still can (and
            # equal values taken as lower kept such a search going for hundreds of
            # evaluations); the function is convex, so its slope shrinks toward the
            # minimum along the line
            moved = candidate[0] < value or abs(candidate[1]) < abs(slope)
            if moved:
                t, current = t + step, candidate
            step /= 2
        if not moved:
            break
    _, _, data, residual, _ = current
    new = {**state, "z": state["z"] + t * u}
    info = {
        "t": t,
        "data": data,
        "intercept_grad": residual.sum(0) / total,
        "seconds": time.perf_counter() - start,
    }
    return new, residual / total, info


def block_margin(X, root, index):
    """``X_b d_b``: block ``index``'s part of the search direction's margins."""
    if root["done"]:
        return None
    return X @ root["d_blocks"][index].T


def add(*parts):
    """Sum of the blocks' margins (None after convergence)."""
    parts = [p for p in parts if p is not None]
    return sum(parts[1:], parts[0]) if parts else None


def block_gradient(X, residual):
    """Block ``b``'s gradient ``r^T X_b`` (k x p_b), with its time and worker."""
    if residual is None:
        return None
    start = time.perf_counter()
    return residual.T @ X, time.perf_counter() - start, _worker_name(), len(X)


def _flat(blocks, intercept):
    return np.concatenate([*(b.ravel() for b in blocks), intercept])


def _split(flat, shapes):
    out, at = [], 0
    for shape in shapes:
        size = shape[0] * shape[1]
        out.append(flat[at : at + size].reshape(shape))
        at += size
    return out, flat[at:]


def _two_loop(g, pairs):
    """The L-BFGS direction ``-H g`` from the stored ``(s, y)`` pairs."""
    q, alphas = g.copy(), []
    for s, y in reversed(pairs):
        alpha = (s @ q) / (s @ y)
        alphas.append(alpha)
        q -= alpha * y
    if pairs:
        s, y = pairs[-1]
        q *= (s @ y) / (y @ y)
    for (s, y), alpha in zip(pairs, reversed(alphas)):
        q += s * (alpha - (y @ q) / (s @ y))
    return -q


def _gradient(prev, info, grads, fit_intercept):
    coefs, intercept = _split(prev["theta"], prev["shapes"])
    blocks = [g[0] + prev["l2"] * w for g, w in zip(grads, coefs)]
    icpt = info["intercept_grad"] if fit_intercept else np.zeros_like(intercept)
    return _flat(blocks, icpt), coefs


def root_step(spec, prev, info, *grads):
    """The root's L-BFGS step (a ``root`` task): the new point, direction and history."""
    if prev is not None and prev["done"]:
        return prev
    start = time.perf_counter()
    _, _, fit_intercept = _problem(spec.estimator)
    if prev is None:
        prev = _initial_root(spec, info, grads)
    t = info["t"]
    theta = prev["theta"] + t * prev["d"]
    g, coefs = _gradient({**prev, "theta": theta}, info, grads, fit_intercept)
    pairs = list(prev["pairs"])
    if prev["g"] is not None:
        s, y = t * prev["d"], g - prev["g"]
        if s @ y > 1e-12 * np.sqrt((s @ s) * (y @ y)):
            pairs = [*pairs, (s, y)][-MEMORY:]
    g0 = prev["g0"] if prev["g0"] is not None else max(float(np.max(np.abs(g))), 1e-300)
    gmax = float(np.max(np.abs(g)))
    penalty = 0.5 * prev["l2"] * sum(float(np.sum(w * w)) for w in coefs)
    loss = info["data"] / prev["total"] + penalty
    passes = len(prev["history"])
    entry = {"pass": passes, "loss": loss, "grad_norm": gmax, "step": t}
    entry["seconds"] = sum(gr[1] for gr in grads) + info.get("seconds", 0.0)
    entry["seconds"] += time.perf_counter() - start
    stalled = passes > 0 and t == 0.0
    done = gmax <= spec.fusion.tol * g0 or stalled or passes >= spec.fusion.max_passes
    d = _two_loop(g, pairs)
    d_blocks, _ = _split(d, prev["shapes"])
    return {
        **prev,
        "theta": theta,
        "g": g,
        "g0": g0,
        "pairs": pairs,
        "d": d,
        "blocks": _block_times(prev["blocks"], grads),
        "history": [*prev["history"], entry],
        "done": done,
        "converged": gmax <= spec.fusion.tol * g0,
        "d_blocks": d_blocks,
    }


def _initial_root(spec, info, grads):
    """The root's state at zero, before the first gradient."""
    shapes = [g[0].shape for g in grads]
    theta = np.zeros(sum(a * b for a, b in shapes) + shapes[0][0])
    return {
        "shapes": shapes,
        "theta": theta,
        "d": np.zeros_like(theta),
        "g": None,
        "g0": None,
        "pairs": [],
        "history": [],
        "blocks": [],
        "total": info["total"],
        "l2": _l2(spec.estimator, info["total"]),
    }


def _l2(estimator, total):
    kind, penalty, _ = _problem(estimator)
    if kind == "squares":
        return penalty / total
    return 0.0 if np.isinf(penalty) else 1.0 / (penalty * total)


def _line_args(root):
    """The penalty along the line and the intercepts' direction (small)."""
    if root["done"]:
        return None
    coefs, _ = _split(root["theta"], root["shapes"])
    dirs, d_intercept = root["d_blocks"], _split(root["d"], root["shapes"])[1]
    l2 = root["l2"]
    ww = sum(float(np.sum(w * w)) for w in coefs)
    wd = sum(float(np.sum(w * d)) for w, d in zip(coefs, dirs))
    dd = sum(float(np.sum(d * d)) for d in dirs)
    return {"penalty": (0.5 * l2 * ww, l2 * wd, 0.5 * l2 * dd), "d_intercept": d_intercept}


def _block_times(before, grads):
    """Each block's summed task seconds, its worker and its rows."""
    before = before or [(0.0, None, 0)] * len(grads)
    return [(s + g[1], g[2], g[3]) for (s, _, _), g in zip(before, grads)]


def _pass_tasks(spec, keys, p, blocks, line, root):
    """The tasks of pass ``p`` (>= 1) as a dict; ``blocks``, ``line``, ``root``: keys."""
    dsk = {}
    margins = []
    for b, block in enumerate(blocks):
        margins.append((keys["margin"], p, b))
        dsk[margins[-1]] = (block_margin, block, root, b)
    level = 0
    while len(margins) > 1:
        sums = []
        for j, i in enumerate(range(0, len(margins), FAN_IN)):
            sums.append((keys["sum"], p, level, j))
            dsk[sums[-1]] = (add, *margins[i : i + FAN_IN])
        margins, level = sums, level + 1
    args = (keys["line"], "args", p)
    dsk[args] = (_line_args, root)
    new_line = (keys["line"], p)
    dsk[new_line] = (line_search, (operator.getitem, line, 0), margins[0], args)
    _gradients(dsk, spec, keys, p, blocks, new_line, root)
    return dsk, new_line


def _gradients(dsk, spec, keys, p, blocks, line, root):
    """The gradient tasks of pass ``p`` and its root step, added to ``dsk``."""
    residual = (keys["line"], "residual", p)
    dsk[residual] = (operator.getitem, line, 1)
    info = (keys["line"], "info", p)
    dsk[info] = (operator.getitem, line, 2)
    grads = []
    for b, block in enumerate(blocks):
        grads.append((keys["grad"], p, b))
        dsk[grads[-1]] = (block_gradient, block, residual)
    dsk[(keys["root"], p)] = (root_step, spec, root, info, *grads)


def _first_pass(spec, plan, blocks):
    """The tasks of pass 0: the residuals at zero, the gradient, the first direction."""
    keys = plan.keys
    dsk = {(keys["line"], 0): (start_line, spec, plan.target.key)}
    _gradients(dsk, spec, keys, 0, blocks, (keys["line"], 0), None)
    return dsk


def _as_delayed(key, dsk, name, dependencies):
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    graph = HighLevelGraph.from_collections(name, dsk, dependencies=dependencies)
    return Delayed(key, graph, layer=name)


def _block_tasks(spec, plan):
    return [
        delayed(gradient_block, pure=True)(
            spec, b, plan.target, *pieces, dask_key_name=(plan.keys["block"], b)
        )
        for b, pieces in enumerate(plan.pieces)
    ]


def _passes(spec, plan, blocks, first, count, line, root):
    """Passes ``first`` .. ``first + count - 1``: the dict of tasks and the last keys."""
    dsk = _first_pass(spec, plan, [b.key for b in blocks]) if first == 0 else {}
    if first == 0:
        line, root, first, count = (plan.keys["line"], 0), (plan.keys["root"], 0), 1, count - 1
    for p in range(first, first + count):
        more, line = _pass_tasks(spec, plan.keys, p, [b.key for b in blocks], line, root)
        dsk.update(more)
        root = (plan.keys["root"], p)
    return dsk, line, root


def finalize_gradient(spec, meta, root):
    """The fused model, the block reports and the history from the last root state."""
    coefs, intercept = _split(root["theta"], root["shapes"])
    passes = len(root["history"]) - 1
    estimator = linear_model(spec, meta, coefs, intercept, passes)
    reports = [
        {
            "partition": b,
            "columns": cols.tolist(),
            "rows": rows,
            "train_score": None,
            "n_iter": passes,
            "fit_seconds": seconds,
            "task_seconds": seconds,
            "worker": worker,
            "rounds": passes,
            "converged": bool(root["converged"]),
        }
        for b, (cols, (seconds, worker, rows)) in enumerate(zip(spec.groups, root["blocks"]))
    ]
    return estimator, reports, root["history"]


def _finalize_lazy(spec, meta, root):
    estimator, reports, _ = finalize_gradient(spec, meta, root)
    return estimator, reports


def graph(spec, plan, meta):
    """The whole fit as one graph: ``max_passes`` unrolled passes (a ``Delayed``)."""
    blocks = _block_tasks(spec, plan)
    dsk, _, root = _passes(spec, plan, blocks, 0, spec.fusion.max_passes + 1, None, None)
    final = (plan.keys["finalize"], 0)
    dsk[final] = (_finalize_lazy, spec, meta, root)
    return _as_delayed(final, dsk, plan.keys["root"], [*blocks, plan.target])


def run(spec, plan, meta, verbose):
    """Passes until convergence; the blocks' columns are persisted once, where they are."""
    fusion, keys = spec.fusion, plan.keys
    blocks = list(dask.persist(*_block_tasks(spec, plan)))
    first, line, root, deps, state = 0, None, None, [*blocks, plan.target], None
    while state is None or not state["done"]:
        count = 2 if first == 0 else min(4, fusion.max_passes + 1 - first)
        dsk, line, root = _passes(spec, plan, blocks, first, count, line, root)
        name = f"{keys['root']}-pass-{first}"
        line_d, root_d = (_as_delayed(k, dsk, name, deps) for k in (line, root))
        line_d, root_d = dask.persist(line_d, root_d)
        (state,) = dask.compute(root_d)
        if verbose:
            for entry in state["history"][first:]:
                print(
                    f"[daskfuse] gradient pass {entry['pass']}: loss {entry['loss']:.12g}, "
                    f"gradient {entry['grad_norm']:.3e}, step {entry['step']:.3g}",
                    flush=True,
                )
        first += count
        line, root, deps = line_d.key, root_d.key, [*blocks, line_d, root_d]
    if not state["converged"]:
        warnings.warn(
            f"the global-gradient passes did not converge in {fusion.max_passes} passes: the "
            f"largest gradient is {state['history'][-1]['grad_norm']:.2e}, above "
            f"tol={fusion.tol} times the first; raise GlobalGradient(max_passes=...)",
            ConvergenceWarning,
            stacklevel=3,
        )
    return finalize_gradient(spec, meta, state)
