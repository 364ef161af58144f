"""The `kdcvg` command: knowledge-base administration and analysts' Cypher.

Every command reads the settings (kdcvg.config), opens the configured store, and turns our
errors into one clear line on stderr with a non-zero exit code.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cli.common import fail, handled_errors, opened_store, out, settings
from cli.generation import generate, generation_app
from cli.retrieval import retrieval_app, retrieve
from cli.ui import ui_app

app = typer.Typer(help="KD-CVG: knowledge-driven creative video generation.", no_args_is_help=True, add_completion=False)
kb_app = typer.Typer(help="The Advertising Creative Knowledge Base (ACKB).", no_args_is_help=True)
app.add_typer(kb_app, name="kb")
@app.command("config")
def show_config() -> None:
    """Print the effective settings (password hidden)."""
    config = settings()
    values = config.model_dump(mode="json")
    if values.get("neo4j_password"):
        values["neo4j_password"] = "***"
    values["store_backend"] = config.store_backend
    out.print_json(json.dumps(values))


@kb_app.command("migrate")
def kb_migrate(status: Annotated[bool, typer.Option("--status", help="Only show which migrations are applied.")] = False) -> None:
    """Apply pending schema migrations (or show their status)."""
    from kb import migrate

    with opened_store(read_only=status, migrated=False) as store, handled_errors():
        if status:
            table = Table("version", "description", "state", "applied at")
            for s in migrate.status(store):
                table.add_row(f"V{s.version:04d}", s.description, s.state, s.applied_at or "")
            out.print(table)
            return
        applied = migrate.migrate(store)
        for migration in applied:
            out.print(f"applied V{migration.version:04d} {migration.description}")
        if not applied:
            out.print("schema is up to date")


@kb_app.command("import")
def kb_import(
    directory: Annotated[Path, typer.Argument(help="An ACKB directory (docs/ackb-format.md).")],
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Validate an ACKB directory completely, then load it in one transaction."""
    from kb.interchange import import_ackb
    from kb.media import MediaLimits

    config = settings()
    with opened_store() as store, handled_errors():
        report = import_ackb(
            store, directory, config.media_dir, progress=progress and sys.stderr.isatty(), media_limits=MediaLimits.from_settings(config)
        )
    table = Table("label / type", "created", "updated", "unchanged")
    for name in report.created:
        table.add_row(name, str(report.created[name]), str(report.updated[name]), str(report.unchanged[name]))
    out.print(table)
    out.print(f"media files copied: {report.media_copied}")


@kb_app.command("export")
def kb_export(
    directory: Annotated[Path, typer.Argument(help="Where to write; must be absent or empty.")],
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty directory.")] = False,
) -> None:
    """Write the whole ACKB in the interchange format."""
    from kb.interchange import export_ackb

    with opened_store() as store, handled_errors():
        counts = export_ackb(store, directory, settings().media_dir, overwrite=overwrite, progress=sys.stderr.isatty())
    out.print(f"exported {sum(counts.values())} rows to {directory}")


@kb_app.command("make-eval")
def kb_make_eval(
    directory: Annotated[Path, typer.Argument(help="Where to write the ACKB; must be absent or empty.")],
    products: Annotated[int, typer.Option(min=2, help="Products (about 5 selling points and 22 clips each).")] = 48,
    seed: Annotated[int, typer.Option(min=0, help="Seed; seeds of different parity share no selling-point text or caption.")] = 0,
) -> None:
    """Write a realistic evaluation ACKB (recurring claims in many wordings, clips that show them in other words; no media)."""
    from kb.eval_ackb import make_eval_ackb

    with handled_errors():
        report = make_eval_ackb(directory, products=products, seed=seed)
    counts, overlap = report["counts"], report["token_overlap"]
    print(f"wrote {directory}: " + ", ".join(f"{counts[name]} {name}" for name in ("Product", "SellingPoint", "CreativeClip", "ILLUSTRATES", "SAME_CLAIM")))
    print(
        f"token overlap of {overlap['pairs']} approved (clip, selling point) pairs: mean share of claim words in the caption "
        f"{overlap['mean_overlap']:.3f}; pairs sharing any word {overlap['pairs_sharing_a_token']:.3f}"
    )
    print(f"next: kdcvg kb import {directory}   or   kdcvg retrieval eval --protocol cold-start {directory}")


@kb_app.command("stats")
def kb_stats(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Node counts per label and relationship counts per type."""
    from kb.stats import ackb_stats

    with opened_store(read_only=True) as store, handled_errors():
        stats = ackb_stats(store)
    if as_json:
        print(json.dumps(stats, indent=2))
        return
    table = Table("kind", "name", "count", title=f"ACKB on {stats['backend']} (schema V{stats['schema_version'] or 0:04d})")
    for label, count in stats["nodes"].items():
        table.add_row("node", label, str(count))
    for type_, count in stats["relationships"].items():
        table.add_row("relationship", type_, str(count))
    out.print(table)


@kb_app.command("demo")
def kb_demo(
    rebuild: Annotated[bool, typer.Option(help="Render the demo clips again even if a build exists.")] = False,
    workers: Annotated[int, typer.Option(min=1, help="Processes rendering clips.")] = 2,
    products: Annotated[str | None, typer.Option(help="Only these products (comma-separated keys), for a quick look.")] = None,
    clips_per_product: Annotated[int | None, typer.Option(min=1, max=25, help="Only the first N clips of each product.")] = None,
) -> None:
    """Build the demo ACKB (real rendered clips, measured motion), migrate the store and import it."""
    import shutil

    from kb import migrate
    from kb.demo.build import build_demo_ackb
    from kb.interchange import import_ackb
    from kb.media import MediaLimits
    from kb.stats import ackb_stats

    config = settings()
    demo_dir = config.data_dir / "demo-ackb"
    if rebuild:
        shutil.rmtree(demo_dir, ignore_errors=True)
    out.print(f"demo ACKB: {demo_dir}")
    with handled_errors():
        build_demo_ackb(
            demo_dir,
            workers=workers,
            progress=sys.stderr.isatty(),
            products=products.split(",") if products else None,
            limit_clips_per_product=clips_per_product,
        )
    with opened_store(migrated=False) as store, handled_errors():
        for migration in migrate.migrate(store):
            out.print(f"applied migration V{migration.version:04d} {migration.description}")
        report = import_ackb(store, demo_dir, config.media_dir, progress=sys.stderr.isatty(), media_limits=MediaLimits.from_settings(config))
        stats = ackb_stats(store)
    created = sum(report.created.values())
    print(f"imported: {created} new, {sum(report.updated.values())} updated, {sum(report.unchanged.values())} unchanged rows")
    print(
        f"the ACKB ({stats['backend']}, {config.ladybug_path if stats['backend'] == 'ladybug' else config.neo4j_uri}) holds "
        f"{stats['total_nodes']} nodes and {stats['total_relationships']} relationships."
    )
    print(
        "next (after `. .venv/bin/activate`):\n"
        "  kdcvg kb stats\n"
        "  kdcvg cypher \"MATCH (p:Product)-[:HAS_SELLING_POINT]->(s:SellingPoint) RETURN p.name, s.text LIMIT 10\"\n"
        "  kdcvg cypher \"MATCH (c:CreativeClip)-[:HAS_MOTION]->(m:Motion) RETURN m.name, count(c) AS clips, "
        "avg(c.motion_divergence) AS divergence ORDER BY m.name\"\n"
        f"  kdcvg kb export /tmp/ackb-export      (clip videos are under {config.media_dir})"
    )


@app.command("cypher")
def cypher(
    query: Annotated[str | None, typer.Argument(help="A read-only Cypher statement.")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Read the statement from a file.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE (VALUE parsed as JSON if it can be).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print rows as JSON objects.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    timeout: Annotated[float | None, typer.Option(min=0.001, help="Seconds before the query is cancelled.")] = None,
) -> None:
    """Run an analyst's read-only Cypher query (checked, then run in a limited worker) and print the result."""
    from kb.query_worker import run_analyst_query
    from kb.store import ReadOnlyError

    if (query is None) == (file is None):
        fail("give a query or --file, not both and not neither", 2)
    if as_json and as_csv:
        fail("choose one of --json and --csv", 2)
    if file is not None:
        if not file.is_file():
            fail(f"no such file: {file}", 2)
        query = file.read_text(encoding="utf-8")
    assert query is not None
    params: dict[str, Any] = {}
    for item in param or []:
        name, sep, raw = item.partition("=")
        if not sep or not name.isidentifier():
            fail(f"--param {item!r}: expected NAME=VALUE", 2)
        try:
            params[name] = json.loads(raw)
        except json.JSONDecodeError:
            params[name] = raw
    config = settings()
    with handled_errors():
        try:
            result = run_analyst_query(config, query, params, timeout or config.query_timeout_s)
        except ReadOnlyError as exc:
            fail(f"refused: {exc}", 2)
    if as_json:
        print(json.dumps([dict(zip(result.columns, row)) for row in result.rows], ensure_ascii=False, indent=2))
    elif as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        for row in result.rows:
            writer.writerow([json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v for v in row])
    else:
        table = Table(*result.columns)
        for row in result.rows:
            table.add_row(*(json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else str(v) for v in row))
        out.print(table)
        out.print(f"{len(result.rows)} row(s)")


app.add_typer(retrieval_app, name="retrieval")
app.add_typer(ui_app, name="ui")
app.command("retrieve")(retrieve)
app.command("generate")(generate)
app.add_typer(generation_app, name="generation")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
