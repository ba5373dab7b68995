"""``python -m fireside.cli``: the same as the ``fireside`` command."""

from fireside.cli import main

main()
