import sys
from pathlib import Path

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError
from inference.jobs import batch as batch_services
from inference.jobs import files
from inference.jobs import services as job_services
from inference.models import BatchJob, JobStatus

BAR_WIDTH = 30


class Command(BaseCommand):
    help = ("Score a CSV (header row of feature names) or JSON Lines file through a deployed endpoint, here and "
            "now, with a progress bar; the run is recorded as a batch job. Ctrl-C cancels and keeps the rows done.")

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--endpoint", required=True)
        parser.add_argument("--output", help="where to write the result (default: FILE.predictions.csv / .jsonl)")
        parser.add_argument("--format", dest="fmt", choices=["csv", "jsonl"],
                            help="default: from the file name or content")

    def handle(self, *args, file, endpoint, output, fmt, **options):
        source = Path(file)
        if not source.is_file():
            raise CommandError(f"{file}: no such file")
        job = self._create(source, endpoint, fmt)
        self.stderr.write(f"batch job {job.pk}: {job.total_rows} rows, chunks of {job.chunk_size}")
        job = self._run(job)
        self._bar(job, final=True)
        target = Path(output) if output else source.with_name(f"{source.stem}.predictions.{job.input_format}")
        if job.result_bytes:
            with open(target, "wb") as out:
                for data in files.result_chunks(job):
                    out.write(data)
        if job.status != JobStatus.SUCCEEDED:
            kept = f"; the {job.rows_done} rows done are in {target}" if job.result_bytes else ""
            raise CommandError(f"batch job {job.status}: {job.error or 'cancelled'}{kept}")
        self.stderr.write(f"{job.rows_done - job.rows_failed} rows predicted, {job.rows_failed} failed")
        self.stdout.write(str(target))

    def _create(self, source: Path, endpoint: str, fmt: str | None) -> BatchJob:
        submitter = job_services.Submitter(owner="command")
        try:
            with open(source, "rb") as handle:
                return batch_services.batch_job_create(endpoint=endpoint, upload=File(handle, name=source.name),
                                                     submitter=submitter, fmt=fmt, enqueue=False)
        except ApplicationError as exc:
            problems = "".join(f"\n  {problem}" for problem in exc.details.get("problems", [])[1:])
            raise CommandError(f"{exc.message}{problems}") from None

    def _run(self, job: BatchJob) -> BatchJob:
        claimed = batch_services.batch_job_claim(batch_id=job.pk)
        if claimed is None:
            raise CommandError("the batch job could not be started")
        try:
            return batch_services.batch_job_run(job=claimed, on_progress=self._bar)
        except KeyboardInterrupt:
            self.stderr.write("\ncancelling...")
            batch_services.batch_job_cancel(job=claimed)
            claimed.refresh_from_db()
            return claimed

    def _bar(self, job: BatchJob, final: bool = False) -> None:
        done = int(job.progress * BAR_WIDTH)
        line = (f"\r[{'#' * done}{'.' * (BAR_WIDTH - done)}] {job.rows_done}/{job.total_rows} rows "
                f"({job.progress:.0%}), {job.rows_failed} failed")
        self.stderr.write(line + ("\n" if final else ""), ending="")
        self.stderr.flush()
        sys.stderr.flush()
