"""``python -m cli``: the ``mlops`` command, where its console script is not on PATH."""

from cli.main import main

main()
