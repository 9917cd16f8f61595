"""Collections: folders of media kept as vectors in one SQLite file, brought up to date
incrementally and searched exactly or approximately.

The only package that runs SQL (`store`: the schema, its migrations and every statement).
`ingest` walks folders and embeds only what changed; `nearest` searches, exactly over the
memory-mapped matrix (`_matrix`) or through inverted lists (`_ivf`); `exchange` moves vectors
in and out as `.npy` + manifest. `collection` holds `Collection`, the one object a script (and
`bind index`, `search`, `collections`) works with a collection through.

Imports: bindcli._util, bindcli.errors, bindcli.modality, bindcli.vectors, bindcli.embed,
bindcli.query (the query expressions `Collection.search` takes; it imports no collections),
bindcli.media.options (the loading options a collection is pinned to), bindcli.windows (the
window spec of a collection of segments).
"""
