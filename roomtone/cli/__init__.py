"""Command-line interface: ``roomtone <command>`` (see ``roomtone.cli.main``)."""
