"""Upstream's `imagebind.models`; `imagebind_model` is the module scripts import."""
