"""The modality registry: one complete record per kind, and what is derived from it."""

from __future__ import annotations

import pytest

from bindcli.errors import UnknownModalityError
from bindcli.modality import EXTENSIONS, MODALITIES, TOWERS, Kind, detect


def test_every_kind_has_one_complete_record():
    assert set(MODALITIES) == set(Kind)
    for kind, modality in MODALITIES.items():
        assert modality.kind is kind and modality.tower in TOWERS
        assert modality.templates and all("{}" in t for t in modality.templates)
        assert callable(modality._loader()), kind


def test_extensions_are_derived_and_unambiguous():
    claimed = [ext for m in MODALITIES.values() for ext in m.extensions]
    assert len(claimed) == len(set(claimed)) == len(EXTENSIONS)
    assert detect("x.JPG") is Kind.IMAGE and detect("x.npy") is Kind.IMU
    assert detect("x.png", "depth") is Kind.DEPTH
    with pytest.raises(UnknownModalityError, match="unknown extension '.xyz'"):
        detect("x.xyz")
