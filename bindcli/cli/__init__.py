"""The `bind` command: it parses options, calls the library and prints.

One module per command (`embed`, `search`, ...), registered by `app`; what several share is in
`common` (the common options and a command run) and `shared` (collection-file options, tables).

Imports: all of bindcli; the only package that imports Typer or Rich.
"""
