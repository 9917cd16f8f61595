"""The model: configs as data (`config`, `pretrained`), the six towers (`towers`, `layers`,
`imagebind`), checkpoints read into them (`checkpoint`, `factory`), int8 (`quantize`) and where
they run (`placement`).

Imports: bindcli._util, bindcli.errors, bindcli.modality, bindcli.weights (the records beside
checkpoints).
"""
