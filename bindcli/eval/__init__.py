"""`bind eval`: zero-shot accuracy on labelled data (`accuracy`), the paper's datasets in
their release layouts (`presets`, converted once by `_convert` where they cannot be read as
they are) and the confusion matrix as a file (`confusion`); retrieval figures both ways
(`retrieval`) and the paper's retrieval benchmarks (`retrieval_presets`); the CSV/TSV tables
both read (`tables`, which `bind score` reads too); `data/` holds the class names and
templates the presets read.

Imports: bindcli._util, bindcli.errors, bindcli.modality, bindcli.vectors, bindcli.embed,
bindcli.media, bindcli.zeroshot.
"""
