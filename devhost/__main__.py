"""Command line of the local host: `python -m devhost --help`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .host import Options, run


def parse_args(argv: list[str] | None = None) -> Options:
    """Options from the command line (port default: local.settings.json Host, else 7071)."""
    parser = argparse.ArgumentParser(
        prog="python -m devhost", description="Run function_app.py like the Functions host."
    )
    parser.add_argument("--script", default="function_app.py", help="the app's function_app.py")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="HTTP port (default 7071)")
    parser.add_argument(
        "--with-azurite",
        action="store_true",
        help="start Azurite on 10000-10002 when storage is the development account",
    )
    args = parser.parse_args(argv)
    return Options(Path(args.script), args.host, args.port, args.with_azurite)


if __name__ == "__main__":
    sys.exit(run(parse_args()))
