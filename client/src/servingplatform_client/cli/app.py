"""`sp`: the parser, the exit codes, and main()."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from servingplatform_client import __version__
from servingplatform_client.cli.builder import Builder
from servingplatform_client.cli.inputs import UsageError
from servingplatform_client.cli.output import Output
from servingplatform_client.cli.predict import add_job_commands, add_predict_commands
from servingplatform_client.cli.registry import add_deployment_commands, add_model_commands
from servingplatform_client.client import Client
from servingplatform_client.errors import (
    AuthenticationError,
    ClientError,
    ConnectionFailedError,
    NotFoundError,
    OperationFailedError,
    PermissionDeniedError,
    ServerError,
    ServingPlatformError,
    WaitTimeoutError,
)

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_CONNECTION, EXIT_AUTH = 0, 1, 2, 3, 4
EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_SERVER, EXIT_FAILED, EXIT_TIMEOUT = 5, 6, 7, 8, 9
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_ERROR: "unexpected error in sp itself",
    EXIT_USAGE: "bad arguments or an unreadable input file (nothing was sent)",
    EXIT_CONNECTION: "the server could not be reached or did not answer in time",
    EXIT_AUTH: "missing or invalid API key (401), or its scope does not allow this (403)",
    EXIT_NOT_FOUND: "no such model, version, endpoint or job (404)",
    EXIT_REFUSED: "the server refused the request: invalid input, conflict, too large, throttled (other 4xx)",
    EXIT_SERVER: "the server failed or is unavailable, after retries (5xx)",
    EXIT_FAILED: "what was waited for failed: validation, deployment or job",
    EXIT_TIMEOUT: "a --wait ran out of time (the operation may still finish)",
}


def cmd_health(client: Client, args: argparse.Namespace, out: Output) -> None:
    out.result(client.health(), lambda h: out.line(json.dumps(h)))


def common_options() -> argparse.ArgumentParser:
    # SUPPRESS: given before or after the command, an option keeps its value (a subparser's default
    # would otherwise overwrite what was given before the command).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help="server address (default: $SERVINGPLATFORM_URL, "
                                                                 "else http://127.0.0.1:8000)")
    common.add_argument("--api-key", default=argparse.SUPPRESS, help="default: $SERVINGPLATFORM_API_KEY")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print the API's JSON (errors too) instead of tables")
    common.add_argument("--progress", action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                        help="progress bars on stderr (default: when stderr is a terminal)")
    common.add_argument("--request-timeout", type=float, default=argparse.SUPPRESS, metavar="S",
                        help="seconds one HTTP request may take (default 60)")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    epilog = "exit codes:\n" + "\n".join(f"  {code}  {meaning}" for code, meaning in EXIT_CODES.items())
    parser = argparse.ArgumentParser(prog="sp", parents=[common], epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="Register models, deploy them and predict on a Serving Platform.")
    parser.add_argument("--version", action="version", version=f"sp {__version__}")
    build = Builder(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), common)
    add_model_commands(build)
    add_deployment_commands(build)
    add_predict_commands(build)
    add_job_commands(build)
    build.command(build.commands, "health", cmd_health, "is the platform ready (database, Redis, model server)")
    return parser


def exit_code(error: ServingPlatformError) -> int:
    if isinstance(error, ConnectionFailedError):
        return EXIT_CONNECTION
    if isinstance(error, (AuthenticationError, PermissionDeniedError)):
        return EXIT_AUTH
    if isinstance(error, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(error, ClientError):
        return EXIT_REFUSED
    if isinstance(error, ServerError):
        return EXIT_SERVER
    if isinstance(error, OperationFailedError):
        return EXIT_FAILED
    if isinstance(error, WaitTimeoutError):
        return EXIT_TIMEOUT
    return EXIT_ERROR


def report(error: ServingPlatformError, as_json: bool) -> None:
    if as_json:
        body = {"status": error.status, "code": error.code, "message": error.message, "details": error.details}
        sys.stdout.write(json.dumps({"error": body}, indent=2, default=str) + "\n")
    sys.stderr.write(f"sp: error: {error}\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    as_json = getattr(args, "json", False)
    out = Output(as_json)
    try:
        with Client(getattr(args, "url", None), getattr(args, "api_key", None),
                    timeout=getattr(args, "request_timeout", 60.0),
                    progress=False if as_json else getattr(args, "progress", None)) as client:
            args.handler(client, args, out)
    except UsageError as exc:
        sys.stderr.write(f"sp: error: {exc}\n")
        return EXIT_USAGE
    except (ValueError, FileNotFoundError) as exc:  # refused by the client before sending
        sys.stderr.write(f"sp: error: {exc}\n")
        return EXIT_USAGE
    except ServingPlatformError as exc:
        report(exc, as_json)
        return exit_code(exc)
    except KeyboardInterrupt:
        sys.stderr.write("sp: interrupted\n")
        return 130
    return EXIT_OK
