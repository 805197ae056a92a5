"""`sp models ...`, `sp deployments ...`, `sp deploy`, `sp undeploy`."""

from __future__ import annotations

import argparse

from servingplatform_client.cli.builder import Builder, wait_options
from servingplatform_client.cli.inputs import json_option, knob_values, read_input
from servingplatform_client.cli.output import Output, aliases_text, deployment_line, version_line
from servingplatform_client.client import Client


def cmd_models_list(client: Client, args: argparse.Namespace, out: Output) -> None:
    models = client.list_models(task=args.task, tag=args.tag, name=args.name)
    out.listing(models, {"name": "name", "task": "task", "latest": "latest_version", "aliases": aliases_text,
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
        out.result(client.get_version(args.name, args.version), lambda v: out.line(version_line(v)))


def cmd_models_register(client: Client, args: argparse.Namespace, out: Output) -> None:
    example = read_input(args.input_example)[0] if args.input_example else None
    options = {"signature": json_option(args.signature, "--signature"),
               "metrics": json_option(args.metrics, "--metrics"), "tags": json_option(args.tags, "--tags")}
    version = client.register_model(args.path, args.name, flavor=args.flavor, input_example=example,
                                     description=args.description, alias=args.alias, wait=args.wait,
                                     timeout=args.timeout, task=args.task, **options)
    out.result(version, lambda v: out.line(version_line(v)), lambda v: out.line(str(v["version"])))


def cmd_models_alias(client: Client, args: argparse.Namespace, out: Output) -> None:
    moved = client.set_alias(args.name, args.alias, args.version)
    out.result(moved, lambda a: out.line(f"{a['model']}@{a['alias']} -> v{a['version']}"))


def cmd_deployments_list(client: Client, args: argparse.Namespace, out: Output) -> None:
    out.listing(client.list_deployments(include_stopped=args.all),
                {name: name for name in ("endpoint", "model", "version", "alias", "status", "replicas")}
                | {"reason": "status_reason"}, empty="no deployments")


def cmd_deployments_show(client: Client, args: argparse.Namespace, out: Output) -> None:
    out.result(client.get_deployment(args.endpoint), lambda d: out.line(deployment_line(d)))


def cmd_deploy(client: Client, args: argparse.Namespace, out: Output) -> None:
    knobs = knob_values(args.set)
    for name in ("replicas", "max_batch_size", "device"):
        if getattr(args, name) is not None:
            knobs[name] = getattr(args, name)
    if args.follow_alias:
        knobs["follow_alias"] = True
    deployment = client.deploy(args.endpoint, model=args.model, version=args.version, alias=args.alias,
                               wait=args.wait, timeout=args.timeout, **knobs)
    out.result(deployment, lambda d: out.line(deployment_line(d)))


def cmd_undeploy(client: Client, args: argparse.Namespace, out: Output) -> None:
    out.result(client.undeploy(args.endpoint), lambda d: out.line(deployment_line(d)))


def add_model_commands(build: Builder) -> None:
    models = build.group("models", "the model registry")
    listing = build.command(models, "list", cmd_models_list, "list registered models")
    listing.add_argument("--task")
    listing.add_argument("--tag", help="'key' or 'key:value'")
    listing.add_argument("--name", help="names containing this")
    show = build.command(models, "show", cmd_models_show,
                         "a model with its versions, or one version (number or alias)")
    show.add_argument("name")
    show.add_argument("version", nargs="?")
    register = build.command(models, "register", cmd_models_register,
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
    wait_options(register, default_timeout=300)
    alias = build.command(models, "alias", cmd_models_alias, "point an alias at a version")
    alias.add_argument("name")
    alias.add_argument("alias")
    alias.add_argument("version", type=int)


def add_deployment_commands(build: Builder) -> None:
    deployments = build.group("deployments", "deployments (see also: sp deploy, sp undeploy)")
    listing = build.command(deployments, "list", cmd_deployments_list, "list live deployments")
    listing.add_argument("--all", action="store_true", help="stopped ones too")
    show = build.command(deployments, "show", cmd_deployments_show, "one deployment")
    show.add_argument("endpoint")

    deploy = build.command(build.commands, "deploy", cmd_deploy,
                           "deploy a version at an endpoint (or move the endpoint to it)")
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
    wait_options(deploy, default_timeout=300)
    undeploy = build.command(build.commands, "undeploy", cmd_undeploy, "stop the deployment at an endpoint")
    undeploy.add_argument("endpoint")
