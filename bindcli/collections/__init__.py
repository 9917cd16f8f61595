"""Collections: folders of media kept as vectors in one SQLite file, brought up to date
incrementally and searched exactly or approximately.

The only package that runs SQL (`store`: the schema, its migrations and every statement).
`ingest` walks folders and embeds only what changed; `nearest` searches, exactly over the
memory-mapped matrix (`_matrix`) or through inverted lists (`_ivf`); `exchange` moves vectors
in and out as `.npy` + manifest.

Imports: bindcli._util, bindcli.errors, bindcli.modality, bindcli.vectors, bindcli.embed.
"""
