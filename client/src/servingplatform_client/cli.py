"""`sp`: the Serving Platform from a shell.

Human output on stdout (tables, summaries) with progress bars on stderr in a terminal; `--json` prints the
API's JSON instead (errors too, as `{"error": {...}}`). The exit code says what failed (see EXIT_CODES).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from servingplatform_client import __version__
from servingplatform_client.client import JSON, Client
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

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_INTEGER = re.compile(r"^[+-]?\d+$")


class UsageError(Exception):
    """A bad argument or input file, reported before anything is sent."""


# --- reading input files ---------------------------------------------------------------------------

def _cell(text: str) -> Any:
    """A CSV cell as JSON: an empty cell is a missing value, numbers are numbers, the rest strings."""
    if text == "":
        return None
    if _INTEGER.match(text):
        return int(text)
    if _NUMBER.match(text):
        return float(text)
    return text


def read_csv(text: str, *, rows: bool) -> list[Any]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise UsageError("the CSV file is empty (it needs a header row of column names)")
    lines = [line for line in reader if line]
    if rows:
        return [[_cell(value) for value in line] for line in lines]
    for number, line in enumerate(lines, start=2):
        if len(line) != len(header):
            raise UsageError(f"CSV line {number} has {len(line)} values; the header has {len(header)}")
    return [dict(zip(header, map(_cell, line))) for line in lines]


def read_input(path: str, *, rows: bool = False) -> tuple[Any, JSON | None]:
    """(inputs, parameters) from a CSV (header row), JSON Lines or JSON file; '-' reads JSON from stdin.

    A JSON object with "inputs" is a request body (its "parameters" are used too); any other JSON is the inputs.
    """
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return read_csv(text, rows=rows), None
    try:
        if suffix in (".jsonl", ".ndjson"):
            return [json.loads(line) for line in text.splitlines() if line.strip()], None
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and "inputs" in data:
        return data["inputs"], data.get("parameters")
    return data, None


def json_option(value: str | None, name: str) -> Any:
    """A JSON option's value; `@FILE` reads it from a file."""
    if value is None:
        return None
    try:
        text = Path(value[1:]).read_text() if value.startswith("@") else value
        return json.loads(text)
    except OSError as exc:
        raise UsageError(f"{name}: cannot read {value[1:]}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{name}: not valid JSON ({exc})") from None


def knob_values(pairs: Sequence[str]) -> dict[str, Any]:
    knobs: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--set {pair}: expected NAME=VALUE, e.g. --set batch_timeout_ms=2")
        try:
            knobs[name.replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            knobs[name.replace("-", "_")] = raw
    return knobs


# --- output ----------------------------------------------------------------------------------------

class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.console = Console(soft_wrap=True, highlight=False, width=None if sys.stdout.isatty() else 160)

    def result(self, data: Any, *human: Callable[[Any], None]) -> None:
        """`data` as JSON, or shown by each of `human` in turn."""
        if self.as_json:
            sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
            return
        for show in human:
            show(data)

    def line(self, text: str) -> None:
        self.console.print(text, markup=False)

    def listing(self, items: list[JSON], columns: Mapping[str, str | Callable[[JSON], Any]], *, empty: str) -> None:
        """`items` as JSON, or as a table with one column per entry: header -> field name or function."""
        cells = [[column(item) if callable(column) else item.get(column) for column in columns.values()]
                 for item in items]
        self.result(items, lambda _: self.table(list(columns), cells, empty=empty))

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, empty: str) -> None:
        if not rows:
            self.line(empty)
            return
        table = Table(*columns, box=None, pad_edge=False, header_style="bold")
        for row in rows:
            table.add_row(*("" if value is None else str(value) for value in row))
        self.console.print(table)


def _aliases(model: JSON) -> str:
    return ", ".join(f"{a['name']}->v{a['version']}" for a in model.get("aliases", []))


def _version_line(version: JSON) -> str:
    reason = f" ({version['status_reason']})" if version.get("status_reason") else ""
    aliases = f" [{', '.join(version['aliases'])}]" if version.get("aliases") else ""
    return f"{version['model']} v{version['version']}: {version['status']}{reason}{aliases} " \
           f"{version['flavor']}/{version.get('format') or '?'} sha256 {str(version.get('sha256'))[:12]}"


def _deployment_line(deployment: JSON) -> str:
    reason = f" ({deployment['status_reason']})" if deployment.get("status_reason") else ""
    return f"{deployment['endpoint']}: {deployment['status']}{reason} -> {deployment['model']} v{deployment['version']}"


def _prediction_rows(answer: JSON) -> list[list[Any]]:
    probabilities = answer.get("probabilities") or []
    rows = []
    for index, prediction in enumerate(answer.get("predictions", [])):
        confidence = f"{max(probabilities[index]):.4f}" if index < len(probabilities) else None
        rows.append([index, json.dumps(prediction), confidence])
    return rows


def _show_prediction(out: Output, answer: JSON) -> None:
    out.line(f"{answer['endpoint']} -> {answer['model']} v{answer['version']}, {answer['latency_ms']:.1f} ms"
             f"{' (cached)' if answer.get('cached') else ''}, request {answer['request_id']}")
    out.table(["row", "prediction", "probability"], _prediction_rows(answer), empty="no rows")


def _job_line(job: JSON) -> str:
    error = f" ({job['error']['message']})" if job.get("error") else ""
    ident = job.get("job_id") or job.get("id")
    progress = f" {job['rows_done']}/{job['total_rows']} rows" if "rows_done" in job else ""
    return f"{ident}: {job['status']}{error} {job['endpoint']}{progress}"


# --- commands ----------------------------------------------------------------------------------------

def cmd_models_list(client: Client, args: argparse.Namespace, out: Output) -> None:
    models = client.list_models(task=args.task, tag=args.tag, name=args.name)
    out.listing(models, {"name": "name", "task": "task", "latest": "latest_version", "aliases": _aliases,
                         "description": lambda m: m["description"][:60]}, empty="no models")


def cmd_models_show(client: Client, args: argparse.Namespace, out: Output) -> None:
    if args.version is None:
        model = client.get_model(args.name)
        versions = client.list_versions(args.name)
        out.result({**model, "versions": versions},
                   lambda data: out.line(f"{data['name']} ({data['task']}) {data['description']}"),
                   lambda data: out.table(["version", "status", "flavor", "format", "aliases", "created"],
                                          [[v["version"], v["status"], v["flavor"], v["format"],
                                            ", ".join(v["aliases"]), v["created_at"]] for v in data["versions"]],
                                          empty="no versions"))
    else:
        out.result(client.get_version(args.name, args.version), lambda v: out.line(_version_line(v)))


def cmd_models_register(client: Client, args: argparse.Namespace, out: Output) -> None:
    example = read_input(args.input_example)[0] if args.input_example else None
    options = {"signature": json_option(args.signature, "--signature"),
               "metrics": json_option(args.metrics, "--metrics"), "tags": json_option(args.tags, "--tags")}
    version = client.register_model(args.path, args.name, flavor=args.flavor, input_example=example,
                                     description=args.description, alias=args.alias, wait=args.wait,
                                     timeout=args.timeout, task=args.task, **options)
    out.result(version, lambda v: out.line(_version_line(v)), lambda v: out.line(str(v["version"])))


def cmd_models_alias(client: Client, args: argparse.Namespace, out: Output) -> None:
    moved = client.set_alias(args.name, args.alias, args.version)
    out.result(moved, lambda a: out.line(f"{a['model']}@{a['alias']} -> v{a['version']}"))


def cmd_deployments_list(client: Client, args: argparse.Namespace, out: Output) -> None:
    out.listing(client.list_deployments(include_stopped=args.all),
                {name: name for name in ("endpoint", "model", "version", "alias", "status", "replicas")}
                | {"reason": "status_reason"}, empty="no deployments")


def cmd_deployments_show(client: Client, args: argparse.Namespace, out: Output) -> None:
    out.result(client.get_deployment(args.endpoint), lambda d: out.line(_deployment_line(d)))


def cmd_deploy(client: Client, args: argparse.Namespace, out: Output) -> None:
    knobs = knob_values(args.set)
    for name in ("replicas", "max_batch_size", "device"):
        if getattr(args, name) is not None:
            knobs[name] = getattr(args, name)
    if args.follow_alias:
        knobs["follow_alias"] = True
    deployment = client.deploy(args.endpoint, model=args.model, version=args.version, alias=args.alias,
                               wait=args.wait, timeout=args.timeout, **knobs)
    out.result(deployment, lambda d: out.line(_deployment_line(d)))


def cmd_undeploy(client: Client, args: argparse.Namespace, out: Output) -> None:
    out.result(client.undeploy(args.endpoint), lambda d: out.line(_deployment_line(d)))


def cmd_predict(client: Client, args: argparse.Namespace, out: Output) -> None:
    inputs, parameters = read_input(args.input, rows=args.rows)
    parameters = json_option(args.parameters, "--parameters") or parameters
    answer = client.predict(args.endpoint, inputs, parameters=parameters)
    out.result(answer, lambda a: _show_prediction(out, a))


def cmd_explain(client: Client, args: argparse.Namespace, out: Output) -> None:
    inputs, parameters = read_input(args.input, rows=args.rows)
    answer = client.explain(args.endpoint, inputs, parameters=json_option(args.parameters, "--parameters")
                            or parameters)
    names = answer.get("feature_names") or [f"[{i}]" for i in range(len(answer["importances"][0]))]
    out.result(answer, lambda a: out.table(["row", *names], [[i, *(f"{x:.4f}" for x in row)]
                                                             for i, row in enumerate(a["importances"])], empty=""))


def cmd_jobs_submit(client: Client, args: argparse.Namespace, out: Output) -> None:
    inputs, parameters = read_input(args.input, rows=args.rows)
    job = client.predict_async(args.endpoint, inputs, parameters=parameters, priority=args.priority,
                               idempotency_key=args.idempotency_key)
    if args.wait:
        job = client.wait_job(job["job_id"], timeout=args.timeout)
        out.result(job, lambda j: out.line(_job_line(j)), lambda j: _show_prediction(out, j["result"]))
    else:
        out.result(job, lambda j: out.line(f"{j['job_id']}: {j['status']}"))


def cmd_jobs_show(client: Client, args: argparse.Namespace, out: Output) -> None:
    out.result(client.get_job(args.job_id), lambda j: out.line(_job_line(j)))


def cmd_jobs_wait(client: Client, args: argparse.Namespace, out: Output) -> None:
    job = client.wait_job(args.job_id, timeout=args.timeout)
    out.result(job, lambda j: out.line(_job_line(j)), lambda j: _show_prediction(out, j["result"]))


def cmd_jobs_list(client: Client, args: argparse.Namespace, out: Output) -> None:
    out.listing(client.list_jobs(status=args.status, endpoint=args.endpoint, limit=args.limit),
                {"job": "job_id", "status": "status", "endpoint": "endpoint", "rows": "rows", "created": "created_at",
                 "error": lambda j: (j["error"] or {}).get("message")}, empty="no jobs")


def cmd_jobs_cancel(client: Client, args: argparse.Namespace, out: Output) -> None:
    out.result(client.cancel_job(args.job_id), lambda j: out.line(_job_line(j)))


def cmd_batch_submit(client: Client, args: argparse.Namespace, out: Output) -> None:
    job = client.batch_job(args.file, args.endpoint, output=args.output, wait=args.wait or bool(args.output),
                           timeout=args.timeout, priority=args.priority)
    out.result(job, lambda j: out.line(_job_line(j)))
    if args.output and not out.as_json:
        out.line(f"predictions written to {args.output}")


def cmd_batch_show(client: Client, args: argparse.Namespace, out: Output) -> None:
    out.result(client.get_batch_job(args.job_id), lambda j: out.line(_job_line(j)))


def cmd_batch_list(client: Client, args: argparse.Namespace, out: Output) -> None:
    out.listing(client.list_batch_jobs(status=args.status, endpoint=args.endpoint, limit=args.limit),
                {"job": "id", "status": "status", "endpoint": "endpoint", "rows done": "rows_done",
                 "rows failed": "rows_failed", "total": "total_rows", "created": "created_at"}, empty="no batch jobs")


def cmd_batch_cancel(client: Client, args: argparse.Namespace, out: Output) -> None:
    out.result(client.cancel_batch_job(args.job_id), lambda j: out.line(_job_line(j)))


def cmd_batch_result(client: Client, args: argparse.Namespace, out: Output) -> None:
    path = client.download_batch_result(args.job_id, args.output)
    out.result({"job_id": args.job_id, "output": str(path)}, lambda r: out.line(f"written to {r['output']}"))


def cmd_health(client: Client, args: argparse.Namespace, out: Output) -> None:
    out.result(client.health(), lambda h: out.line(json.dumps(h)))


# --- the parser --------------------------------------------------------------------------------------

def _common() -> argparse.ArgumentParser:
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


def _wait_options(parser: argparse.ArgumentParser, *, default_timeout: float) -> None:
    parser.add_argument("--wait", action="store_true", help="wait until it finishes (with a progress bar)")
    parser.add_argument("--timeout", type=float, default=default_timeout, help=f"seconds to wait "
                                                                               f"(default {default_timeout:.0f})")


def _input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, metavar="FILE",
                        help="CSV with a header row (sent as records), JSON (a body with 'inputs', or the inputs), "
                             "JSON Lines, or - for JSON on stdin")
    parser.add_argument("--rows", action="store_true", help="send CSV lines as rows of values, not records")


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    epilog = "exit codes:\n" + "\n".join(f"  {code}  {meaning}" for code, meaning in EXIT_CODES.items())
    parser = argparse.ArgumentParser(prog="sp", parents=[common], epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="Register models, deploy them and predict on a Serving Platform.")
    parser.add_argument("--version", action="version", version=f"sp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(group: Any, name: str, handler: Callable[..., None], help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(name, parents=[common], help=help_text,
                                                         description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    def group(name: str, help_text: str) -> Any:
        sub = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        return sub.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")

    models = group("models", "the model registry")
    listing = command(models, "list", cmd_models_list, "list registered models")
    listing.add_argument("--task")
    listing.add_argument("--tag", help="'key' or 'key:value'")
    listing.add_argument("--name", help="names containing this")
    show = command(models, "show", cmd_models_show, "a model with its versions, or one version (number or alias)")
    show.add_argument("name")
    show.add_argument("version", nargs="?")
    register = command(models, "register", cmd_models_register,
                       "upload an artifact as a new version (creating the model when missing)")
    register.add_argument("path", help="a saved artifact (skops, torch.export/TorchScript, XGBoost, LightGBM, ONNX)")
    register.add_argument("--name", required=True)
    register.add_argument("--flavor", choices=["sklearn", "torch", "xgboost", "lightgbm", "onnx"],
                          help="default: from the file's suffix (.skops, .pt2, .pt, .ubj, .onnx)")
    register.add_argument("--input-example", metavar="FILE",
                          help="a few input rows: CSV with a header, or JSON records")
    register.add_argument("--signature", metavar="JSON", help="JSON text, or @FILE")
    register.add_argument("--metrics", metavar="JSON", help='e.g. \'{"accuracy": 0.93}\' (or @FILE)')
    register.add_argument("--tags", metavar="JSON", help='e.g. \'{"git": "abc123"}\' (or @FILE)')
    register.add_argument("--description")
    register.add_argument("--task", choices=["classification", "regression", "scoring", "other"],
                          help="for a model created on the way (default: other)")
    register.add_argument("--alias", help="point this alias at the new version (after validation with --wait)")
    _wait_options(register, default_timeout=300)
    alias = command(models, "alias", cmd_models_alias, "point an alias at a version")
    alias.add_argument("name")
    alias.add_argument("alias")
    alias.add_argument("version", type=int)

    deployments = group("deployments", "deployments (see also: sp deploy, sp undeploy)")
    listing = command(deployments, "list", cmd_deployments_list, "list live deployments")
    listing.add_argument("--all", action="store_true", help="stopped ones too")
    show = command(deployments, "show", cmd_deployments_show, "one deployment")
    show.add_argument("endpoint")

    deploy = command(commands, "deploy", cmd_deploy, "deploy a version at an endpoint (or move the endpoint to it)")
    deploy.add_argument("endpoint")
    deploy.add_argument("--model", required=True)
    target = deploy.add_mutually_exclusive_group(required=True)
    target.add_argument("--version", type=int)
    target.add_argument("--alias")
    deploy.add_argument("--follow-alias", action="store_true", help="roll to the alias's version when it moves")
    deploy.add_argument("--replicas", type=int)
    deploy.add_argument("--max-batch-size", type=int)
    deploy.add_argument("--device", choices=["cpu", "cuda", "auto"])
    deploy.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="any other deployment field, e.g. --set batch_timeout_ms=2 (repeatable)")
    _wait_options(deploy, default_timeout=300)
    undeploy = command(commands, "undeploy", cmd_undeploy, "stop the deployment at an endpoint")
    undeploy.add_argument("endpoint")

    predict = command(commands, "predict", cmd_predict, "predict the rows of a file")
    predict.add_argument("endpoint")
    _input_options(predict)
    predict.add_argument("--parameters", metavar="JSON", help='e.g. \'{"cache": false}\'')
    explain = command(commands, "explain", cmd_explain, "per-feature importances of the rows of a file")
    explain.add_argument("endpoint")
    _input_options(explain)
    explain.add_argument("--parameters", metavar="JSON", help='e.g. \'{"baseline": [0, 0, 0]}\'')

    jobs = group("jobs", "async prediction jobs and offline batch jobs")
    submit = command(jobs, "submit", cmd_jobs_submit, "queue an async prediction")
    submit.add_argument("endpoint")
    _input_options(submit)
    submit.add_argument("--priority", choices=["high", "normal", "low"])
    submit.add_argument("--idempotency-key")
    _wait_options(submit, default_timeout=300)
    for name, handler, help_text in (("show", cmd_jobs_show, "one async job"),
                                     ("cancel", cmd_jobs_cancel, "cancel a queued async job"),
                                     ("wait", cmd_jobs_wait, "wait for an async job and show its result")):
        sub = command(jobs, name, handler, help_text)
        sub.add_argument("job_id")
        if name == "wait":
            sub.add_argument("--timeout", type=float, default=300.0)
    for name, handler, help_text in (("list", cmd_jobs_list, "async jobs, newest first"),
                                     ("batch-list", cmd_batch_list, "batch jobs, newest first")):
        sub = command(jobs, name, handler, help_text)
        sub.add_argument("--status")
        sub.add_argument("--endpoint")
        sub.add_argument("--limit", type=int)
    batch = command(jobs, "batch", cmd_batch_submit, "score a CSV or JSON Lines file offline")
    batch.add_argument("file")
    batch.add_argument("--endpoint", required=True)
    batch.add_argument("--output", metavar="FILE", help="download the predictions here (implies --wait)")
    batch.add_argument("--priority", choices=["high", "normal", "low"])
    _wait_options(batch, default_timeout=3600)
    for name, handler, help_text in (("batch-show", cmd_batch_show, "one batch job"),
                                     ("batch-cancel", cmd_batch_cancel, "cancel a batch job")):
        command(jobs, name, handler, help_text).add_argument("job_id")
    result = command(jobs, "batch-result", cmd_batch_result, "download a batch job's predictions")
    result.add_argument("job_id")
    result.add_argument("--output", required=True, metavar="FILE")

    command(commands, "health", cmd_health, "is the platform ready (database, Redis, model server)")
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


def _report(error: ServingPlatformError, as_json: bool) -> None:
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
        _report(exc, as_json)
        return exit_code(exc)
    except KeyboardInterrupt:
        sys.stderr.write("sp: interrupted\n")
        return 130
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
