"""Face verification metrics: hand-checked values and properties."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preproc.errors import ConfigError
from preproc.face_metrics import (
    WORST_DIFF,
    WORST_SAME,
    apply_failures,
    best_threshold,
    fold_ids,
    kfold_accuracy,
    roc_auc,
    roc_curve,
    tar_at_far,
    verification_metrics,
)


def test_auc_by_hand():
    # same: 0.9, 0.4; different: 0.5, 0.1 -> pairs (same > diff): (0.9>0.5),(0.9>0.1),(0.4>0.1) = 3 of 4
    assert roc_auc([0.9, 0.4, 0.5, 0.1], [True, True, False, False]) == pytest.approx(0.75)


def test_auc_ties_count_half():
    assert roc_auc([0.5, 0.5], [True, False]) == pytest.approx(0.5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-1, 1), st.booleans()), min_size=2, max_size=40))
def test_auc_is_the_pairwise_probability(items):
    s = np.array([x for x, _ in items])
    y = np.array([b for _, b in items])
    if y.all() or not y.any():
        return
    pos, neg = s[y], s[~y]
    expected = np.mean([(p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg)])
    assert roc_auc(s, y) == pytest.approx(expected)


def test_roc_curve_ends_and_monotone():
    far, tar, thr = roc_curve([0.9, 0.8, 0.7, 0.3, 0.2], [True, False, True, False, False])
    assert (far[0], tar[0]) == (0.0, 0.0)
    assert (far[-1], tar[-1]) == (1.0, 1.0)
    assert np.all(np.diff(far) >= 0) and np.all(np.diff(tar) >= 0)
    assert np.all(np.diff(thr) < 0)


def test_tar_at_far():
    # 100 different pairs at 0..0.99, same pairs at 0.985 and 0.5.
    diff = np.linspace(0, 0.99, 100)
    s = np.r_[[0.985, 0.5], diff]
    y = np.r_[[True, True], np.zeros(100, bool)]
    # FAR 0: the threshold must exceed 0.99, no same pair passes.
    assert tar_at_far(s, y, 0.0) == 0.0
    # FAR 1e-2 admits the different pair at 0.99: threshold 0.985 accepts one same pair.
    assert tar_at_far(s, y, 1e-2) == pytest.approx(0.5)
    # FAR 0.5 reaches down to 0.5.
    assert tar_at_far(s, y, 0.5) == pytest.approx(1.0)


def test_best_threshold_separates():
    t, acc = best_threshold([0.9, 0.8, 0.2, 0.1], [True, True, False, False])
    assert acc == 1.0 and 0.2 < t < 0.8


def test_fold_ids_balanced():
    y = np.array([True] * 30 + [False] * 30)
    ids = fold_ids(y, 10)
    for k in range(10):
        assert (y[ids == k]).sum() == 3 and (~y[ids == k]).sum() == 3


def test_kfold_accuracy_perfect_and_chance():
    rng = np.random.default_rng(0)
    y = np.array([True] * 50 + [False] * 50)
    acc, std, _ = kfold_accuracy(np.where(y, 0.8, 0.2) + rng.normal(0, 0.01, 100), y)
    assert acc == 1.0 and std == 0.0
    acc, _, _ = kfold_accuracy(rng.normal(0, 1, 100), y)
    assert 0.3 < acc < 0.7


def test_kfold_threshold_is_chosen_on_other_folds():
    # One same pair far below all others: on its own fold the threshold comes from the rest,
    # so that pair is misclassified (a threshold fitted on all pairs could not fix it either).
    y = np.array([True] * 10 + [False] * 10)
    s = np.where(y, 0.9, 0.1).astype(float)
    s[0] = 0.0
    acc, _, _ = kfold_accuracy(s, y)
    assert acc == pytest.approx(19 / 20)


def test_failures_count_against():
    y = np.array([True, True, False, False])
    s = np.array([0.9, np.nan, 0.1, np.nan])
    f = np.isnan(s)
    out = apply_failures(s, y, f)
    assert list(out) == [0.9, WORST_SAME, 0.1, WORST_DIFF]
    rng = np.random.default_rng(1)
    y = np.array([True] * 50 + [False] * 50)
    s = np.where(y, 0.7, 0.2) + rng.normal(0, 0.05, 100)
    clean = verification_metrics(s, y)
    f = np.zeros(100, bool)
    f[::5] = True  # 20 failed pairs: always misclassified
    m = verification_metrics(np.where(f, np.nan, s), y, f)
    assert clean.failures == 0 and clean.accuracy == 1.0
    assert m.failures == 20 and m.n == 100
    assert m.accuracy <= 0.8 + 1e-9 and m.auc < clean.auc and m.tar_at_far_1e_2 <= 0.8 + 1e-9
    row = m.as_row()
    assert "tar_at_far_1e-2" in row and row["failures"] == 20


def test_nan_without_failure_flag_is_an_error():
    with pytest.raises(ConfigError, match="NaN"):
        roc_auc([np.nan, 0.1], [True, False])


def test_one_class_is_an_error():
    with pytest.raises(ConfigError, match="same and different"):
        roc_auc([0.1, 0.2], [True, True])
