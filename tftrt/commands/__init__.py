"""The ``tftrt`` subcommands, one module each: ``add_parser(subparsers)`` declares the
command and its flags, ``run(args)`` does it (``tftrt.cli`` dispatches and turns a
user's mistake into one line on stderr)."""
