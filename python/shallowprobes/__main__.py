"""``python -m shallowprobes ...``: the command line (see `shallowprobes.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
