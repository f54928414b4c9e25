"""``python -m evobench`` is the ``evobench`` command."""

from evobench.cli import main

main()
