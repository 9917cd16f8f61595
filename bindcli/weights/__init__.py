"""Where the checkpoint lives, how it gets there, and what is recorded about it.

Upstream downloads to `.checkpoints/` under whatever directory you happen to be in and trusts
any file it finds there (`imagebind_model.imagebind_huge`). Here the file lives in one
per-user cache, arrives through a locked, resumable download into `<name>.part`, and gets a
record beside it (`<name>.json`: size, SHA-256, source) that `verify` checks again later.
Where a config's weights are published is `bindcli.model.pretrained`'s registry, or a JSON
config's own `"weights"`; `verify` checks a published checkpoint against the published hash
too, so a corrupted file that was never recorded does not pass. Nothing here imports torch,
so resolving a path stays cheap, and nothing draws: progress goes to a callback, and so do
messages (to stderr unless one is given), for the CLI to show them.

`source` finds the file, `fetch` downloads it, `records` records and verifies it.

Imports: bindcli._util, bindcli.errors, bindcli.model.config, bindcli.model.pretrained (the
registry of published weights; no torch).
"""

from bindcli.weights.fetch import Notify, download, resolve
from bindcli.weights.records import (
    VERIFIED_SOURCE,
    Verification,
    against,
    identifies,
    read_record,
    record_path,
    record_verified,
    reference,
    verify,
    write_record,
)
from bindcli.weights.source import (
    DEFAULT_CONFIG,
    Config,
    Source,
    cached_path,
    existing,
    find,
    named_path,
    offline_var,
    published,
    weights_url,
)

__all__ = [
    "DEFAULT_CONFIG", "VERIFIED_SOURCE", "Config", "Notify", "Source", "Verification", "against", "cached_path",
    "download", "existing", "find", "identifies", "named_path", "offline_var", "published", "read_record",
    "record_path", "record_verified", "reference", "resolve", "verify", "weights_url", "write_record",
]
