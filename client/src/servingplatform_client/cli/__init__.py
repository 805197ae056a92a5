"""`sp`: the Serving Platform from a shell.

Human output on stdout (tables, summaries) with progress bars on stderr in a terminal; `--json` prints the
API's JSON instead (errors too, as `{"error": {...}}`). The exit code says what failed (see EXIT_CODES).
Commands by group: registry.py (models, deployments), predict.py (predictions, jobs); app.py puts them
together.
"""

from servingplatform_client.cli.app import EXIT_CODES, build_parser, exit_code, main

__all__ = ["EXIT_CODES", "build_parser", "exit_code", "main"]
