"""`bind locate` and `bindcli.locate`: the small model only shows the mechanics, except that
a photo matches itself best, which is what finding a pasted photo rests on."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import bindcli
from bindcli.errors import UsageError
from bindcli.locate import MAX_WINDOWS, MIN_SIDE, Box, fixed, grid, iou, locate, nms
from cli_support import FIXTURES, bind, jsonl, media

#: where the photo lies in the noise canvas (a quarter of it)
PLACE = (200, 120, 440, 300)


@pytest.fixture(scope="module")
def pasted(tmp_path_factory):
    """(canvas, photo): the dog photo at PLACE in a 480x360 canvas of noise."""
    folder = tmp_path_factory.mktemp("pasted")
    photo = Image.open(media("dog_image.jpg")).convert("RGB").resize((PLACE[2] - PLACE[0], PLACE[3] - PLACE[1]))
    noise = np.random.default_rng(0).integers(0, 256, (360, 480, 3), dtype=np.uint8)
    canvas = Image.fromarray(noise)
    canvas.paste(photo, PLACE[:2])
    canvas.save(folder / "canvas.png")
    photo.save(folder / "photo.png")
    return folder / "canvas.png", folder / "photo.png"


@pytest.mark.slow
def test_the_best_window_finds_the_pasted_photo(pasted):
    canvas, photo = pasted
    with bindcli.open_embedder(FIXTURES / "public_config.json", FIXTURES / "public.pth",
                               device="cpu", precision="fp32", cache=False) as embedder:
        query = embedder.embed([photo])[0].unit
        found = locate(embedder, canvas, query, k=3, heat="mean")
    assert iou(found.boxes[0].box, PLACE) >= 0.5
    assert [b.score for b in found.boxes] == sorted((b.score for b in found.boxes), reverse=True)
    assert (found.width, found.height) == (480, 360) and found.heat.shape == (360, 480)
    assert found.windows > len(grid(480, 360))  # the refinement's windows come on top


def test_a_picture_in_memory_is_named_as_asked_and_a_bad_crop_mode_refused(pasted):
    canvas, photo = pasted
    boxes = fixed([list(PLACE)])
    with bindcli.open_embedder(FIXTURES / "public_config.json", FIXTURES / "public.pth",
                               device="cpu", precision="fp32", cache=False) as embedder:
        query = embedder.embed([photo])[0].unit
        img = Image.open(canvas).convert("RGB")  # a copy: no file name of its own
        assert locate(embedder, img, query, proposals=boxes, name="park").image == "park"
        assert locate(embedder, img, query, proposals=boxes).image == "<image>"
        assert locate(embedder, canvas, query, proposals=boxes).image == str(canvas)
        with pytest.raises(UsageError, match="unknown crop mode 'bogus'"):
            locate(embedder, img, query, proposals=boxes, mode="bogus")


def test_grid_covers_the_edges_and_nms_drops_overlaps():
    windows = grid(300, 200)
    assert max(w[2] for w in windows) == 300 and max(w[3] for w in windows) == 200
    assert all(0 <= x0 < x1 <= 300 and 0 <= y0 < y1 <= 200 for x0, y0, x1, y1 in windows)
    kept = nms([Box((0, 0, 10, 10), 0.5), Box((1, 0, 11, 10), 0.9), Box((20, 20, 30, 30), 0.1)])
    assert [b.box for b in kept] == [(1, 0, 11, 10), (20, 20, 30, 30)]


def test_a_long_thin_image_gets_a_bounded_grid_of_windows_a_patch_or_more():
    banner = grid(2000, 30)  # was 17,804 windows, some 7 px wide: about an hour on imagebind_huge
    assert len(banner) <= MAX_WINDOWS and min(min(x1 - x0, y1 - y0) for x0, y0, x1, y1 in banner) >= MIN_SIDE
    assert max(w[2] for w in banner) == 2000 and max(w[3] for w in banner) == 30
    assert len(grid(480, 360)) == 351  # an ordinary photo's grid is as it was


def test_proposals_are_reranked_and_the_exact_region_wins(pasted, tmp_path):
    canvas, photo = pasted
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"canvas.png": [[0, 0, 200, 150], list(PLACE), [250, 150, 480, 360]]}))
    result = bind("locate", canvas, "--query", photo, "--proposals", boxes, "-f", "json", "--no-cache")
    assert result.exit_code == 0, result.stderr
    [record] = json.loads(result.stdout)
    assert record["image"] == str(canvas) and (record["width"], record["height"]) == (480, 360)
    assert record["boxes"][0]["box"] == list(PLACE) and len(record["boxes"]) == 3
    # the expression as one value, as separate words, -k and --min-score
    best = record["boxes"][0]["score"]
    for query in (["--query", f"{photo} + 0:{photo}"], ["-Q", photo, "-Q", "+", "-Q", f"0:{photo}"]):
        again = jsonl(bind("locate", canvas, *query, "--proposals", boxes, "-k", "1",
                           "--min-score", str(best), "--no-cache").stdout)
        assert again[0]["boxes"] == [record["boxes"][0]]


def test_locates_own_output_and_scored_boxes_are_proposals_and_an_edge_overshoot_is_clipped(pasted, tmp_path):
    canvas, photo = pasted
    scored = tmp_path / "scored.json"  # a detector's [x0, y0, x1, y1, score], one reaching past the edge
    scored.write_text(json.dumps([[0, 0, 200, 150, 0.9], [*PLACE, 0.4], [250.4, 150, 481.5, 361, 0.8]]))
    first = bind("locate", canvas, "-Q", photo, "--proposals", scored, "-f", "jsonl", "--no-cache")
    assert first.exit_code == 0, first.stderr
    [record] = jsonl(first.stdout)
    assert sorted(b["box"] for b in record["boxes"]) == [[0, 0, 200, 150], list(PLACE), [250, 150, 480, 360]]
    again = tmp_path / "again.jsonl"
    again.write_text(first.stdout)  # what locate printed, fed back as proposals
    second = jsonl(bind("locate", canvas, "-Q", photo, "--proposals", again, "--no-cache").stdout)
    assert second == [record]
    far = tmp_path / "far.json"  # a box meant for a larger image is not clipped into this one
    far.write_text(json.dumps([[0, 0, 200, 150], [300, 200, 520, 360]]))
    outside = bind("locate", canvas, "-Q", photo, "--proposals", far, "--no-cache")
    assert outside.exit_code == 1 and "box [300, 200, 520, 360] is not inside the 480x360 image" in outside.stderr


@pytest.mark.parametrize("box", ["[0, 0, 1e309, 10]", "[0, 0, NaN, 10]", "[0, 0, 10, true]", "[0, 0, 10]"])
def test_a_proposal_that_is_not_four_finite_numbers_is_one_usage_error(pasted, tmp_path, box):
    canvas, photo = pasted
    bad = tmp_path / "bad.json"
    bad.write_text(f"[{box}]")
    done = bind("locate", canvas, "-Q", photo, "--proposals", bad)
    assert done.exit_code == 2 and "Traceback" not in done.stderr
    assert "each box must be [x0, y0, x1, y1]" in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_audio_and_text_queries_draw_pictures_of_the_upright_image(tmp_path):
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: upright it is 120 wide, 200 high
    Image.open(media("car_image.jpg")).convert("RGB").resize((200, 120)).save(rotated, exif=exif)
    boxes, heat = tmp_path / "boxes.png", tmp_path / "heat.png"
    result = bind("locate", rotated, "--query", media("dog_audio.wav"), "--text", "a dog",
                  "-o", boxes, "--heatmap", heat, "-k", "2", "--no-cache")
    assert result.exit_code == 0, result.stderr
    [record] = jsonl(result.stdout)
    assert (record["width"], record["height"]) == (120, 200) and len(record["boxes"]) == 2
    for box in record["boxes"]:
        x0, y0, x1, y1 = box["box"]
        assert 0 <= x0 < x1 <= 120 and 0 <= y0 < y1 <= 200
    for picture in (boxes, heat):
        with Image.open(picture) as img:
            assert img.size == (120, 200) and img.format == "PNG"
    assert not list(tmp_path.glob(".*.tmp"))


def test_out_dir_draws_every_image_and_the_table_prints(pasted, tmp_path):
    canvas, photo = pasted
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([list(PLACE)]))
    result = bind("locate", canvas, photo, "-Q", photo, "--proposals", boxes,
                  "--out-dir", tmp_path / "drawn", "-f", "table", "--no-cache")
    assert result.exit_code == 1  # the box lies outside the small photo
    assert "photo.png: box [200, 120, 440, 300] is not inside the 240x180 image" in result.stderr
    assert "canvas.png" in result.stdout and "200, 120, 440, 300" in result.stdout
    with Image.open(tmp_path / "drawn" / "canvas.boxes.png") as img:
        assert img.size == (480, 360)


def test_bad_inputs_get_one_clear_error_each(pasted, tmp_path):
    canvas, photo = pasted
    bad = tmp_path / "bad.jpg"
    bad.write_text("not a picture")
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    listed = tmp_path / "listed.json"
    listed.write_text(json.dumps([list(PLACE)]))
    broken = bind("locate", bad, "-Q", photo, "--proposals", listed, "--no-cache")
    assert broken.exit_code == 1 and broken.stdout == ""
    assert broken.stderr.splitlines() == [f"bind: {bad}: cannot read image: cannot identify image file {str(bad)!r}"]
    nothing = bind("locate", canvas, "-Q", photo, "--proposals", empty)
    assert nothing.exit_code == 2 and "holds no boxes" in nothing.stderr
    several = bind("locate", canvas, photo, "-Q", photo, "-o", tmp_path / "x.png")
    assert several.exit_code == 2 and "--out-dir" in several.stderr
    both = bind("locate", canvas, "-Q", photo, "-o", tmp_path / "x.png", "--out-dir", tmp_path / "d")
    assert both.exit_code == 2 and "either -o FILE or --out-dir" in both.stderr
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "d").exists()
    no_query = bind("locate", canvas)
    assert no_query.exit_code == 2 and "TERM or --text" in no_query.stderr


def test_out_dir_keeps_apart_images_that_share_a_name(pasted, tmp_path):
    canvas, photo = pasted
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "same.png").write_bytes(canvas.read_bytes())
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([list(PLACE)]))
    result = bind("locate", tmp_path / "a" / "same.png", tmp_path / "b" / "same.png", "-Q", photo,
                  "--proposals", boxes, "--out-dir", tmp_path / "drawn", "-f", "json", "--no-cache")
    assert result.exit_code == 0, result.stderr
    drawn = sorted(p.name for p in (tmp_path / "drawn").iterdir())
    assert len(drawn) == 2 and all(n.startswith("same-") and n.endswith(".boxes.png") for n in drawn)
