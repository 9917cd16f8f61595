"""Small things every layer of bind shares and none owns: content hashes (`hashing`), what a
path names and how to print it (`paths`), and bind's own folders (`folders`).

Private to bind (the underscore): modules here know nothing of models, media or collections,
so anything may import them without pulling in more.

Imports: nothing of bindcli.
"""
