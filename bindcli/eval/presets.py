"""Named datasets for `bind eval`, read in their official release layouts, with the ImageBind
paper's protocol (arXiv 2305.05665, appendix): CLIP's 80 ImageNet templates for every
modality, and the paper's imagebind_huge top-1 beside what is measured. NYU-D's and Ego4D's
release files are converted once into bind's cache (`bindcli.eval._convert`).
"""

from __future__ import annotations

import array
import contextlib
import csv
import dataclasses
import json
import math
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np

from bindcli._util import extras
from bindcli.errors import DatasetError, InputError, UsageError
from bindcli.eval._convert import Progress, converted, quiet
from bindcli.eval.accuracy import Dataset, Item, label_of, read_folder, visible
from bindcli.media.imu import MODEL_RATE_HZ, WINDOW
from bindcli.modality import Kind
from bindcli.zeroshot import read_lines

DATA = Path(__file__).parent / "data"

#: imagebind_huge's zero-shot top-1 (%), the paper's Table 2
PAPER_TOP1 = {
    "esc50": 66.9, "imagenet-val": 77.7, "kinetics400": 50.0, "llvip": 63.4, "nyu-d": 54.0, "ego4d": 25.0,
    "vggsound": 27.8, "sun-d": 35.1,
}

#: the phrase that marks a measured figure as not the paper's protocol
NOT_COMPARABLE = "not comparable with the paper's figure"

#: 5 s windows taken from each Ego4D video, spread evenly over its IMU recording
EGO4D_WINDOWS = 4
#: an Ego4D IMU table's columns, in the order the IMU tower takes them: accelerometer, gyroscope
EGO4D_CHANNELS = ("accl_x", "accl_y", "accl_z", "gyro_x", "gyro_y", "gyro_z")
EGO4D_TIME = "canonical_timestamp_ms"

#: the paper's names for LLVIP's two classes; a class scores its best name
LLVIP_NAMES = {"person": ("person", "man", "woman", "people"), "background": ("street", "road", "car", "light", "tree")}


#: the columns of ESC-50's meta/esc50.csv that the preset reads
ESC50_COLUMNS = ("filename", "fold", "target", "category")


def paper_templates() -> tuple[str, ...]:
    return read_lines(DATA / "clip_imagenet_templates.txt")


def esc50(root: Path) -> Dataset:
    """ESC-50 as released (`meta/esc50.csv`, `audio/*.wav`): 2000 clips, 50 classes, 5 folds
    reported apart and averaged, as the paper does."""
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        raise UsageError(f"{root}: no meta/esc50.csv (expected the ESC-50 release: meta/, audio/)")
    try:
        with open(meta, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{meta}: cannot read it as a UTF-8 CSV table ({exc})") from None
    missing = [c for c in ESC50_COLUMNS if c not in (rows[0] if rows else {})]
    if not rows or missing:
        what = f"no column {', '.join(missing)}" if rows else "no clips listed"
        raise DatasetError(f"{meta}: {what} (expected the ESC-50 release's {', '.join(ESC50_COLUMNS)} columns)")
    names, items = {}, []
    for line, r in enumerate(rows, start=2):
        try:
            target, fold = int(r["target"]), int(r["fold"])
        except (TypeError, ValueError):
            raise DatasetError(f"{meta}:{line}: target and fold must be whole numbers, not "
                             f"{r['target']!r} and {r['fold']!r}") from None
        names[target] = label_of(r["category"])
        items.append(Item(str(root / "audio" / r["filename"]), names[target], fold))
    items = tuple(sorted(items, key=lambda i: (i.fold, i.path)))
    classes = {names[t]: (names[t],) for t in sorted(names)}
    return Dataset("esc50", items, classes, paper_templates(), PAPER_TOP1["esc50"])


def imagenet_val(root: Path) -> Dataset:
    """ILSVRC2012 val in one folder per WordNet id (`n01440764/*.JPEG`), scored against all
    1000 classes by their readable names."""
    wnids = [line.split("\t") for line in read_lines(DATA / "imagenet_classes.tsv")]
    counts = Counter(name for _, name in wnids)
    # a few synsets share a readable name ("missile", "sunglasses"): their labels add the id
    label = {w: name if counts[name] == 1 else f"{name} ({w})" for w, name in wnids}
    folders = sorted(p for p in root.iterdir() if p.is_dir() and visible(p.name)) if root.is_dir() else []
    unknown = [p.name for p in folders if p.name not in label]
    if not folders or unknown:
        what = f"unknown class folder {unknown[0]!r}" if unknown else "no class folders"
        raise UsageError(f"{root}: {what} (expected ILSVRC2012 val in WordNet-id folders: n01440764/...)")
    items = tuple(
        Item(str(f), label[p.name]) for p in folders for f in sorted(p.iterdir()) if f.is_file() and visible(f.name)
    )
    classes = {label[w]: (name,) for w, name in wnids}
    return Dataset("imagenet-val", items, classes, paper_templates(), PAPER_TOP1["imagenet-val"])


def kinetics400(root: Path) -> Dataset:
    """Kinetics-400 val clips sorted into one folder per class (`abseiling/*.mp4`); fewer
    class folders (a partial download) are scored among themselves, said to be so."""
    data = read_folder(root)
    if len(data.classes) > 400:
        raise UsageError(f"{root}: {len(data.classes)} class folders, Kinetics-400 has 400")
    partial = None
    if len(data.classes) < 400:
        partial = f"{len(data.classes)} of Kinetics-400's 400 classes, scored among themselves: {NOT_COMPARABLE}"
    return dataclasses.replace(
        data, name="kinetics400", templates=paper_templates(), paper=PAPER_TOP1["kinetics400"], protocol=partial,
    )


def llvip(root: Path) -> Dataset:
    """LLVIP infrared crops in `person/` and `background/`, read as thermal, each class
    scored by the best of the paper's names for it."""
    folders = {p.name for p in root.iterdir() if p.is_dir() and visible(p.name)} if root.is_dir() else set()
    if folders != set(LLVIP_NAMES):
        raise UsageError(f"{root}: expected exactly the folders person/ and background/ of infrared crops")
    data = read_folder(root)
    return dataclasses.replace(
        data, name="llvip", classes=LLVIP_NAMES, templates=paper_templates(), paper=PAPER_TOP1["llvip"],
        kind=Kind.THERMAL,
    )


@contextlib.contextmanager
def release_file(path: Path, what: str, *also: type[Exception]) -> Iterator[None]:
    """A release file that does not hold what it should is one clear DatasetError."""
    try:
        yield
    except (OSError, ValueError, KeyError, IndexError, TypeError, NotImplementedError, *also) as exc:
        raise DatasetError(f"{path}: cannot read it as {what} ({type(exc).__name__}: {exc})") from None


def _matlab() -> tuple[ModuleType, ModuleType]:
    """h5py and scipy.io, which read NYU-D's MATLAB files: the `eval` extra, imported only here."""
    try:
        import h5py
        import scipy.io
    except ImportError:
        raise UsageError(extras.EVAL.hint()) from None
    return h5py, scipy.io


def nyu_d(root: Path, progress: Progress = quiet) -> Dataset:
    """NYU Depth v2's labelled set as released (`nyu_depth_v2_labeled.mat`, `splits.mat`): the
    654 official test depth maps in 10 scene classes, "other" scored by the best of its 18
    scene types. The maps are converted once to `.npz` files of float32 metres (exact; the
    depth loader's Kinect v1 defaults are NYU's camera)."""
    labelled, splits = root / "nyu_depth_v2_labeled.mat", root / "splits.mat"
    missing = [p.name for p in (labelled, splits) if not p.is_file()]
    if missing:
        raise UsageError(
            f"{root}: no {' or '.join(missing)} (expected NYU Depth v2's nyu_depth_v2_labeled.mat and splits.mat)"
        )
    h5py, matlab = _matlab()
    table = [line.split("\t") for line in read_lines(DATA / "nyud_scene_classes.tsv")]
    scene_class = {scene: label for scene, label, _ in table}
    classes = {label: (name,) for _, label, name in table if label != "other"}
    classes["other"] = tuple(name for _, label, name in table if label == "other")
    with release_file(splits, "NYU Depth v2's splits.mat", matlab.matlab.MatReadError):
        test = [int(i) for i in matlab.loadmat(splits)["testNdxs"].ravel()]  # 1-based

    what = "NYU Depth v2's labelled set (MATLAB v7.3)"

    def write(folder: Path) -> None:
        with release_file(labelled, what):
            mat = h5py.File(labelled, "r")
        with mat, progress(len(test), "Converting NYU-D") as advance:
            for index in test:
                with release_file(labelled, what):  # depths (N, W, H) metres; sceneTypes (1, N) references
                    scene = "".join(map(chr, mat[mat["sceneTypes"][0][index - 1]][()].ravel()))  # uint16 chars
                    depth = np.asarray(mat["depths"][index - 1], np.float32).T  # (H, W)
                if scene not in scene_class:
                    raise DatasetError(f"{labelled}: image {index} has the scene type {scene!r}, not one of the 27")
                np.savez_compressed(folder / f"{index:04d}_{scene}.npz", depth=depth)
                advance(1)

    folder = converted("nyu-d", (labelled, splits), write)
    items = tuple(
        Item(str(f), scene_class[f.stem.split("_", 1)[1]]) for f in sorted(folder.glob("*.npz"))
    )
    return Dataset(
        "nyu-d", items, classes, paper_templates(), PAPER_TOP1["nyu-d"], Kind.DEPTH,
        protocol="NYU Depth v2 official test split; 10 classes, 'other' scored by the best of the 18 scene "
        "types the 10-class protocol folds into it (derived from the count; the paper does not list them)",
    )


def _number(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:  # empty, NULL
        return math.nan


def ego4d_windows(table: Path, duration_s: float | None) -> np.ndarray:
    """(EGO4D_WINDOWS, 6, 2000) float32 from one Ego4D IMU table: rows sorted by canonical
    timestamp (those without one, or outside the video, dropped; see Ego4D's "Known Issues"),
    missing values as 0 (as IMU2CLIP reads them), each window sampled at 400 Hz by linear
    interpolation between timestamps. Ego4D's units are kept: no normalisation is known."""
    try:
        with open(table, newline="", encoding="utf-8") as f:
            rows = csv.reader(f)
            header = next(rows)
            at = [header.index(c) for c in (EGO4D_TIME, *EGO4D_CHANNELS)]
            flat = array.array("d")  # 8 bytes a value: an hour at 200 Hz is 40 MB, not a list's 300
            for r in rows:
                if r:
                    flat.extend(_number(r[i]) for i in at)
    except (OSError, UnicodeDecodeError, csv.Error, StopIteration, ValueError, IndexError) as exc:
        raise InputError(str(table), f"cannot read it as an Ego4D IMU table ({exc})") from None
    values = np.frombuffer(flat, np.float64).reshape(-1, len(at))
    stamps = values[:, 0]
    inside = np.isfinite(stamps) & (stamps >= 0) & (stamps <= (duration_s or math.inf) * 1000)
    stamps, first = np.unique(stamps[inside], return_index=True)
    samples = np.nan_to_num(values[inside][first, 1:], nan=0.0)
    window_ms = 1000 * WINDOW / MODEL_RATE_HZ
    span = float(stamps[-1] - stamps[0]) if stamps.size else 0.0
    if span < window_ms:
        raise InputError(str(table), f"{span / 1000:.1f} s of IMU, under one {window_ms / 1000:g} s window")
    starts = stamps[0] + (span - window_ms) * (np.arange(EGO4D_WINDOWS) + 0.5) / EGO4D_WINDOWS
    times = starts[:, None] + np.arange(WINDOW) * (1000 / MODEL_RATE_HZ)
    return np.stack([
        np.stack([np.interp(t, stamps, samples[:, c]) for c in range(len(EGO4D_CHANNELS))]) for t in times
    ]).astype(np.float32)


def ego4d(root: Path, progress: Progress = quiet) -> Dataset:
    """Ego4D's IMU as its CLI downloads it (`ego4d.json`, `imu/<video_uid>.csv`), under bind's
    own protocol (the paper's clip list is unpublished): each video with one scenario gives
    EGO4D_WINDOWS 5 s windows labelled with it, converted once to `.npy`; the classes are every
    scenario of the videos with IMU. A video of several scenarios is left out: scoring it
    right for any of them would favour such videos, and its windows have no one truth."""
    meta, tables = root / "ego4d.json", root / "imu"
    if not meta.is_file() or not tables.is_dir():
        raise UsageError(f"{root}: expected Ego4D's download folder with ego4d.json and imu/<video_uid>.csv")
    with release_file(meta, "Ego4D's metadata (ego4d.json)"):
        videos = {v["video_uid"]: v for v in json.loads(meta.read_text(encoding="utf-8"))["videos"]}
    found = {p.stem: p for p in sorted(tables.glob("*.csv")) if videos.get(p.stem, {}).get("scenarios")}
    if not found:
        raise UsageError(f"{tables}: no IMU table of a video that {meta.name} gives a scenario")
    single = {uid: videos[uid]["scenarios"][0] for uid in found if len(set(videos[uid]["scenarios"])) == 1}

    def write(folder: Path) -> None:
        skipped = []
        with progress(len(single), "Converting Ego4D IMU") as advance:
            for uid in single:
                try:
                    clips = ego4d_windows(found[uid], videos[uid].get("duration_sec"))
                except InputError as exc:
                    skipped.append(f"{uid}\t{exc.reason}\n")
                    clips = np.empty((0, len(EGO4D_CHANNELS), WINDOW), np.float32)
                for k, clip in enumerate(clips):
                    np.save(folder / f"{uid}_{k}.npy", clip)
                advance(1)
        (folder / "skipped.tsv").write_text("".join(skipped), encoding="utf-8")

    folder = converted("ego4d", (meta, *(found[uid] for uid in single)), write)
    items = tuple(
        Item(str(f), single[f.stem.rsplit("_", 1)[0]]) for f in sorted(folder.glob("*.npy"))
    )
    skipped = len((folder / "skipped.tsv").read_text(encoding="utf-8").splitlines())
    scenarios = sorted({s for uid in found for s in videos[uid]["scenarios"]})
    return Dataset(
        "ego4d", items, {s: (s,) for s in scenarios}, paper_templates(), PAPER_TOP1["ego4d"], Kind.IMU,
        protocol=f"bind's own, not the paper's (its clips are unpublished): {EGO4D_WINDOWS} evenly spread 5 s "
        f"windows of each video with IMU and one scenario, at 400 Hz by timestamp, accelerometer then "
        f"gyroscope; left out: {len(found) - len(single)} videos of several scenarios, {skipped} without "
        f"5 s of readable IMU ({folder / 'skipped.tsv'})",
    )


def files_by_stem(root: Path) -> dict[str, Path]:
    """Every visible file below `root` by its name without the extension (the first in name
    order where two share one): where a release's table names clips without saying where the
    download tool put them."""
    found: dict[str, Path] = {}
    for f in sorted(root.rglob("*")):
        if f.is_file() and all(visible(p) for p in f.relative_to(root).parts):
            found.setdefault(f.stem, f)
    return found


def youtube_clip(files: dict[str, Path], ytid: str, start: str) -> Path | None:
    """The downloaded clip of a YouTube segment, under the names download tools give it:
    `<id>`, `Y<id>` (AudioSet's tagging tools), `<id>_<start>` with the start as the table
    lists it, in whole seconds, or in 6 digits (VGGSound's)."""
    seconds = int(float(start)) if start.replace(".", "", 1).isdigit() else None
    names = [ytid, f"Y{ytid}", f"{ytid}_{start}"]
    if seconds is not None:
        names += [f"{ytid}_{seconds}", f"{ytid}_{seconds:06d}", f"Y{ytid}_{start}"]
    return next((files[n] for n in names if n in files), None)


def found_of(found: int, listed: int, what: str) -> str:
    """`found of listed what`, and when some are missing, that the figure is not the paper's."""
    return f"{found} of {listed} {what} found" + (f" (the rest missing): {NOT_COMPARABLE}" if found < listed else "")


def vggsound(root: Path) -> Dataset:
    """VGGSound's test split as its `vggsound.csv` lists it (YouTube id, start second, label,
    split; no header), the clips downloaded anywhere below `root` (`<id>_<start 6 digits>.mp4`
    as VGGSound names them); read for their sound (`--as audio`), 309 classes."""
    table = root / "vggsound.csv"
    if not table.is_file():
        raise UsageError(f"{root}: no vggsound.csv (expected VGGSound's vggsound.csv and the clips below it)")
    with release_file(table, "VGGSound's vggsound.csv (id, start, label, split)"), \
            open(table, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r]
        test = [(r[0], r[1], label_of(r[2])) for r in rows if r[3].strip() == "test"]
    if not test:
        raise UsageError(f"{table}: no rows of the test split")
    files = files_by_stem(root)
    items = tuple(
        Item(str(clip), label) for ytid, start, label in test if (clip := youtube_clip(files, ytid, start))
    )
    labels = sorted({label_of(r[2]) for r in rows})
    return Dataset(
        "vggsound", items, {label: (label,) for label in labels}, paper_templates(), PAPER_TOP1["vggsound"],
        Kind.AUDIO, protocol=f"VGGSound test split, each clip's sound track; {found_of(len(items), len(test), 'clips')}",
    )


#: SUN RGB-D's 19 scene classes (those with enough images, as Omnivore and the paper take them)
SUN_D_CLASSES = (
    "bathroom", "bedroom", "classroom", "computer_room", "conference_room", "corridor", "dining_area",
    "dining_room", "discussion_area", "furniture_store", "home_office", "kitchen", "lab", "lecture_theatre",
    "library", "living_room", "office", "rest_space", "study_space",
)
#: the SUN RGB-D toolbox's depth reading: metres, clipped here (`read3dPoints.m`)
SUN_D_MAX_M = 8.0


def sun_depth(png: Path) -> np.ndarray:
    """A SUN RGB-D depth PNG as float32 metres: the toolbox's bit rotation (the file's 16
    bits turned right by 3: `bitor(bitshift(d, -3), bitshift(d, 13))`) of millimetres,
    clipped at 8 m. Read as plain millimetres, the maps would be nonsense."""
    from PIL import Image

    with Image.open(png) as image:
        raw = np.asarray(image, dtype=np.uint16)
    rotated = (raw >> 3) | (raw << 13)
    return np.minimum(rotated.astype(np.float32) / 1000, SUN_D_MAX_M)


def _sun_folders(split: Path, sun: Path, matlab: ModuleType) -> list[Path]:
    """The test image folders `allsplit.mat` lists (`/n/fs/sun3d/data/SUNRGBD/kv1/...`),
    found under the release's `SUNRGBD/`."""
    with release_file(split, "the SUN RGB-D toolbox's allsplit.mat", matlab.matlab.MatReadError):
        listed = [str(np.asarray(p).ravel()[0]) for p in matlab.loadmat(split)["alltest"].ravel()]
    folders = []
    for path in listed:
        if "SUNRGBD/" not in path:
            raise UsageError(f"{split}: the test path {path!r} has no SUNRGBD/ in it")
        folders.append(sun / path.split("SUNRGBD/", 1)[1].strip("/"))
    return folders


def sun_d(root: Path, progress: Progress = quiet) -> Dataset:
    """SUN RGB-D's test split as released: `root` holds `SUNRGBD/` (the data) and
    `SUNRGBDtoolbox/` (whose `traintestSUNRGBD/allsplit.mat` lists the test folders); each
    test image of the 19 classes (its `scene.txt`) gives its `depth_bfx/` map, else its
    `depth/` one, converted once to `.npz` metres by the toolbox's bit rotation."""
    sun, split = root / "SUNRGBD", root / "SUNRGBDtoolbox" / "traintestSUNRGBD" / "allsplit.mat"
    if not sun.is_dir() or not split.is_file():
        raise UsageError(f"{root}: expected SUN RGB-D's SUNRGBD/ and SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat")
    _, matlab = _matlab()
    folders = _sun_folders(split, sun, matlab)

    def depth_map(folder: Path) -> tuple[str, Path] | None:
        """(scene, depth PNG) of a test folder of the 19 classes, else None."""
        scene_file = folder / "scene.txt"
        scene = scene_file.read_text(encoding="utf-8").strip() if scene_file.is_file() else ""
        if scene not in SUN_D_CLASSES:
            return None
        for sub in ("depth_bfx", "depth"):
            maps = sorted((folder / sub).glob("*.png")) if (folder / sub).is_dir() else []
            if maps:
                return scene, maps[0]
        raise UsageError(f"{folder}: no depth_bfx/ or depth/ PNG")

    def write(into: Path) -> None:
        with progress(len(folders), "Converting SUN-D") as advance:
            for n, folder in enumerate(folders):
                found = depth_map(folder) if folder.is_dir() else None
                if found is not None:
                    scene, png = found
                    with release_file(png, "a SUN RGB-D depth PNG", OSError):
                        depth = sun_depth(png)
                    np.savez_compressed(into / f"{n:05d}_{scene}.npz", depth=depth)
                advance(1)

    missing = sum(not f.is_dir() for f in folders)
    folder = converted("sun-d", (split, *(f / "scene.txt" for f in folders if (f / "scene.txt").is_file())), write)
    items = tuple(Item(str(f), label_of(f.stem.split("_", 1)[1])) for f in sorted(folder.glob("*.npz")))
    classes = {label_of(c): (label_of(c),) for c in SUN_D_CLASSES}
    protocol = (f"SUN RGB-D test split (allsplit.mat), the {len(items)} depth maps of its 19 classes, depth_bfx/ "
                "where there is one, by the toolbox's bit rotation")
    if missing:
        protocol += f"; {missing} of {len(folders)} test folders missing: {NOT_COMPARABLE}"
    return Dataset("sun-d", items, classes, paper_templates(), PAPER_TOP1["sun-d"], Kind.DEPTH, protocol=protocol)


def _plain(reader: Callable[[Path], Dataset]) -> Callable[[Path, Progress], Dataset]:
    """A preset that converts nothing, so shows no progress."""
    return lambda root, progress: reader(root)


PRESETS: dict[str, Callable[[Path, Progress], Dataset]] = {
    "esc50": _plain(esc50), "imagenet-val": _plain(imagenet_val), "kinetics400": _plain(kinetics400),
    "llvip": _plain(llvip), "nyu-d": nyu_d, "ego4d": ego4d, "vggsound": _plain(vggsound), "sun-d": sun_d,
}


def read_preset(name: str, root: str | Path, progress: Progress = quiet) -> Dataset:
    """The named preset's dataset at `root`; a conversion it needs first shows `progress`."""
    try:
        reader = PRESETS[name]
    except KeyError:
        raise UsageError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
    return reader(Path(root), progress)
