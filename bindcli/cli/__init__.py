"""The `bind` command: it parses options, calls the library and prints.

One module per command (`embed`, `search`, ...), registered by `app`; what several share:
`options` (the common options, the collection-file options, `@command` and the error
boundary), `run` (one command run: its model and embedder), `connect` (whether a server
embeds for the run), `render` (formats, tables, records) and `output` (the sink of a run).

Imports: all of bindcli; the only package that imports Typer or Rich.
"""
