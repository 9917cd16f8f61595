"""`/v1/embed` with `segments`: each long file answers its windows' vectors with their times."""

from __future__ import annotations

import base64

import numpy as np
import soundfile
from starlette.testclient import TestClient

from bindcli.embed.embedder import Embedder
from bindcli.model.config import load_config
from bindcli.model.placement import place
from bindcli.serve.app import Settings, build_app
from bindcli.serve.batching import Batcher
from cli_support import FIXTURES


def test_embed_answers_each_window_with_its_start_and_end(tmp_path):
    sound = (np.random.default_rng(2).standard_normal(7 * 16_000) * 0.1).astype(np.float32)
    soundfile.write(tmp_path / "walk.wav", sound, 16_000)
    embedder = Embedder(load_config(FIXTURES / "public_config.json"), FIXTURES / "public.pth", place("cpu", "fp32"))
    batcher = Batcher(embedder)
    try:
        with TestClient(build_app(batcher, Settings())) as client:
            sent = {"data": base64.b64encode((tmp_path / "walk.wav").read_bytes()).decode(), "filename": "walk.wav"}
            body = {"inputs": [sent, {"text": "rain"}], "segments": "2s"}
            walk, rain = client.post("/v1/embed", json=body).json()["results"]
            assert [(s["start"], s["end"]) for s in walk["segments"]] == [(0, 2), (2, 4), (4, 6), (5, 7)]
            assert walk["reading"] == "sound" and "embedding" in rain and "segments" not in rain
            assert abs(np.linalg.norm(walk["segments"][0]["embedding"]) - 1) < 1e-5
            plain = client.post("/v1/embed", json={"inputs": [sent]}).json()
            assert "segments" not in plain["results"][0]  # without segments, as before
            bad = client.post("/v1/embed", json={**body, "segments": "1s"})
            assert bad.status_code == 400 and "shorter than" in bad.json()["error"]["message"]
    finally:
        batcher.close()
