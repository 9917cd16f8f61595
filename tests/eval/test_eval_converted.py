"""The presets that convert their release files once (`nyu-d`, `ego4d`), on miniature copies
of those files built here: layouts, labels, scoring computed independently from `bind embed`
vectors, the _convert reused, bad and missing files, the missing extra."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

from bindcli.eval import _convert
from bindcli.eval import presets
from bindcli.errors import InputError, UsageError
from cli_support import bind, jsonl

import h5py
import scipy.io as scipy_io

#: the miniature NYU-D: image i (1-based) has scene SCENES[i - 1]; image 3 is a training one
SCENES = ["bathroom", "kitchen", "study", "cafe", "excercise_room", "office"]
TEST = [1, 2, 4, 5, 6]
NYU_LABELS = ["bathroom", "bedroom", "bookstore", "classroom", "dining room", "home office", "kitchen",
              "living room", "office", "other"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("BIND_CACHE_DIR", str(folder))
    return folder


def nyu_copy(root, scenes: list[str] = SCENES):
    """`nyu_depth_v2_labeled.mat` as MATLAB v7.3 writes it (HDF5, arrays transposed: depths
    (N, W, H) float32 metres, sceneTypes a (1, N) array of references to uint16 char arrays)
    and `splits.mat` (MATLAB v5, 1-based column vectors). Returns the (N, H, W) depth maps."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    maps = rng.uniform(0.5, 9.0, (len(scenes), 24, 32)).astype(np.float32)
    with h5py.File(root / "nyu_depth_v2_labeled.mat", "w") as f:
        f["depths"] = maps.transpose(0, 2, 1)
        refs = f.create_group("#refs#")
        strings = []
        for i, scene in enumerate(scenes):
            refs[f"s{i}"] = np.array([[ord(c)] for c in scene], np.uint16)
            strings.append(refs[f"s{i}"].ref)
        f.create_dataset("sceneTypes", data=np.array([strings], dtype=h5py.ref_dtype))
    scipy_io.savemat(root / "splits.mat", {
        "trainNdxs": np.array([[3]], np.float64), "testNdxs": np.array([[i] for i in TEST], np.float64),
    })
    return maps


def test_nyu_d_reads_the_official_files_into_ten_classes(tmp_path, cache):
    maps = nyu_copy(tmp_path / "nyu")
    data = presets.read_preset("nyu-d", tmp_path / "nyu")
    assert list(data.classes) == NYU_LABELS and len(data.classes["other"]) == 18
    assert "exercise room" in data.classes["other"] and "excercise room" not in data.classes["other"]
    assert [i.label for i in data.items] == ["bathroom", "kitchen", "other", "other", "office"]
    assert data.kind.value == "depth" and len(data.templates) == 80
    for item, index in zip(data.items, TEST):
        assert np.array_equal(np.load(item.path)["depth"], maps[index - 1])  # exact metres, (H, W)
        assert os.path.basename(item.path) == f"{index:04d}_{SCENES[index - 1]}.npz"


def test_nyu_d_scores_other_by_its_best_scene_type(tmp_path, cache):
    """The confusion matrix from `bind embed` vectors: each class scores the best cosine of its
    names' prompts, "other" the best of its 18."""
    nyu_copy(tmp_path / "nyu")
    result = bind("eval", "--preset", "nyu-d", tmp_path / "nyu", "--template", "a photo of a {}.", "-f", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["labels"] == NYU_LABELS and report["n"] == 5 and report["paper_top1"] == pytest.approx(0.54)
    assert "18 scene types" in report["protocol"]
    data = presets.read_preset("nyu-d", tmp_path / "nyu")
    names = [n for ns in data.classes.values() for n in ns]
    prompts = jsonl(bind("embed", *sum((["-t", f"a photo of a {n}."] for n in names), []), "-f", "jsonl").stdout)
    units = np.array([p["embedding"] for p in prompts])
    units /= np.linalg.norm(units, axis=1, keepdims=True)
    owner = [c for c, ns in enumerate(data.classes.values()) for _ in ns]
    maps = jsonl(bind("embed", "--as", "depth", *(i.path for i in data.items), "-f", "jsonl").stdout)
    confusion = np.zeros((10, 10), int)
    for item, row in zip(data.items, maps):
        cosines = units @ (np.array(row["embedding"]) / np.linalg.norm(row["embedding"]))
        best = [max(c for c, o in zip(cosines, owner) if o == k) for k in range(10)]
        confusion[NYU_LABELS.index(item.label), int(np.argmax(best))] += 1
    assert report["confusion"] == confusion.tolist()


def test_nyu_d_converts_once_and_again_when_the_release_changes(tmp_path, cache, monkeypatch):
    nyu_copy(tmp_path / "nyu")
    first = presets.read_preset("nyu-d", tmp_path / "nyu")
    with monkeypatch.context() as patched:
        patched.setattr(h5py, "File", lambda *a, **k: pytest.fail("converted again"))
        again = presets.read_preset("nyu-d", tmp_path / "nyu")
    assert again.items == first.items
    assert len(list((cache / "converted").iterdir())) == 1
    labelled = tmp_path / "nyu" / "nyu_depth_v2_labeled.mat"
    os.utime(labelled, ns=(labelled.stat().st_atime_ns, labelled.stat().st_mtime_ns + 10**9))
    assert presets.read_preset("nyu-d", tmp_path / "nyu").items != first.items
    assert len(list((cache / "converted").iterdir())) == 2


def test_an_interrupted_conversion_leaves_nothing_to_reuse(tmp_path, cache):
    source = tmp_path / "release.bin"
    source.write_bytes(b"x")

    def half(folder):
        (folder / "one.npy").write_bytes(b"")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _convert.converted("demo", [source], half)
    assert list((cache / "converted").iterdir()) == []
    done = _convert.converted("demo", [source], lambda folder: (folder / "one.npy").write_bytes(b"1"))
    assert (done / "one.npy").read_bytes() == b"1" and done.name.startswith("demo-")


def one_line_error(result, code: int, *words: str) -> None:
    assert result.exit_code == code, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bind: "), result.stderr
    assert all(w in lines[0] for w in words), lines[0]


def test_nyu_d_missing_or_corrupt_files_are_one_clear_message(tmp_path, cache):
    root = tmp_path / "nyu"
    nyu_copy(root)
    (root / "splits.mat").unlink()
    one_line_error(bind("eval", "--preset", "nyu-d", root), 2, "no splits.mat", "nyu_depth_v2_labeled.mat")
    scipy_io.savemat(root / "splits.mat", {"testNdxs": np.array([[1]])})
    (root / "nyu_depth_v2_labeled.mat").write_bytes(b"not HDF5 at all")
    # a release file that is there but corrupt: the data is at fault, not the command line
    one_line_error(bind("eval", "--preset", "nyu-d", root), 1, "nyu_depth_v2_labeled.mat", "cannot read it as")
    (root / "splits.mat").write_bytes(b"garbage")
    one_line_error(bind("eval", "--preset", "nyu-d", root), 1, "splits.mat", "cannot read it as")
    other = tmp_path / "other"
    nyu_copy(other, ["bathroom", "patio"])
    scipy_io.savemat(other / "splits.mat", {"testNdxs": np.array([[1], [2]])})
    one_line_error(bind("eval", "--preset", "nyu-d", other), 1, "image 2", "'patio'", "not one of the 27")
    assert not (cache / "converted").exists() or list((cache / "converted").iterdir()) == []


def test_nyu_d_without_the_eval_extra_says_what_to_install(tmp_path, monkeypatch):
    nyu_copy(tmp_path / "nyu")
    monkeypatch.setitem(sys.modules, "h5py", None)  # `import h5py` raises ImportError
    with pytest.raises(UsageError, match=r"pip install 'bindcli\[eval\]'"):
        presets.read_preset("nyu-d", tmp_path / "nyu")


# --- Ego4D -----------------------------------------------------------------------------------

HEADER = "component_idx,component_timestamp_ms,canonical_timestamp_ms,gyro_x,gyro_y,gyro_z,accl_x,accl_y,accl_z"


def imu_table(path, seconds: float, rate_hz: float = 200.0, seed: int = 0) -> None:
    """An Ego4D IMU table (its documented columns, gyroscope first): rows out of order, one
    without a canonical timestamp, one with a missing accelerometer value."""
    rng = np.random.default_rng(seed)
    times = np.arange(0, seconds * 1000, 1000 / rate_hz)
    rows = [f"0,{t},{t},{t / 1000},{-t / 1000},1.5,{t},{2 * t},{rng.normal():.4f}" for t in times]
    rows[5], rows[6] = rows[6], rows[5]
    rows.append("0,12.0,,9,9,9,9,9,9")
    rows.append(f"0,{times[-1] + 1},{times[-1] + 1},0.1,0.2,0.3,,0.5,0.6")
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")


def ego4d_copy(root):
    """`ego4d.json` and `imu/` as Ego4D's CLI downloads them (`--datasets imu` with metadata)."""
    (root / "imu").mkdir(parents=True)
    videos = [
        ("aa-cook", ["Cooking"], 30.0, 30.0), ("bb-wood", ["Carpenter"], 30.0, 20.0),
        ("cc-both", ["Cooking", "Cleaning / laundry"], 30.0, 20.0), ("dd-none", ["Gardening"], 30.0, None),
        ("ee-short", ["Biking"], 30.0, 3.0), ("ff-noscene", [], 30.0, 20.0),
    ]
    meta = {"videos": [{"video_uid": uid, "scenarios": s, "duration_sec": d, "has_imu": imu is not None}
                       for uid, s, d, imu in videos]}
    (root / "ego4d.json").write_text(json.dumps(meta))
    for n, (uid, _, _, seconds) in enumerate(videos):
        if seconds is not None:
            imu_table(root / "imu" / f"{uid}.csv", seconds, seed=n)
    (root / "imu" / "manifest.csv").write_text("video_uid,s3_path\n")
    return root


def test_ego4d_windows_sample_400hz_by_timestamp_accelerometer_first(tmp_path):
    table = tmp_path / "v.csv"
    imu_table(table, 20.0)
    clips = presets.ego4d_windows(table, duration_s=30.0)
    assert clips.shape == (presets.EGO4D_WINDOWS, 6, 2000) and clips.dtype == np.float32
    accl_x, gyro_x = clips[:, 0], clips[:, 3]
    assert np.allclose(np.diff(accl_x, axis=1), 2.5, atol=1e-3)  # accl_x is t in ms: 2.5 ms a sample
    assert np.allclose(gyro_x * 1000, accl_x, rtol=1e-5)
    assert np.allclose(clips[:, 1], 2 * accl_x, rtol=1e-5)
    starts = accl_x[:, 0]
    assert starts[0] > 0 and starts[-1] + 5000 < 20000 and np.allclose(np.diff(starts), np.diff(starts)[0], atol=0.01)
    clipped = presets.ego4d_windows(table, duration_s=10.0)  # rows past the video's end are dropped
    assert clipped[:, 0].max() <= 10000
    table.write_text("canonical_timestamp_ms,gyro_x,gyro_y,gyro_z\n0,1,2,3\n")
    with pytest.raises(InputError, match="cannot read it as an Ego4D IMU table"):
        presets.ego4d_windows(table, duration_s=30.0)


def test_ego4d_preset_labels_windows_with_their_videos_scenario(tmp_path, cache):
    root = ego4d_copy(tmp_path / "v2")
    result = bind("eval", "--preset", "ego4d", root, "--template", "{}", "-f", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["labels"] == ["Biking", "Carpenter", "Cleaning / laundry", "Cooking"]
    assert {k: v["n"] for k, v in report["per_class"].items()} == {
        "Biking": 0, "Carpenter": 4, "Cleaning / laundry": 0, "Cooking": 4}
    assert report["n"] == 8 and report["paper_top1"] == pytest.approx(0.25)
    assert "not the paper's" in report["protocol"] and "left out: 1 videos of several scenarios, 1 without 5 s" in report["protocol"]
    data = presets.read_preset("ego4d", root)
    assert [os.path.basename(i.path) for i in data.items][:2] == ["aa-cook_0.npy", "aa-cook_1.npy"]
    assert data.kind.value == "imu"
    converted = os.path.dirname(data.items[0].path)
    assert open(os.path.join(converted, "skipped.tsv")).read().startswith("ee-short\t")
    limited = json.loads(bind("eval", "--preset", "ego4d", root, "--per-class", "1", "-f", "json").stdout)
    assert limited["n"] == 2
    assert json.loads(bind("eval", "--preset", "ego4d", root, "--limit", "3", "-f", "json").stdout)["n"] == 3
    table = bind("eval", "--preset", "ego4d", root, "-f", "table")
    assert "not the paper's" in " ".join(table.stdout.split())  # the protocol, under the table


def test_ego4d_missing_layout_is_one_clear_message(tmp_path, cache):
    one_line_error(bind("eval", "--preset", "ego4d", tmp_path), 2, "ego4d.json", "imu/")
    root = ego4d_copy(tmp_path / "v2")
    (root / "ego4d.json").write_text("{not json")
    one_line_error(bind("eval", "--preset", "ego4d", root), 1, "ego4d.json", "cannot read it as")


def sun_copy(root):
    """SUN RGB-D in miniature: `SUNRGBD/` folders (scene.txt, depth_bfx/ or depth/ PNGs stored
    with the toolbox's bit rotation) and the toolbox's allsplit.mat listing the test folders
    under the release's original paths. Returns each kept folder's depth in metres."""
    from PIL import Image

    rng = np.random.default_rng(1)
    folders = {  # folder -> (scene, depth subfolder)
        "kv1/NYUdata/NYU0001": ("bedroom", "depth_bfx"), "kv2/kinect2data/000002": ("office", "depth"),
        "realsense/lg/2014_10_24-1": ("garage", "depth_bfx"),  # not one of the 19: left out
    }
    expected = {}
    for folder, (scene, sub) in folders.items():
        (root / "SUNRGBD" / folder / sub).mkdir(parents=True)
        (root / "SUNRGBD" / folder / "scene.txt").write_text(scene)
        millimetres = rng.integers(400, 9500, (24, 32)).astype(np.uint32)  # past 8 m: clipped
        stored = ((millimetres << 3) | (millimetres >> 13)) & 0xFFFF
        Image.fromarray(stored.astype(np.uint16)).save(root / "SUNRGBD" / folder / sub / "0000001.png")
        expected[folder] = np.minimum(millimetres.astype(np.float32) / 1000, 8.0)
    listed = [f"/n/fs/sun3d/data/SUNRGBD/{f}/" for f in [*folders, "kv1/b3dodata/gone"]]  # the last one missing
    (root / "SUNRGBDtoolbox" / "traintestSUNRGBD").mkdir(parents=True)
    scipy_io.savemat(root / "SUNRGBDtoolbox" / "traintestSUNRGBD" / "allsplit.mat", {
        "alltest": np.array(listed, dtype=object)[None, :], "alltrain": np.array(["/x/SUNRGBD/kv1/a/"], dtype=object),
    })
    return expected


def test_sun_d_reads_the_test_split_through_the_toolboxs_bit_rotation(tmp_path, cache):
    expected = sun_copy(tmp_path / "sun")
    data = presets.read_preset("sun-d", tmp_path / "sun")
    assert [i.label for i in data.items] == ["bedroom", "office"] and len(data.classes) == 19
    assert "living room" in data.classes and data.kind.value == "depth" and len(data.templates) == 80
    for item, folder in zip(data.items, ["kv1/NYUdata/NYU0001", "kv2/kinect2data/000002"]):
        np.testing.assert_allclose(np.load(item.path)["depth"], expected[folder], rtol=1e-6)
    assert "1 of 4 test folders missing: not comparable" in data.protocol
    result = bind("eval", "--preset", "sun-d", tmp_path / "sun", "--template", "a photo of a {}.", "-f", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == 2 and report["paper_top1"] == pytest.approx(0.351)
    ranked = jsonl(bind("classify", "--as", "depth", *(i.path for i in data.items), "-l", ",".join(data.classes),
                        "--template", "a photo of a {}.", "-f", "jsonl").stdout)
    confusion = np.zeros((19, 19), int)
    for item, r in zip(data.items, ranked):  # each map's top-1 is bind classify's
        confusion[report["labels"].index(item.label), report["labels"].index(r["labels"][0]["label"])] += 1
    assert report["confusion"] == confusion.tolist()
    assert os.listdir(cache / "converted")  # converted once, into the cache
    (tmp_path / "sun" / "SUNRGBDtoolbox" / "traintestSUNRGBD" / "allsplit.mat").write_bytes(b"not MATLAB")
    broken = bind("eval", "--preset", "sun-d", tmp_path / "sun")
    assert broken.exit_code == 1 and "allsplit.mat" in broken.stderr and "Traceback" not in broken.stderr
