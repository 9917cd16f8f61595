"""`bind tune`: adapting one tower to a user's data while the anchor's tower stays frozen.

`data` reads what to learn (class folders, or pairs of files against images or texts) and
draws the held-out split; `train` runs the training (the head map or low-rank updates of
`bindcli.model.tuning`, symmetric InfoNCE against the frozen side's vectors from bind's
cache), checkpointing each epoch so a killed run resumes, and writes the adapter; `report`
measures before and after with `bind eval`'s protocol. Progress reaches the caller through
callbacks: nothing here prints.

Imports: bindcli._util, bindcli.errors, bindcli.modality, bindcli.vectors, bindcli.embed,
bindcli.media, bindcli.model, bindcli.eval, bindcli.zeroshot.
"""
