"""The ``newllm`` command line: one module per subcommand, registered in :mod:`newllm.cli.main`."""
