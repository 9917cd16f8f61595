"""Small things every layer of bind shares and none owns: content hashes (`hashing`), what a
path names and how to print it (`paths`), bind's own folders (`folders`), files written
atomically (`atomic`), the machine formats (`formats`), work in bounded pieces (`chunks`),
the optional extras and how to install them (`extras`), and the two errors these raise
(`failure`, taken from `bindcli.errors` by everyone else).

Private to bind (the underscore): modules here know nothing of models, media or collections,
so anything may import them without pulling in more.

Imports: nothing of bindcli.
"""
