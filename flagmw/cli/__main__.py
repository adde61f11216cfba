"""``python -m flagmw.cli``: the ``flagmw`` command."""

from flagmw.cli.entry import main

main()
