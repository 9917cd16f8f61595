"""Data files the presets of `bind eval` read: class names and prompt templates, each naming
its source in its header."""
