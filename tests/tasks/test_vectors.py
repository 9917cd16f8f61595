"""The vector maths every command shares."""

from __future__ import annotations

import numpy as np
import pytest

from bindcli.errors import BindError
from bindcli.vectors import at_least, best_columns, combine, normalise, printed, similarity, top_k


def test_combine_normalises_weights_and_renormalises():
    a, b = np.array([3.0, 0.0]), np.array([0.0, 10.0])
    np.testing.assert_allclose(combine([a, b], [1.0, -1.0]), [2 ** -0.5, -(2 ** -0.5)])
    with pytest.raises(BindError, match="cancel out"):
        combine([a, a], [1.0, -1.0])


def test_normalise_keeps_zero_vectors_and_returns_float32():
    out = normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)


def test_a_printed_score_copied_into_min_score_keeps_its_item():
    scores = np.array([0.4431736, 0.4431734, 0.44317349, 0.5], dtype=np.float32)
    threshold = printed(scores[0])  # 0.443174, rounded up from the true score
    assert threshold > scores[0]
    assert at_least(scores, threshold).tolist() == [True, False, False, True]
    assert at_least(scores, 0.9).tolist() == [False] * 4


def test_softmax_similarity_leaves_the_diagonal_out():
    raw = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    probs = similarity(raw, raw, softmax=True, skip_diagonal=True)
    assert np.isnan(np.diag(probs)).all()
    np.testing.assert_allclose(np.nansum(probs, axis=1), 1.0)
    assert best_columns(probs, skip_diagonal=True) == [1, 0, 1]
    np.testing.assert_allclose(similarity(raw, raw), raw @ raw.T)


def test_top_k_is_stable_and_zero_means_all():
    assert top_k(np.array([0.1, 0.5, 0.5, 0.2]), 2).tolist() == [1, 2]
    assert top_k(np.array([0.1, 0.5]), 0).tolist() == [1, 0]
