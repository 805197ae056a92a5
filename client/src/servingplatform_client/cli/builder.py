"""Building `sp`'s parser: each command group adds its commands through a Builder."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from servingplatform_client.cli.output import Output
from servingplatform_client.client import Client

Handler = Callable[[Client, argparse.Namespace, Output], None]


class Builder:
    def __init__(self, commands: Any, common: argparse.ArgumentParser) -> None:
        self.commands = commands  # the top level's subparsers
        self.common = common  # --url, --api-key, --json...: accepted before or after any command

    def command(self, group: Any, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(name, parents=[self.common], help=help_text,
                                                         description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    def group(self, name: str, help_text: str) -> Any:
        sub = self.commands.add_parser(name, parents=[self.common], help=help_text, description=help_text)
        return sub.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")


def wait_options(parser: argparse.ArgumentParser, *, default_timeout: float) -> None:
    parser.add_argument("--wait", action="store_true", help="wait until it finishes (with a progress bar)")
    parser.add_argument("--timeout", type=float, default=default_timeout, help=f"seconds to wait "
                                                                               f"(default {default_timeout:.0f})")


def input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, metavar="FILE",
                        help="CSV with a header row (sent as records), JSON (a body with 'inputs', or the inputs), "
                             "JSON Lines, or - for JSON on stdin")
    parser.add_argument("--rows", action="store_true", help="send CSV lines as rows of values, not records")
