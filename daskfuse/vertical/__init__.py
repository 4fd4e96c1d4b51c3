"""Vertical (feature-partitioned) training: one model per column block, fused.

With ``partition=Columns(...)`` (:class:`daskfuse.partition.Columns`) the features are
split over *column blocks*; every block has all rows. Each block's raw columns are
their own dask pieces and only that block's tasks read them: what leaves a block is a
fitted model of its columns, coefficients, or n-vectors of predictions. Three fusions:

:class:`GlobalGradient` (``fusion="gradient"``)
    the same linear models as backfitting, by L-BFGS over all blocks' coefficients at
    once: each pass, every block computes its part ``X_b d_b`` of the search
    direction's margins (all blocks in parallel), a tree of adds sums them, an exact
    line search runs where the targets are, and every block computes its gradient
    block ``r^T X_b`` from the residuals ``r``. It reaches scikit-learn's optimum
    whatever the correlation between blocks (see :mod:`daskfuse.vertical._gradient`
    for its tasks: ``margin``, ``sum``, ``line``, ``grad``, ``root``).
:class:`Backfit` (``fusion="backfit"``)
    additive fusion of linear models (``LinearRegression``, ``Ridge``,
    ``LogisticRegression`` with an L2 penalty or none) by block coordinate descent,
    the backfitting of additive models. A round visits the blocks in turn
    (Gauss-Seidel); block ``b``'s task takes its columns, the targets and the
    running linear predictor of the whole model (an n-vector, n x k for k outputs
    or classes), solves the model's own objective over its coefficients and the
    intercept with every other block's contribution held fixed as an offset, and
    passes the updated predictor on. Least squares solve exactly (an
    eigendecomposition of the block's centred Gram matrix, computed once); the
    logistic block problem ``C * sum(w_i * logloss_i) + ||W||^2 / 2`` (intercept
    unpenalised, ``w_i`` from ``class_weight``: scikit-learn's objective) is solved
    by L-BFGS from the previous round's coefficients. Every step lowers that convex
    objective, so the rounds converge to the centralised model; they stop when the
    largest coefficient change of a round, relative to the largest coefficient, is
    below ``tol``. The fused model is a plain ``LinearRegression`` / ``Ridge`` /
    ``LogisticRegression`` with ``coef_`` in the original column order.
:class:`ColumnStack` (``fusion="stack"``)
    any classifier or regressor: each block fits the estimator on its columns and
    computes out-of-fold predictions with scikit-learn's ``cross_val_predict``; a
    meta-learner is fitted on the blocks' out-of-fold outputs side by side. The
    fused model is a :class:`~daskfuse.models.ColumnStackingClassifier` /
    :class:`~daskfuse.models.ColumnStackingRegressor`, which routes each block of a
    full ``X`` to its model. Stacking combines what each block can say on its own:
    an interaction between features of different blocks (``y`` depends on
    ``x_a * x_b``) is invisible to both blocks and lost.

``fusion="auto"`` picks the global-gradient passes where they apply (the linear
models above), else stacking; backfitting is chosen by name.

Why backfitting's blocks run one after another: the blocks of a Jacobi round (all at once,
from the same predictor) may diverge on correlated blocks unless each step is damped
by ``1/n_blocks``, which costs about ``n_blocks`` times more rounds. A Gauss-Seidel
round keeps one worker busy at a time but needs few rounds, and only one n-vector
travels per step. Putting correlated features in the same block
(``Columns(strategy="correlation")``) makes the rounds converge faster.

Task graph
----------
Keys are ``("daskfuse-<step>-<token>", ..., b)``: every per-block key ends with its
block index ``b``.

* ``data`` (in-memory inputs): block ``b``'s columns, one piece. For dask arrays
  whose column chunks are the blocks (``strategy="chunks"``) the pieces are the
  array's own chunks, one per row chunk (a rows x columns grid: the block task
  concatenates its row pieces). Otherwise ``columns`` tasks ``(i, b)`` cut block
  ``b``'s columns out of row chunk ``i`` on the worker that holds the chunk.
* ``target``: the targets, one n-vector, read by every block.
* ``fit`` (stacking): fits block ``b``'s model and its out-of-fold predictions;
  ``finalize`` fits the meta-learner on those predictions.
* ``block`` (backfitting): block ``b``'s columns and targets with what the rounds
  reuse (the eigendecomposition of least squares); :meth:`FusedClassifier.fit`
  persists it once, so that every round reuses it where it is. ``step`` ``(r, b)``
  is block ``b``'s update in round ``r``, the only task of a round: it reads its
  block, the step before it (the running predictor, the only n-sized thing that
  travels, with a small log of the steps) and its own previous step (its
  coefficients, on the same worker). The first step of a round tests the previous
  round's convergence; after convergence the steps pass their inputs through.
  ``coef`` and ``log`` take the results out, ``finalize`` assembles the model.
  ``fit`` runs a few rounds at a time (as many as the rate of convergence says are
  left) and stops at convergence; ``fit_graph`` unrolls ``max_rounds`` rounds.

Modules
-------
``_fusions`` (the strategies and their resolver), ``_planning`` (the blocks' columns
and their dask pieces), ``_blocks`` (the block tasks the fusions share and
stacking's), ``_backfit`` (backfitting's solves, steps and the fused linear model),
``_gradient`` (the global-gradient passes) and
``_driver`` (the column trainer: ``train`` and ``graph``, run by
:meth:`FusedClassifier.fit <daskfuse.FusedClassifier.fit>` through
:mod:`daskfuse._trainer`).
"""

from __future__ import annotations

from ._driver import fit, fit_graph, graph, train
from ._fusions import Backfit, ColumnStack, GlobalGradient, VerticalFusion, resolve_vertical_fusion
from ._planning import ColumnPlan, column_groups, plan_columns

__all__ = [
    "Backfit",
    "ColumnPlan",
    "ColumnStack",
    "GlobalGradient",
    "VerticalFusion",
    "column_groups",
    "fit",
    "fit_graph",
    "graph",
    "plan_columns",
    "resolve_vertical_fusion",
    "train",
]

# the strategies keep the names they are saved and pickled under
for _cls in (VerticalFusion, Backfit, ColumnStack, GlobalGradient):
    _cls.__module__ = __name__
del _cls
