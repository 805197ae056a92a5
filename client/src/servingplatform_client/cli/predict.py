"""`sp predict`, `sp explain`, `sp jobs ...` (async and batch jobs)."""

from __future__ import annotations

import argparse

from servingplatform_client.cli.builder import Builder, input_options, wait_options
from servingplatform_client.cli.inputs import json_option, read_input
from servingplatform_client.cli.output import Output, job_line, show_prediction
from servingplatform_client.client import Client


def cmd_predict(client: Client, args: argparse.Namespace, out: Output) -> None:
    inputs, parameters = read_input(args.input, rows=args.rows)
    parameters = json_option(args.parameters, "--parameters") or parameters
    answer = client.predict(args.endpoint, inputs, parameters=parameters)
    out.result(answer, lambda a: show_prediction(out, a))


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
        out.result(job, lambda j: out.line(job_line(j)), lambda j: show_prediction(out, j["result"]))
    else:
        out.result(job, lambda j: out.line(f"{j['job_id']}: {j['status']}"))


def cmd_jobs_show(client: Client, args: argparse.Namespace, out: Output) -> None:
    out.result(client.get_job(args.job_id), lambda j: out.line(job_line(j)))


def cmd_jobs_wait(client: Client, args: argparse.Namespace, out: Output) -> None:
    job = client.wait_job(args.job_id, timeout=args.timeout)
    out.result(job, lambda j: out.line(job_line(j)), lambda j: show_prediction(out, j["result"]))


def cmd_jobs_list(client: Client, args: argparse.Namespace, out: Output) -> None:
    out.listing(client.list_jobs(status=args.status, endpoint=args.endpoint, limit=args.limit),
                {"job": "job_id", "status": "status", "endpoint": "endpoint", "rows": "rows", "created": "created_at",
                 "error": lambda j: (j["error"] or {}).get("message")}, empty="no jobs")


def cmd_jobs_cancel(client: Client, args: argparse.Namespace, out: Output) -> None:
    out.result(client.cancel_job(args.job_id), lambda j: out.line(job_line(j)))


def cmd_batch_submit(client: Client, args: argparse.Namespace, out: Output) -> None:
    job = client.batch_job(args.file, args.endpoint, output=args.output, wait=args.wait or bool(args.output),
                           timeout=args.timeout, priority=args.priority)
    out.result(job, lambda j: out.line(job_line(j)))
    if args.output and not out.as_json:
        out.line(f"predictions written to {args.output}")


def cmd_batch_show(client: Client, args: argparse.Namespace, out: Output) -> None:
    out.result(client.get_batch_job(args.job_id), lambda j: out.line(job_line(j)))


def cmd_batch_list(client: Client, args: argparse.Namespace, out: Output) -> None:
    out.listing(client.list_batch_jobs(status=args.status, endpoint=args.endpoint, limit=args.limit),
                {"job": "id", "status": "status", "endpoint": "endpoint", "rows done": "rows_done",
                 "rows failed": "rows_failed", "total": "total_rows", "created": "created_at"}, empty="no batch jobs")


def cmd_batch_cancel(client: Client, args: argparse.Namespace, out: Output) -> None:
    out.result(client.cancel_batch_job(args.job_id), lambda j: out.line(job_line(j)))


def cmd_batch_result(client: Client, args: argparse.Namespace, out: Output) -> None:
    path = client.download_batch_result(args.job_id, args.output)
    out.result({"job_id": args.job_id, "output": str(path)}, lambda r: out.line(f"written to {r['output']}"))


def add_predict_commands(build: Builder) -> None:
    predict = build.command(build.commands, "predict", cmd_predict, "predict the rows of a file")
    predict.add_argument("endpoint")
    input_options(predict)
    predict.add_argument("--parameters", metavar="JSON", help='e.g. \'{"cache": false}\'')
    explain = build.command(build.commands, "explain", cmd_explain, "per-feature importances of the rows of a file")
    explain.add_argument("endpoint")
    input_options(explain)
    explain.add_argument("--parameters", metavar="JSON", help='e.g. \'{"baseline": [0, 0, 0]}\'')


def add_job_commands(build: Builder) -> None:
    jobs = build.group("jobs", "async prediction jobs and offline batch jobs")
    submit = build.command(jobs, "submit", cmd_jobs_submit, "queue an async prediction")
    submit.add_argument("endpoint")
    input_options(submit)
    submit.add_argument("--priority", choices=["high", "normal", "low"])
    submit.add_argument("--idempotency-key")
    wait_options(submit, default_timeout=300)
    for name, handler, help_text in (("show", cmd_jobs_show, "one async job"),
                                     ("cancel", cmd_jobs_cancel, "cancel a queued async job"),
                                     ("wait", cmd_jobs_wait, "wait for an async job and show its result")):
        sub = build.command(jobs, name, handler, help_text)
        sub.add_argument("job_id")
        if name == "wait":
            sub.add_argument("--timeout", type=float, default=300.0)
    for name, handler, help_text in (("list", cmd_jobs_list, "async jobs, newest first"),
                                     ("batch-list", cmd_batch_list, "batch jobs, newest first")):
        sub = build.command(jobs, name, handler, help_text)
        sub.add_argument("--status")
        sub.add_argument("--endpoint")
        sub.add_argument("--limit", type=int)
    batch = build.command(jobs, "batch", cmd_batch_submit, "score a CSV or JSON Lines file offline")
    batch.add_argument("file")
    batch.add_argument("--endpoint", required=True)
    batch.add_argument("--output", metavar="FILE", help="download the predictions here (implies --wait)")
    batch.add_argument("--priority", choices=["high", "normal", "low"])
    wait_options(batch, default_timeout=3600)
    for name, handler, help_text in (("batch-show", cmd_batch_show, "one batch job"),
                                     ("batch-cancel", cmd_batch_cancel, "cancel a batch job")):
        build.command(jobs, name, handler, help_text).add_argument("job_id")
    result = build.command(jobs, "batch-result", cmd_batch_result, "download a batch job's predictions")
    result.add_argument("job_id")
    result.add_argument("--output", required=True, metavar="FILE")
