"""The `lnm-node` command line (typer + rich). Entry points are thin: parse, build settings, call."""
