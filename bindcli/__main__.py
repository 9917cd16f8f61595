"""`python -m bindcli`: the `bind` command without the console script (no shell completion).

Imports: bindcli.cli.
"""

from bindcli.cli.app import main

main()
