"""`bind eval` and `bindcli.eval.accuracy`: accuracy computed independently from `bind embed`
vectors, agreement with `bind classify`, tables, subsets, bad files, several names a class."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bindcli.eval import accuracy
from bindcli.modality import Kind
from cli_support import FIXTURES, bind, embedded, jsonl, media, write_av

FILES = {
    "dog": ["dog_image.jpg", "dog_audio.wav"],
    "car": ["car_image.jpg", "car_audio.wav"],
    "big_bird": ["bird_image.jpg", "bird_audio.wav"],
}


@pytest.fixture
def folder(tmp_path):
    """Class folders of images and sounds; `big_bird` is the class "big bird"."""
    root = tmp_path / "animals"
    for label, names in FILES.items():
        (root / label).mkdir(parents=True)
        for name in names:
            shutil.copy(media(name), root / label / name)
    return root


def expected_predictions(paths: list[str], labels: list[str], templates: dict[Kind, tuple[str, ...]]) -> list[str]:
    """Each file's best label from `bind embed` vectors: cosine to the normalised mean of its
    modality's unit prompt vectors."""
    predicted = []
    for path, vector in zip(paths, embedded(*paths)):
        ts = templates[Kind.AUDIO if path.endswith(".wav") else Kind.IMAGE]
        rows = []
        for label in labels:
            prompts = embedded(*sum((["-t", t.replace("{}", label)] for t in ts), []))
            mean = np.mean([p / np.linalg.norm(p) for p in prompts], axis=0)
            rows.append(mean / np.linalg.norm(mean))
        predicted.append(labels[int(np.argmax(np.stack(rows) @ (vector / np.linalg.norm(vector))))])
    return predicted


def test_folder_accuracy_matches_bind_embed_vectors(folder):
    result = bind("eval", folder, "-f", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    labels = ["big bird", "car", "dog"]
    assert report["labels"] == labels
    paths = [str(folder / label / n) for label, names in FILES.items() for n in names]
    truth = [label.replace("_", " ") for label, names in FILES.items() for _ in names]
    templates = {k: k.modality.templates for k in (Kind.IMAGE, Kind.AUDIO)}
    predicted = expected_predictions(paths, labels, templates)
    confusion = np.zeros((3, 3), int)
    for t, p in zip(truth, predicted):
        confusion[labels.index(t), labels.index(p)] += 1
    assert report["confusion"] == confusion.tolist()
    assert report["n"] == 6 and report["failed"] == 0
    assert report["top1"] == pytest.approx(np.trace(confusion) / 6)
    assert report["top5"] == 1.0  # three classes: always in the top 5
    recalls = np.diag(confusion) / confusion.sum(axis=1)
    assert report["mean_per_class_recall"] == pytest.approx(recalls.mean())
    assert report["per_class"] == {
        label: {"n": 2, "recall": pytest.approx(r)} for label, r in zip(labels, recalls)
    }


def test_top1_agrees_with_bind_classify(folder, tmp_path):
    errors = tmp_path / "errors.jsonl"
    report = json.loads(bind("eval", folder, "-f", "json", "--errors", errors).stdout)
    paths = sorted(str(p) for p in folder.rglob("*.*"))
    ranked = jsonl(bind("classify", *paths, "-l", ",".join(report["labels"]), "-k", "5", "-f", "jsonl").stdout)
    truth = {p: p.split("/")[-2].replace("_", " ") for p in paths}
    wrong = [r for r in ranked if r["labels"][0]["label"] != truth[r["input"]]]
    missed = jsonl(errors.read_text())
    assert [m["path"] for m in missed] == [r["input"] for r in wrong]
    for m, r in zip(missed, wrong):
        assert m["label"] == truth[m["path"]]
        assert [t["label"] for t in m["top"]] == [x["label"] for x in r["labels"]]
        assert [t["score"] for t in m["top"]] == pytest.approx([x["score"] for x in r["labels"]], abs=1e-4)
    assert np.trace(report["confusion"]) == len(paths) - len(wrong)


def test_csv_and_tsv_with_relative_paths_templates_and_subsets(folder):
    csv_file = folder / "labels.csv"
    csv_file.write_text("path,label\ndog/dog_image.jpg,dog\ncar/car_image.jpg,car\ndog/dog_audio.wav,dog\n")
    tsv_file = folder.parent / "labels.tsv"
    tsv_file.write_text("label\tpath\ndog\tanimals/dog/dog_image.jpg\ncar\tanimals/car/car_image.jpg\n"
                        "dog\tanimals/dog/dog_audio.wav\n")
    one = json.loads(bind("eval", csv_file, "--template", "{}", "-f", "json").stdout)
    two = json.loads(bind("eval", tsv_file, "--template", "{}", "-f", "json").stdout)
    assert one["labels"] == two["labels"] == ["car", "dog"]
    assert one["confusion"] == two["confusion"] and one["n"] == 3
    subset = json.loads(bind("eval", csv_file, "--per-class", "1", "-f", "json").stdout)
    assert {label: c["n"] for label, c in subset["per_class"].items()} == {"car": 1, "dog": 1}
    assert json.loads(bind("eval", csv_file, "--limit", "2", "-f", "json").stdout)["n"] == 2


def test_bad_files_are_counted_and_named_not_fatal(folder):
    (folder / "car" / "broken.wav").write_text("not audio")
    (folder / "dog" / "notes.xyz").write_text("?")
    (folder / "dog" / ".hidden.jpg").write_text("skipped")
    result = bind("eval", folder, "-f", "table")
    assert result.exit_code == 1
    assert "broken.wav" in result.stderr and "notes.xyz" in result.stderr
    assert ".hidden" not in result.stderr
    assert "top-1" in result.stdout and "│ all" in result.stdout
    report = json.loads(bind("eval", folder, "-f", "json").stdout)
    assert (report["n"], report["failed"]) == (6, 2)


@pytest.mark.parametrize("args, message", [
    (["--template", "a photo"], "has no {} for the label"),
])
def test_usage_errors(folder, args, message):
    result = bind("eval", folder, *args)
    assert result.exit_code == 2 and message in result.stderr


def test_table_without_its_columns_is_refused(tmp_path):
    table = tmp_path / "bad.csv"
    table.write_text("file,class\na.jpg,dog\n")
    result = bind("eval", table)
    assert result.exit_code == 2 and "no label or path column" in result.stderr


def test_a_class_scores_its_best_name():
    """Several names a class (the paper's LLVIP and NYU-D): the class takes the max cosine."""
    import bindcli
    from bindcli.embed.inputs import Input
    from bindcli.zeroshot import Classifier, prompts

    items = (accuracy.Item(media("dog_image.jpg"), "animal"), accuracy.Item(media("car_image.jpg"), "thing"))
    classes = {"animal": ("dog", "bird"), "thing": ("car", "road")}
    data = accuracy.Dataset("mini", items, classes, templates=("a photo of a {}.",))
    with bindcli.open_embedder(FIXTURES / "public_config.json", FIXTURES / "public.pth",
                               device="cpu", precision="fp32", cache=False) as embedder:
        report = accuracy.evaluate(embedder, data)
        names = ["dog", "bird", "car", "road"]
        templates = {Kind.IMAGE: data.templates}
        asked = prompts(names, templates)
        classifier = Classifier.from_prompts(names, templates, dict(zip(asked, embedder.embed([Input.text(p) for p in asked]))))
        images = embedder.embed([i.path for i in items])
    confusion = np.zeros((2, 2), int)
    for truth, image in enumerate(images):
        cosines = classifier.directions[Kind.IMAGE] @ image.unit
        confusion[truth, int(np.argmax([cosines[:2].max(), cosines[2:].max()]))] += 1
    assert report.total.confusion.tolist() == confusion.tolist()
    assert report.to_json()["labels"] == ["animal", "thing"]


def esc50_copy(root, folds: int = 5):
    """ESC-50's release layout in miniature: two classes, one clip of each per fold."""
    (root / "meta").mkdir(parents=True)
    (root / "audio").mkdir()
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    for fold in range(1, folds + 1):
        for target, (category, source) in enumerate([("dog", "dog_audio.wav"), ("crackling_fire", "car_audio.wav")]):
            name = f"{fold}-{100 + target}-A-{target}.wav"
            shutil.copy(media(source), root / "audio" / name)
            rows.append(f"{name},{fold},{target},{category},False,{100 + target},A")
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    return root


def test_esc50_preset_reports_each_fold_and_their_mean(tmp_path):
    root = esc50_copy(tmp_path / "ESC-50-master")
    result = bind("eval", "--preset", "esc50", root, "-f", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["labels"] == ["dog", "crackling fire"] and report["n"] == 10
    assert [f["fold"] for f in report["folds"]] == [1, 2, 3, 4, 5]
    assert all(f["n"] == 2 for f in report["folds"])
    assert report["top1"] == pytest.approx(np.mean([f["top1"] for f in report["folds"]]))
    assert report["paper_top1"] == pytest.approx(0.669)
    table = bind("eval", "--preset", "esc50", root, "-f", "table").stdout
    assert "fold 5" in table and "66.9" in table and "mean of folds" in table


def test_a_subset_keeps_every_folds_share(tmp_path):
    """ESC-50 lists its folds one after another: a subset spreads over them, not fold 1 alone."""
    from bindcli.eval import presets

    data = presets.read_preset("esc50", esc50_copy(tmp_path / "esc"))
    two_each = accuracy.subset(data, per_class=2)
    assert sorted((i.label, i.fold) for i in two_each.items) == [
        ("crackling fire", 1), ("crackling fire", 5), ("dog", 1), ("dog", 5)]
    assert [i.fold for i in accuracy.subset(data, limit=3).items] == [1, 3, 5]
    assert accuracy.subset(data, limit=50).items == data.items
    report = json.loads(bind("eval", "--preset", "esc50", tmp_path / "esc", "--per-class", "2", "-f", "json").stdout)
    assert [f["fold"] for f in report["folds"]] == [1, 5]
    assert report["protocol"] == "a subset, 4 of 10 items: not comparable with the paper's figure"


@pytest.mark.parametrize("table, says", [
    ("filename,fold,category\nx.wav,1,dog\n", "no column target (expected the ESC-50 release's"),
    ("filename,fold,target,category\nx.wav,1,dog,dog\n", "esc50.csv:2: target and fold must be whole numbers, not 'dog' and '1'"),
    ("filename,fold,target,category\nx.wav,one,0,dog\n", "esc50.csv:2: target and fold must be whole numbers"),
    ("filename,fold,target,category\n", "no clips listed"),
])
def test_a_broken_esc50_table_is_one_data_error_naming_what_is_wrong(tmp_path, table, says):
    root = esc50_copy(tmp_path / "esc", folds=1)
    (root / "meta" / "esc50.csv").write_text(table)
    done = bind("eval", "--preset", "esc50", root)
    assert done.exit_code == 1 and says in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_preset_uses_the_papers_templates_unless_told(tmp_path):
    """A preset scores as the same clips in class folders do under `--templates paper`, and
    `--templates bind` brings it back to bind's audio templates."""
    root = esc50_copy(tmp_path / "esc", folds=1)
    folders = tmp_path / "folders"
    for label, clip in [("dog", "1-100-A-0.wav"), ("crackling_fire", "1-101-A-1.wav")]:
        (folders / label).mkdir(parents=True)
        shutil.copy(root / "audio" / clip, folders / label / clip)

    def errors(*args):
        out = tmp_path / "errors.jsonl"
        assert bind("eval", *args, "--errors", out, "-f", "json").exit_code == 0
        return [(m["path"].rsplit("/", 1)[1], m["top"]) for m in jsonl(out.read_text())]

    paper, own = errors("--preset", "esc50", root), errors("--preset", "esc50", root, "--templates", "bind")
    assert paper == errors(folders, "--templates", "paper") and own == errors(folders)
    assert paper != own  # the fixture model misclassifies differently under the two sets
    listed = tmp_path / "templates.txt"
    listed.write_text("# mine\nthe sound of a {}.\n")
    assert errors("--preset", "esc50", root, "--templates", listed) == errors(
        "--preset", "esc50", root, "--template", "the sound of a {}.")
    assert bind("eval", "--preset", "esc50", root, "--templates", "nope").exit_code == 2


def test_imagenet_val_preset_maps_wordnet_folders_to_readable_names(tmp_path):
    from bindcli.eval import presets

    for wnid, image in [("n01440764", "dog_image.jpg"), ("n02119789", "car_image.jpg")]:
        (tmp_path / "val" / wnid).mkdir(parents=True)
        shutil.copy(media(image), tmp_path / "val" / wnid / f"ILSVRC2012_val_{wnid}.JPEG")
    data = presets.read_preset("imagenet-val", tmp_path / "val")
    assert len(data.classes) == 1000 and len(data.templates) == 80
    assert [i.label for i in data.items] == ["tench", "kit fox"]
    assert data.classes["missile (n03773504)"] == ("missile",)  # two synsets share the name
    result = bind("eval", "--preset", "imagenet-val", tmp_path / "val", "--template", "{}", "-f", "json")
    report = json.loads(result.stdout)
    assert report["n"] == 2 and len(report["labels"]) == 1000
    assert report["per_class"]["tench"]["n"] == 1 and report["per_class"]["goldfish"]["recall"] is None
    (tmp_path / "val" / "not_a_wnid").mkdir()
    result = bind("eval", "--preset", "imagenet-val", tmp_path / "val")
    assert result.exit_code == 2 and "not_a_wnid" in result.stderr


def test_preset_names_agree():
    from bindcli.eval import presets
    from bindcli.cli.eval import PRESET_NAMES

    from bindcli.cli.eval import RETRIEVAL_PRESET_NAMES
    from bindcli.eval.retrieval_presets import RETRIEVAL_PRESETS

    assert tuple(presets.PRESETS) == PRESET_NAMES
    assert tuple(RETRIEVAL_PRESETS) == RETRIEVAL_PRESET_NAMES


def test_confusion_matrix_as_csv_html_and_png(folder, tmp_path):
    csv_file, page, picture = tmp_path / "c.csv", tmp_path / "c.html", tmp_path / "c.png"
    report = json.loads(bind("eval", folder, "--confusion", csv_file, "-f", "json").stdout)
    rows = [line.split(",") for line in csv_file.read_text().splitlines()]
    assert rows[0][1:] == report["labels"]
    assert [[int(x) for x in r[1:]] for r in rows[1:]] == report["confusion"]
    assert bind("eval", folder, "--confusion", page).exit_code == 0
    assert "<table>" in page.read_text() and "big bird" in page.read_text()
    assert bind("eval", folder, "--confusion", picture).exit_code == 0
    assert picture.read_bytes().startswith(b"\x89PNG")
    result = bind("eval", folder, "--confusion", tmp_path / "c.pdf")
    assert result.exit_code == 2 and ".csv, .html or .png" in result.stderr


def test_png_without_matplotlib_says_what_to_install(monkeypatch, tmp_path):
    import importlib.util

    from bindcli.eval import confusion
    from bindcli.errors import UsageError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    with pytest.raises(UsageError, match=r"pip install 'bindcli\[plot\]'"):
        confusion.check(tmp_path / "c.png")


def test_llvip_preset_reads_thermal_crops_under_the_papers_names(tmp_path):
    from bindcli.eval import presets

    for label, image in [("person", "dog_image.jpg"), ("background", "car_image.jpg")]:
        (tmp_path / "llvip" / label).mkdir(parents=True)
        shutil.copy(media(image), tmp_path / "llvip" / label / "010001.jpg")
    data = presets.read_preset("llvip", tmp_path / "llvip")
    assert data.kind is Kind.THERMAL and data.classes["person"] == ("person", "man", "woman", "people")
    report = json.loads(bind("eval", "--preset", "llvip", tmp_path / "llvip", "--template", "{}", "-f", "json").stdout)
    assert report["labels"] == ["person", "background"] and report["paper_top1"] == pytest.approx(0.634)
    (tmp_path / "llvip" / "extra").mkdir()
    assert bind("eval", "--preset", "llvip", tmp_path / "llvip").exit_code == 2


def test_kinetics400_preset_scores_a_partial_download_saying_it_is_one(folder, tmp_path):
    result = bind("eval", "--preset", "kinetics400", folder, "-f", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["paper_top1"] == pytest.approx(0.5) and report["protocol"] == (
        "3 of Kinetics-400's 400 classes, scored among themselves: not comparable with the paper's figure")
    table = bind("eval", "--preset", "kinetics400", folder, "-f", "table").stdout
    assert "not comparable" in " ".join(table.split())
    for n in range(401):
        (tmp_path / "k" / f"class{n}").mkdir(parents=True)
        shutil.copy(media("dog_image.jpg"), tmp_path / "k" / f"class{n}" / "a.jpg")
    too_many = bind("eval", "--preset", "kinetics400", tmp_path / "k")
    assert too_many.exit_code == 2 and "401 class folders, Kinetics-400 has 400" in too_many.stderr


def test_a_second_template_set_embeds_only_its_prompts(folder, tmp_path):
    """Items go through the shared cache: a re-run with other prompts encodes no file."""
    import bindcli

    data = accuracy.read_folder(folder)
    with bindcli.open_embedder(FIXTURES / "public_config.json", FIXTURES / "public.pth", device="cpu",
                               precision="fp32", cache=tmp_path / "cache.sqlite3") as embedder:
        first = accuracy.evaluate(embedder, data)
        encode, towers = embedder.encoder.encode, []
        embedder.encoder.encode = lambda tower, batch: towers.append(tower) or encode(tower, batch)
        again = accuracy.evaluate(embedder, data)
        other = accuracy.evaluate(embedder, data, ("a {}",))
    assert towers == ["text"]  # the new prompts, nothing else
    assert again.total.confusion.tolist() == first.total.confusion.tolist() and other.total.n == 6


def one_line_usage_error(result, *words: str) -> None:
    assert result.exit_code == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bind: "), result.stderr
    assert all(w in lines[0] for w in words), lines[0]


def bad_parameter(result, *words: str) -> None:
    """typer's usage box for an option's bad value (its text wrapped over lines)."""
    assert result.exit_code == 2, result.stdout
    text = "".join(part.strip(" │") for part in result.stderr.splitlines())
    assert "Traceback" not in result.stderr and all(w in text for w in words), result.stderr


def test_a_row_without_its_label_names_the_file_and_row(folder):
    table = folder / "labels.csv"
    table.write_text("path,label\ndog/dog_image.jpg,dog\ncar/car_image.jpg\n")
    one_line_usage_error(bind("eval", table), f"{table}:3", "no label")
    table.write_text("path,label\ndog/dog_image.jpg,dog\ncar/car_image.jpg, \n")
    one_line_usage_error(bind("eval", table), f"{table}:3")


def test_a_table_or_templates_file_that_cannot_be_read_is_a_usage_error(folder, tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("path,label\ndog/dog_image.jpg,caf\xe9\n".encode("latin-1"))
    one_line_usage_error(bind("eval", latin), str(latin), "UTF-8")
    huge = tmp_path / "huge.csv"
    huge.write_text("path,label\n" + "x" * 200_000 + ",dog\n")  # past csv's field limit: csv.Error
    one_line_usage_error(bind("eval", huge), str(huge), "field")
    templates = tmp_path / "templates.txt"
    templates.write_bytes("a photo of a {} \xe9t\xe9.\n".encode("latin-1"))
    bad_parameter(bind("eval", folder, "--templates", templates), "--templates", str(templates), "UTF-8")
    templates.write_text("a photo\n")
    bad_parameter(bind("eval", folder, "--templates", templates), "--templates", str(templates), "has no {}")


def test_a_fold_whose_items_all_failed_is_left_out_of_the_mean():
    data = accuracy.Dataset("d", (accuracy.Item("a", "x", "1"),), {"x": ("x",), "y": ("y",)})
    scored, empty = accuracy.Tally.empty(2), accuracy.Tally.empty(2)
    scored.add(0, np.array([0, 1]))
    report = accuracy.Report(data, ("x", "y"), scored, {"1": scored, "2": empty}, [], [])
    assert report.figures()["top1"] == 1.0 and report.figures()["top5"] == 1.0
    nothing = accuracy.Report(data, ("x", "y"), empty, {"1": empty, "2": empty}, [], [])
    assert nothing.figures() == {"top1": 0.0, "top5": 0.0, "mean_per_class_recall": 0.0}


def test_an_errors_file_that_cannot_be_written_fails_before_the_run(folder, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    # checked before the dataset is even read: the --errors path is what is refused
    one_line_usage_error(bind("eval", tmp_path / "missing", "--errors", blocker / "out" / "e.jsonl"), "--errors")
    one_line_usage_error(bind("eval", folder, "--errors", blocker / "e.jsonl"), "--errors", "not a folder")
    made = tmp_path / "new" / "deeper" / "e.jsonl"  # a folder that can be created is fine
    assert bind("eval", folder, "--errors", made, "-f", "json").exit_code == 0 and made.is_file()


def test_errors_file_scores_are_printed_like_every_json_score(folder, tmp_path, monkeypatch):
    from bindcli import vectors

    monkeypatch.setattr(vectors, "SCORE_DIGITS", 2)
    out = tmp_path / "errors.jsonl"
    assert bind("eval", folder, "--errors", out, "-f", "json").exit_code == 0
    scores = [t["score"] for m in jsonl(out.read_text()) for t in m["top"]]
    assert scores and all(s == round(s, 2) for s in scores)


def test_template_and_templates_together_are_refused(folder):
    bad_parameter(bind("eval", folder, "--template", "{}", "--templates", "paper"), "--templates", "not both")


def test_presets_skip_hidden_files_and_folders(tmp_path):
    from bindcli.eval import presets

    val = tmp_path / "val"
    (val / "n01440764").mkdir(parents=True)
    shutil.copy(media("dog_image.jpg"), val / "n01440764" / "ILSVRC2012_val_1.JPEG")
    (val / "n01440764" / ".DS_Store").write_text("finder")
    (val / ".cache").mkdir()
    assert [i.label for i in presets.read_preset("imagenet-val", val).items] == ["tench"]
    llvip = tmp_path / "llvip"
    for label in ("person", "background"):
        (llvip / label).mkdir(parents=True)
        shutil.copy(media("dog_image.jpg"), llvip / label / "010001.jpg")
    (llvip / ".cache").mkdir()
    assert len(presets.read_preset("llvip", llvip).items) == 2


def test_one_reader_for_label_and_template_files(tmp_path):
    from bindcli import zeroshot
    from bindcli.errors import UsageError

    listed = tmp_path / "list.txt"
    listed.write_text("# heading\n  a photo of a {}.  # the default\n\n#\nthe sound of a {}.\n")
    assert zeroshot.read_lines(listed) == ("a photo of a {}.", "the sound of a {}.")
    zeroshot.check_templates(zeroshot.read_lines(listed))
    with pytest.raises(UsageError, match="has no"):
        zeroshot.check_templates(("a photo",))
    listed.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UsageError, match="UTF-8"):
        zeroshot.read_lines(listed)


def test_vggsound_preset_reads_the_test_clips_for_their_sound(tmp_path):
    """vggsound.csv as released (no header; id, start, label, split), the clips as VGGSound
    names them (`<id>_<start in 6 digits>.mp4`), read as audio: each clip's top-1 is
    `bind classify --as audio`'s under the paper's templates."""
    root = tmp_path / "vggsound"
    (root / "video").mkdir(parents=True)
    clips = {"dog-barks01": ("dog barking", 300), "car-passes1": ("car passing by", 900), "bird_sings1": ("bird chirping", 2000)}
    rows = []
    for ytid, (label, freq) in clips.items():
        t = np.arange(40000) / 16000
        write_av(root / "video" / f"{ytid}_000030.mp4", "aac", 16000, (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32), video=True)
        rows.append(f"{ytid},30,{label},test")
    rows += ["gone-from-yt,10,dog barking,test", "trainonly01,0,playing piano,train"]
    (root / "vggsound.csv").write_text("\n".join(rows) + "\n")
    from bindcli.eval import presets

    data = presets.read_preset("vggsound", root)
    assert data.kind is Kind.AUDIO and [i.label for i in data.items] == ["dog barking", "car passing by", "bird chirping"]
    assert list(data.classes) == ["bird chirping", "car passing by", "dog barking", "playing piano"]
    assert data.protocol.endswith("3 of 4 clips found (the rest missing): not comparable with the paper's figure")
    result = bind("eval", "--preset", "vggsound", root, "--template", "the sound of {}.", "-f", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == 3 and report["paper_top1"] == pytest.approx(0.278)
    ranked = jsonl(bind("classify", "--as", "audio", *(i.path for i in data.items), "-l", ",".join(data.classes),
                        "--template", "the sound of {}.", "-f", "jsonl").stdout)
    confusion = np.zeros((4, 4), int)
    for item, r in zip(data.items, ranked):
        confusion[report["labels"].index(item.label), report["labels"].index(r["labels"][0]["label"])] += 1
    assert report["confusion"] == confusion.tolist()
    table = " ".join(bind("eval", "--preset", "vggsound", root, "--template", "{}", "-f", "table").stdout.split())
    assert "27.8" in table and "not comparable" in table
