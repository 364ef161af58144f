"""The `kdcvg` command line: the top layer, which loads the settings once and hands them down."""
