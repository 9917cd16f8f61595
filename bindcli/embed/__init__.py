"""From inputs to vectors: the one pipeline every front end drives.

An input's path: `inputs` (what to embed) -> `identity` (which model and loading make the
numbers: model id, vectors id, cache key) -> the stages (digest, cache lookup, prepare, batch
key, encode, finish) -> an `Embedding`. The `embedder` runs them in this process; the server's
batcher (`bindcli.serve.batching`) across requests; `ray_engine` on a cluster; `remote` asks a
running `bind serve` for them. `encoder` is the seam to the towers, `object_store` reads
`s3://` and other URIs on Ray's workers.

Imports: bindcli._util, bindcli.errors, bindcli.modality, bindcli.vectors, bindcli.media,
bindcli.model, bindcli.weights, bindcli.windows, bindcli.serve.protocol, bindcli.collections.store (the
embedding cache lives in the collection file, opened by `open_embedder`).
"""
