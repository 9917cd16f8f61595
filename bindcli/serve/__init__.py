"""`bind serve`: one warm embedder behind an HTTP API (`app`), with batching across requests
(`batching`), its limits (`limits`), counters (`metrics`) and the sockets and signals of the
process (`server`). Needs the `bindcli[serve]` extra; the commands' light client is
`bindcli.embed.remote`, which imports only the wire format both ends share (`protocol`,
standard library alone).

Imports: bindcli._util, bindcli.errors, bindcli.modality, bindcli.vectors, bindcli.media,
bindcli.model, bindcli.embed, bindcli.windows.
"""
