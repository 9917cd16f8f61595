"""`bind generate`: a tiny Stable unCLIP pipeline (random weights, made from configs, its
tokenizer from a vocabulary written here) saved to a folder and loaded as a user's local
copy would be; nothing is downloaded."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import importlib.util
import json
import math
import shutil
import string
import threading

import numpy as np
import pytest

from bindcli import generate as gen
from bindcli.errors import UsageError
from cli_support import bind, media

pytestmark = pytest.mark.slow  # see pyproject.toml's markers

#: the small fixture model's embedding width (public_config.json out_embed_dim)
WIDTH = 32
SIZE = "16"
MEAN = np.linspace(-0.2, 0.3, WIDTH)
STD = np.linspace(0.5, 1.5, WIDTH)
EXPECTED_NORM = math.sqrt(float(np.sum(MEAN**2 + STD**2)))


def _tokenizer(folder):
    """A CLIP tokenizer over lower-case letters and one merge chain (`dog`)."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in [*string.ascii_lowercase, *(c + "</w>" for c in string.ascii_lowercase),
                  "do", "dog</w>"]:
        vocab[token] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\nd o\ndo g</w>\n", encoding="utf-8")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"),
                         model_max_length=16), len(vocab)


@pytest.fixture(scope="module")
def unclip(tmp_path_factory):
    """The folder of a tiny unCLIP pipeline whose normalizer has known mean and std."""
    import torch
    from diffusers import (
        AutoencoderKL, DDIMScheduler, DDPMScheduler, StableUnCLIPImg2ImgPipeline,
        UNet2DConditionModel,
    )
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import (
        StableUnCLIPImageNormalizer,
    )
    from transformers import (
        CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    root = tmp_path_factory.mktemp("unclip")
    tokenizer, vocab_size = _tokenizer(root)
    torch.manual_seed(0)
    normalizer = StableUnCLIPImageNormalizer(embedding_dim=WIDTH)
    with torch.no_grad():
        normalizer.mean.copy_(torch.from_numpy(MEAN)[None])
        normalizer.std.copy_(torch.from_numpy(STD)[None])
    pipeline = StableUnCLIPImg2ImgPipeline(
        feature_extractor=CLIPImageProcessor(crop_size=32, size=32),
        image_encoder=CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=WIDTH, projection_dim=WIDTH, num_hidden_layers=1, num_attention_heads=2,
            image_size=32, intermediate_size=37, patch_size=8)),
        image_normalizer=normalizer,
        image_noising_scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        tokenizer=tokenizer,
        text_encoder=CLIPTextModel(CLIPTextConfig(
            bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=WIDTH,
            projection_dim=WIDTH, intermediate_size=37, num_attention_heads=2,
            num_hidden_layers=1, vocab_size=vocab_size, max_position_embeddings=16)),
        unet=UNet2DConditionModel(
            sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), block_out_channels=(32, 64),
            attention_head_dim=(2, 4), norm_num_groups=8, class_embed_type="projection",
            projection_class_embeddings_input_dim=2 * WIDTH, cross_attention_dim=WIDTH,
            upcast_attention=True, use_linear_projection=True),
        scheduler=DDIMScheduler(
            beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
            prediction_type="v_prediction", set_alpha_to_one=False, steps_offset=1),
        vae=AutoencoderKL(block_out_channels=(8,), norm_num_groups=8, sample_size=16),
    )
    folder = root / "tiny-unclip"
    pipeline.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def painter(unclip):
    return gen.ImageGenerator.open(str(unclip), device="cpu", precision="fp32")


def run(unclip, out, *terms, size=SIZE):
    return bind("generate", *terms, "-o", out, "--diffusion-model", unclip, "--steps", "2",
                "--size", size)


def pixels(path):
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def png_text(path) -> dict:
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        return dict(img.text)


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_writes_a_png_that_records_how_it_was_made(unclip, tmp_path):
    out = tmp_path / "bark.png"
    done = run(unclip, out, media("dog_audio.wav"), "+", "0.5:" + media("dog_image.jpg"),
               "--seed", "3", "-p", "a dog")
    assert done.exit_code == 0, done.stderr
    assert done.stdout == ""
    assert pixels(out).shape == (16, 16, 3)
    meta = png_text(out)
    assert json.loads(meta["bind:query"]) == [
        {"input": media("dog_audio.wav"), "weight": 1.0, "text": False},
        {"input": media("dog_image.jpg"), "weight": 0.5, "text": False},
    ]
    assert (meta["bind:seed"], meta["bind:steps"], meta["bind:noise_level"]) == ("3", "2", "0")
    assert meta["bind:prompt"] == "a dog" and float(meta["bind:guidance"]) == 10.0
    assert float(meta["bind:embedding_scale"]) == pytest.approx(EXPECTED_NORM)
    assert meta["bind:diffusion_model"] == str(unclip) and meta["bind:size"] == "16x16"
    assert meta["bind:imagebind_model"].startswith("public_config:")
    assert meta["Software"].startswith("bind ")
    assert f"bind: wrote {out} (16x16, seed 3)" in done.stderr
    assert leftovers(tmp_path) == []


def test_same_seed_same_image_and_each_of_n_is_its_own_seed(unclip, tmp_path, monkeypatch):
    from bindcli.cli.output import Output

    bars = []

    @contextlib.contextmanager
    def progress(self, total, label):
        bars.append([label, total, 0])
        yield lambda n, status=None: bars[-1].__setitem__(2, bars[-1][2] + n)

    monkeypatch.setattr(Output, "progress", progress)
    query = media("dog_audio.wav")
    assert run(unclip, tmp_path / "a.png", query, "--seed", "5", "-n", "2").exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-1.png", "a.png"]
    assert bars[-1] == ["Generating", 4, 4]  # a bar over every step: 2 images of 2 steps
    assert png_text(tmp_path / "a-1.png")["bind:seed"] == "6"
    assert run(unclip, tmp_path / "b.png", query, "--seed", "6").exit_code == 0
    assert run(unclip, tmp_path / "c.png", query, "--seed", "5").exit_code == 0
    assert np.array_equal(pixels(tmp_path / "a-1.png"), pixels(tmp_path / "b.png"))
    assert np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "c.png"))
    assert not np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png"))


def test_the_query_vector_is_the_image_embedding(unclip, tmp_path, monkeypatch):
    """What reaches the pipeline's image-embedding input is the query's direction at the
    checkpoint's expected norm (or --embedding-scale), and another query draws another image."""
    from diffusers import StableUnCLIPImg2ImgPipeline

    seen = []
    noise = StableUnCLIPImg2ImgPipeline.noise_image_embeddings

    def spy(self, image_embeds, *args, **kwargs):
        seen.append(image_embeds.detach().double().numpy().copy())
        return noise(self, image_embeds, *args, **kwargs)

    monkeypatch.setattr(StableUnCLIPImg2ImgPipeline, "noise_image_embeddings", spy)
    terms = [media("car_audio.wav"), "-", "0.3:" + media("car_image.jpg")]
    assert bind("arith", *terms, "-o", tmp_path / "q.npy").exit_code == 0
    query = np.load(tmp_path / "q.npy").astype(np.float64)
    assert run(unclip, tmp_path / "car.png", *terms, "--seed", "1").exit_code == 0
    assert run(unclip, tmp_path / "far.png", *terms, "--seed", "1",
               "--embedding-scale", "7").exit_code == 0
    assert run(unclip, tmp_path / "dog.png", media("dog_image.jpg"), "--seed", "1").exit_code == 0
    default, pushed, other = (s.reshape(-1) for s in seen)
    assert np.allclose(default, query * EXPECTED_NORM, atol=1e-5)
    assert np.allclose(pushed, query * 7, atol=1e-5)
    assert not np.allclose(other / EXPECTED_NORM, query, atol=1e-2)
    assert not np.array_equal(pixels(tmp_path / "car.png"), pixels(tmp_path / "far.png"))
    assert not np.array_equal(pixels(tmp_path / "car.png"), pixels(tmp_path / "dog.png"))


def test_library_scale_steps_and_determinism(painter):
    assert painter.width == WIDTH
    assert painter.expected_norm == pytest.approx(EXPECTED_NORM)
    vector = np.random.default_rng(0).normal(size=WIDTH)
    embeds = painter.image_embeds(vector)
    assert tuple(embeds.shape) == (1, WIDTH)
    assert float(embeds.norm()) == pytest.approx(EXPECTED_NORM, rel=1e-5)
    steps = []
    settings = gen.Settings(steps=3, size=(24, 16))
    first = painter.generate(vector, settings, seed=9, step=lambda: steps.append(1))
    again = painter.generate(vector, settings, seed=9)
    assert len(steps) == 3 and first.size == (24, 16)
    assert np.array_equal(np.asarray(first), np.asarray(again))
    with pytest.raises(UsageError, match="takes 32-wide image embeddings"):
        painter.image_embeds(np.ones(WIDTH * 2))
    with pytest.raises(UsageError, match="zero"):
        painter.image_embeds(np.zeros(WIDTH))


def test_an_embedding_width_mismatch_is_refused_before_embedding(unclip, tmp_path):
    wide = tmp_path / "wide"
    shutil.copytree(unclip, wide)
    config = wide / "image_normalizer" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "embedding_dim": 1024}))
    done = run(wide, tmp_path / "x.png", media("dog_audio.wav"))
    assert done.exit_code == 2
    assert done.stderr.splitlines() == [
        f"bind: --diffusion-model {wide} takes 1024-wide image embeddings and the ImageBind "
        "model makes 32-wide ones; use a matching pair (imagebind_huge with "
        "stabilityai/stable-diffusion-2-1-unclip: both 1024)"
    ]
    assert not (tmp_path / "x.png").exists()


def test_nothing_is_written_when_a_term_or_the_output_fails(unclip, tmp_path):
    done = run(unclip, tmp_path / "x.png", tmp_path / "gone.wav")
    assert done.exit_code == 1 and f"bind: {tmp_path / 'gone.wav'}: no such file" in done.stderr
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = run(unclip, blocker / "x.png", media("dog_audio.wav"), "--seed", "1")
    assert done.exit_code == 1
    assert done.stderr.splitlines()[-1] == f"bind: {blocker / 'x.png'}: Not a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_the_generation_is_interrupted_without_a_file(unclip, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gen.ImageGenerator, "generate", interrupted)
    done = run(unclip, tmp_path / "x.png", media("dog_audio.wav"))
    assert done.exit_code == 130 and done.stderr.splitlines()[-1] == "bind: interrupted"
    assert list(tmp_path.iterdir()) == []


#: the commit the fake Hub serves
COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "bind-tests/tiny-unclip"


@pytest.fixture
def hub(unclip, monkeypatch):
    """A fake Hugging Face Hub on 127.0.0.1 serving the tiny pipeline as `REPO`, beside a
    `.ckpt` that must never be fetched; huggingface_hub pointed at it as HF_ENDPOINT would
    (read at import, so patched here). Yields the list of requested paths."""
    import huggingface_hub.constants as constants
    import huggingface_hub.hf_api as hf_api

    files = {p.relative_to(unclip).as_posix(): p.read_bytes() for p in unclip.rglob("*") if p.is_file()}
    files["sd21-unclip-h.ckpt"] = b"not to be downloaded"
    seen: list[str] = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_HEAD(self):
            self.answer(body=False)

        def do_GET(self):
            self.answer(body=True)

        def answer(self, body: bool) -> None:
            path = self.path.split("?")[0]
            seen.append(path)
            name = path.partition(f"/{REPO}/resolve/")[2].partition("/")[2]
            headers = {"Content-Type": "application/json"}
            if path.startswith(f"/api/models/{REPO}/tree/"):
                data = json.dumps([{"type": "file", "path": f, "size": len(b),
                                    "oid": hashlib.sha1(b).hexdigest()} for f, b in files.items()])
            elif path.startswith(f"/api/models/{REPO}"):
                data = json.dumps({"id": REPO, "sha": COMMIT,
                                   "siblings": [{"rfilename": f} for f in files]})
            elif name in files:
                data = files[name]
                headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = data.encode() if isinstance(data, str) else data
            self.send_response(200)
            for key, value in {**headers, "Content-Length": str(len(data))}.items():
                self.send_header(key, value)
            self.end_headers()
            if body:
                self.wfile.write(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hf_api.api, "endpoint", url)
    yield seen
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_a_hub_model_is_fetched_into_the_cache_once_then_used_offline(hub, tmp_path):
    cache = tmp_path / "hf"
    args = ["generate", media("dog_audio.wav"), "--diffusion-model", REPO, "--steps", "2",
            "--size", SIZE, "--seed", "2"]
    done = bind(*args, "-o", tmp_path / "a.png", env={"HF_HUB_CACHE": str(cache)})
    assert done.exit_code == 0, done.stderr
    snapshot = cache / "models--bind-tests--tiny-unclip" / "snapshots" / COMMIT
    assert (snapshot / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not any(path.endswith(".ckpt") for path in hub)  # the repo's other weights
    assert png_text(tmp_path / "a.png")["bind:diffusion_model"] == f"{REPO}@{COMMIT}"
    hub.clear()
    done = bind(*args, "-o", tmp_path / "b.png",
                env={"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"})
    assert done.exit_code == 0, done.stderr
    assert hub == []
    assert np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png"))


def test_a_hub_model_that_cannot_be_fetched(hub, tmp_path):
    done = bind("generate", media("dog_audio.wav"), "-o", tmp_path / "x.png",
                "--diffusion-model", "bind-tests/not-there", env={"HF_HUB_CACHE": str(tmp_path)})
    assert done.exit_code == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"bind: diffusion model bind-tests/not-there is not in the Hugging "
                           f"Face cache ({tmp_path}) and could not be downloaded (")
    assert "404" in line, line
    assert line.endswith(f"copy its cache folder to {tmp_path}, or pass --diffusion-model FOLDER")
    assert not (tmp_path / "x.png").exists()


def test_offline_names_what_to_download_and_where(tmp_path):
    cache = tmp_path / "hf"
    done = bind("generate", media("dog_audio.wav"), "-o", tmp_path / "x.png",
                "--diffusion-model", "bind-tests/no-such-unclip",
                env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)})
    assert done.exit_code == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith(
        f"bind: diffusion model bind-tests/no-such-unclip is not in the Hugging Face cache "
        f"({cache}) and offline mode is on (HF_HUB_OFFLINE=1)"
    )
    assert "hf download bind-tests/no-such-unclip --exclude '*.ckpt'" in line
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("model, reason", [("./no-such-folder", "no such folder"),
                                           (".", "no model_index.json in it")])
def test_a_local_model_that_is_not_a_pipeline(tmp_path, model, reason):
    done = bind("generate", media("dog_audio.wav"), "-o", tmp_path / "x.png",
                "--diffusion-model", model)
    assert done.exit_code == 1 and done.stderr.startswith(f"bind: {model}: {reason} ")


def test_without_the_extra_it_names_the_pip_install(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "diffusers" else real(name, *a))
    done = bind("generate", media("dog_audio.wav"), "-o", tmp_path / "x.png")
    assert done.exit_code == 2
    assert done.stderr.splitlines() == [
        "bind: bind generate needs diffusers: pip install 'bindcli[generate]'"
    ]


@pytest.mark.parametrize("size, args, message", [
    (SIZE, ["--noise-level", "1000"], "--noise-level 1000: use 0..999"),
    ("20x16", [], "--size 20x16: give N or WxH in pixels, multiples of 8 (e.g. 768)"),
    ("8x100000", [], "--size 8x100000: at most 2048 pixels a side (the model was trained at 768)"),
    (SIZE, ["--embedding-scale", "0"], "--embedding-scale 0.0: use a positive norm"),
    (SIZE, ["--offload", "model"], "--offload model moves weights between CPU and GPU; there "
                                   "is no GPU here (use --offload none)"),
])
def test_settings_the_pipeline_cannot_run_are_usage_errors(unclip, tmp_path, size, args, message):
    done = run(unclip, tmp_path / "x.png", media("dog_audio.wav"), *args, size=size)
    assert done.exit_code == 2 and done.stderr.splitlines() == [f"bind: {message}"]


def test_an_output_name_that_is_not_png_is_refused_before_loading(tmp_path):
    done = bind("generate", media("dog_audio.wav"), "-o", tmp_path / "g.jpg")
    assert done.exit_code == 2 and not (tmp_path / "g.jpg").exists()
    assert done.stderr.splitlines() == [f"bind: -o {tmp_path / 'g.jpg'}: bind generate writes PNG files (they "
                                        "record how the image was made); name it .png, and convert it "
                                        "afterwards for another format"]


def test_sizes_and_names():
    assert gen.parse_size("768") == (768, 768) and gen.parse_size("512x768") == (512, 768)
    for bad in ("0", "12", "axb", "8x8x8", "-8"):
        with pytest.raises(UsageError):
            gen.parse_size(bad)
    from pathlib import Path

    assert gen.image_paths(Path("d/out.png"), 3) == [
        Path("d/out.png"), Path("d/out-1.png"), Path("d/out-2.png")]


def test_int8_is_imagebinds_alone():
    placement = gen.diffusion_placement("auto", "int8")
    assert (placement.device.type, placement.precision) == ("cpu", "fp32")
