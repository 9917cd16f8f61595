"""`bind serve`: one warm embedder behind an HTTP API (`app`), with batching across requests
(`batching`), its limits (`limits`), counters (`metrics`) and the sockets and signals of the
process (`server`). Requests are read by `inputs` and answered through `answers`; the APIs of
other programs live beside bind's own: OpenAI's and the clients of its shape (`openai`, with
token ids decoded by `tokens` and URL inputs fetched by `urls`) and Weaviate's inference
container (`weaviate`). Needs the `bindcli[serve]` extra; the commands' light client is
`bindcli.embed.remote`, which imports only the wire format both ends share (`protocol`,
standard library alone). `ui` is the page of `bind serve --ui` over a collection file (its
files in `static/`), `thumbs` the thumbnails it shows.

Imports: bindcli._util, bindcli.errors, bindcli.modality, bindcli.vectors, bindcli.media,
bindcli.model, bindcli.embed, bindcli.windows, bindcli.collections and bindcli.zeroshot (the
page's search and labels).
"""
