"""`bind serve --adapter`: the server's vectors are the adapter's, and a client is served
only when it asks for the same adapter."""

from __future__ import annotations

import pytest
import torch
from test_serve import start

from bindcli.embed.identity import Model
from bindcli.model.adapter import AdapterHeader
from bindcli.model.tuning import save_adapter
from cli_support import SMALL, bind, jsonl, media

pytestmark = pytest.mark.slow  # see pyproject.toml's markers


def test_a_server_with_an_adapter_serves_only_runs_with_it(tmp_path):
    base = Model.resolve(SMALL["BIND_MODEL_CONFIG"], SMALL["BIND_WEIGHTS"])
    adapter = tmp_path / "a.safetensors"
    rotation = torch.linalg.qr(torch.randn(32, 32, generator=torch.Generator().manual_seed(0)))[0]
    save_adapter(adapter, {"head.map": rotation}, AdapterHeader(base=base.id, tower="vision", method="head"))
    served = start(tmp_path, "--adapter", str(adapter))
    try:
        assert served.model == f"{base.id}+adapter={base.adapted(adapter).adapter.id}"
        image = media("dog_image.jpg")
        here = jsonl(bind("embed", image, "--adapter", adapter, "--no-server", "-f", "jsonl").stdout)
        through = bind("embed", image, "--adapter", adapter, "--server", served.sock, "-f", "jsonl")
        assert "running in-process" not in through.stderr
        assert jsonl(through.stdout) == here
        plain = bind("embed", image, "--server", served.sock, "-f", "jsonl")
        assert f"serves adapter={base.adapted(adapter).adapter.id}, not no adapter (--adapter); running in-process" in plain.stderr
        assert jsonl(plain.stdout) != here
    finally:
        assert served.stop() == 0
