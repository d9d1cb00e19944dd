"""The ``mlops`` command line: one subcommand per stage of the loop."""
