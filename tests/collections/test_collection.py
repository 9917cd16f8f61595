"""`bindcli.Collection`, the library's collection object, with the small model: what `bind
index`, `bind search` and `bind collections` do, as calls."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import bindcli
from bindcli.collections.nearest import Filters
from bindcli.collections.store import Store
from bindcli.errors import StoreError, UsageError
from bindcli.query import Query
from cli_support import FIXTURES, MEDIA


@pytest.fixture(scope="module")
def embedder():
    with bindcli.open_embedder(FIXTURES / "public_config.json", FIXTURES / "public.pth",
                               device="cpu", precision="fp32", cache=False) as found:
        yield found


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("dog_image.jpg", "car_image.jpg", "dog_audio.wav"):
        shutil.copy(MEDIA / name, folder / name)
    return folder


def test_update_is_incremental_and_search_finds_across_modalities(tmp_path, photos, embedder):
    db = tmp_path / "c.sqlite3"
    heard, progress = [], []
    with bindcli.Collection.open(db, "photos", embedder) as coll:
        first = coll.update([photos], on_found=heard.append, on_progress=progress.append)
        assert heard == [3] and progress and first.embedded == {"image": 2, "audio": 1}
        (photos / "dog_image.jpg").rename(photos / "renamed.jpg")
        again = coll.update([photos])
        assert again.reused == {"image": 1} and again.unchanged == {"image": 1, "audio": 1}
        assert again.removed == 1 and coll.counts() == {"audio": 1, "image": 2}

        bark = photos / "dog_audio.wav"
        hits = coll.search(bark, k=0)  # the query's own file is never a result
        assert [h.path for h in hits] == [str(photos / "renamed.jpg"), str(photos / "car_image.jpg")]
        only = coll.search(Query.parse([str(bark)]), k=1, filters=Filters(kinds=("image",)))
        assert only == hits[:1]
        assert [h.kind for h in coll.search("a dog", k=3)] and coll.search("a dog", k=1)[0].path

        vector = embedder.embed([bark])[0].unit
        rows = coll.search_vector(np.stack([vector, vector]), k=2, mode="exact")
        assert len(rows) == 2 and rows[0] == rows[1] and rows[0][0].path == str(bark)
        assert coll.search_vector(vector, k=1)[0].path == str(bark)


def test_open_refuses_another_models_collection_and_a_missing_one(tmp_path, embedder):
    db = tmp_path / "c.sqlite3"
    bindcli.Collection.open(db, "c", embedder).close()
    with Store(db) as store:
        store.create_collection("other", "another-model", "another model")
        with pytest.raises(StoreError, match="collection 'other' was built with model another model"):
            bindcli.Collection.open(store, "other", embedder)
        with pytest.raises(StoreError, match="no collection 'gone'.*collections: c, other"):
            bindcli.Collection.open(store, "gone", create=False)
        assert [c.name for c in bindcli.Collection.all(store)] == ["c", "other"]
        with pytest.raises(UsageError, match="needs an embedder"):
            bindcli.Collection.open(store, "new")
        with pytest.raises(UsageError, match="opened without an embedder"):
            bindcli.Collection.open(store, "c", create=False).search("a dog")
    missing = tmp_path / "typo.sqlite3"
    with pytest.raises(StoreError, match="typo.sqlite3: no such collection file"):
        bindcli.Collection.open(missing, "c", create=False)
    assert not missing.exists()  # reading never makes the file


def test_export_import_info_and_remove(tmp_path, photos, embedder):
    db = tmp_path / "c.sqlite3"
    npy = tmp_path / "out.npy"
    with bindcli.Collection.open(db, "photos", embedder) as coll:
        coll.update([photos])
        assert coll.export(npy) == 3
        info = coll.info()
        assert (info["name"], info["files"], info["per_modality"]) == ("photos", 3, {"audio": 1, "image": 2})
        assert info["index"] == "fresh" and isinstance(info["created"], float)
        copy, count = bindcli.Collection.import_(coll.store, "copy", npy)
        assert count == 3 and copy.counts() == coll.counts()
        assert copy.record.model_id == coll.record.model_id
        np.testing.assert_allclose(copy.read_queries(npy), np.load(npy))
        done = copy.remove()
        assert done.after <= done.before
        assert [c.name for c in bindcli.Collection.all(coll.store)] == ["photos"]
