"""``python -m aceorch``: the ``aceorch`` command line (:mod:`aceorch.cli`)."""

from aceorch.cli import main

main()
