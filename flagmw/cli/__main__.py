"""``python -m flagmw.cli``: the ``flagmw`` command."""

from flagmw.cli.app import main

main()
