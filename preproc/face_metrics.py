"""Face verification metrics on scored pairs: ROC, AUC, 10-fold accuracy, TAR at a FAR.

Scores are similarities (higher = more likely the same person), labels are booleans
(True = same person). A pair whose recognition failed (no face found in one of its
images) is *counted against* the variant: it gets the worst score for its label
(:data:`WORST_SAME` for a same pair, :data:`WORST_DIFF` for a different pair), so it
is misclassified at every threshold in [-1, 1] and lowers AUC, accuracy and TAR.

Accuracy follows the LFW protocol: the pairs are split into 10 folds; for each fold the
threshold that maximises accuracy on the other nine is applied to it; the reported
accuracy is the mean over folds (with its standard deviation).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import ConfigError

#: Scores given to failed pairs: outside the cosine range, on the wrong side of any threshold.
WORST_SAME = -2.0
WORST_DIFF = 2.0


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=bool).ravel()
    if s.shape != y.shape:
        raise ConfigError(f"got {s.size} scores but {y.size} labels")
    if not np.all(np.isfinite(s)):
        raise ConfigError("scores contain NaN or inf; mark failed pairs with `failed=` instead")
    return s, y


def apply_failures(scores: np.ndarray, labels: np.ndarray, failed: np.ndarray | None) -> np.ndarray:
    """``scores`` with failed pairs (``failed`` True; their score may be NaN) set to the worst score for their label."""
    s = np.array(scores, dtype=np.float64).ravel()
    if failed is None:
        return s
    f = np.asarray(failed, dtype=bool).ravel()
    y = np.asarray(labels, dtype=bool).ravel()
    if f.shape != s.shape:
        raise ConfigError(f"got {s.size} scores but {f.size} failure flags")
    s[f & y] = WORST_SAME
    s[f & ~y] = WORST_DIFF
    return s


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(far, tar, thresholds)``: for each distinct threshold t (descending), the fraction of
    different pairs (FAR) and of same pairs (TAR) with score >= t; starts at (0, 0)."""
    s, y = _check(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = np.cumsum(y)[distinct]
    fp = np.cumsum(~y)[distinct]
    npos, nneg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    tar = np.r_[0.0, tp / npos]
    far = np.r_[0.0, fp / nneg]
    thr = np.r_[np.inf, s[distinct]]
    return far, tar, thr


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve in [0, 1] (ties count half: the Mann-Whitney statistic)."""
    s, y = _check(scores, labels)
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        raise ConfigError(f"AUC needs both same and different pairs; got {pos.size} same, {neg.size} different")
    ranks = _average_ranks(np.r_[pos, neg])
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(x.size, dtype=np.float64)
    sx = x[order]
    i = 0
    while i < x.size:
        j = i
        while j + 1 < x.size and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def tar_at_far(scores: np.ndarray, labels: np.ndarray, far: float = 1e-2) -> float:
    """The largest TAR whose FAR is <= ``far`` (thresholds taken from the scores)."""
    if not 0.0 <= far <= 1.0:
        raise ConfigError(f"`far` has to be in [0, 1] but is {far}")
    fars, tars, _ = roc_curve(scores, labels)
    return float(tars[fars <= far + 1e-12].max())


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """``(threshold, accuracy)``: the threshold (``same`` if score >= t) maximising accuracy
    on these pairs; candidate thresholds are midpoints between sorted scores (on ties, the
    middle one of the best)."""
    s, y = _check(scores, labels)
    u = np.unique(s)
    cands = np.r_[u[0] - 1e-6, (u[:-1] + u[1:]) / 2.0, u[-1] + 1e-6]
    acc = ((s[None, :] >= cands[:, None]) == y[None, :]).mean(axis=1)
    # Ties: the middle one of the best thresholds (the widest margin), not the lowest.
    best = np.nonzero(acc == acc.max())[0]
    i = int(best[len(best) // 2])
    return float(cands[i]), float(acc[i])


def fold_ids(labels: np.ndarray, folds: int = 10) -> np.ndarray:
    """Fold index per pair: same and different pairs are each dealt round-robin in order,
    so every fold holds the same mix (LFW's folds hold 300 same + 300 different)."""
    y = np.asarray(labels, dtype=bool).ravel()
    ids = np.empty(y.size, dtype=np.int64)
    for cls in (True, False):
        idx = np.nonzero(y == cls)[0]
        ids[idx] = np.arange(idx.size) % folds
    return ids


def kfold_accuracy(scores: np.ndarray, labels: np.ndarray, folds: int = 10) -> tuple[float, float, float]:
    """``(mean accuracy, std over folds, mean threshold)`` with thresholds chosen on the other folds."""
    s, y = _check(scores, labels)
    if folds < 2:
        raise ConfigError(f"`folds` has to be >= 2 but is {folds}")
    if s.size < folds:
        raise ConfigError(f"{folds}-fold accuracy needs at least {folds} pairs; got {s.size}")
    ids = fold_ids(y, folds)
    accs, thrs = [], []
    for k in range(folds):
        test = ids == k
        if not test.any():
            continue
        t, _ = best_threshold(s[~test], y[~test])
        accs.append(float(((s[test] >= t) == y[test]).mean()))
        thrs.append(t)
    return float(np.mean(accs)), float(np.std(accs)), float(np.mean(thrs))


@dataclass(frozen=True)
class VerificationMetrics:
    """Metrics of one variant at one size on one pair set."""

    n: int
    auc: float
    accuracy: float
    accuracy_std: float
    threshold: float
    tar_at_far_1e_2: float
    failures: int

    def as_row(self) -> dict:
        """A report row (``tar_at_far_1e-2`` spelled as in the report)."""
        d = asdict(self)
        d["tar_at_far_1e-2"] = d.pop("tar_at_far_1e_2")
        return d


def verification_metrics(
    scores: np.ndarray, labels: np.ndarray, failed: np.ndarray | None = None, folds: int = 10
) -> VerificationMetrics:
    """All metrics of scored pairs; ``failed`` pairs are counted against (see module docstring)."""
    s = apply_failures(scores, labels, failed)
    y = np.asarray(labels, dtype=bool).ravel()
    acc, std, thr = kfold_accuracy(s, y, folds=min(folds, s.size))
    return VerificationMetrics(
        n=int(s.size),
        auc=roc_auc(s, y),
        accuracy=acc,
        accuracy_std=std,
        threshold=thr,
        tar_at_far_1e_2=tar_at_far(s, y, 1e-2),
        failures=int(np.asarray(failed, dtype=bool).sum()) if failed is not None else 0,
    )
