"""What the report's sections share: HTML escaping, tables, and a stage's latest run."""

from __future__ import annotations

import html

from pyspark.sql import functions as F

from instructlake.store import Store


def esc(x) -> str:
    return html.escape(str(x))


def table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f'<td class="num">{v:,}</td>' if isinstance(v, int) else
        f'<td class="num">{v:.4g}</td>' if isinstance(v, float) else f"<td>{esc(v)}</td>" for v in r) + "</tr>"
        for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def latest_run(store: Store, stage: str) -> list:
    """[the stage's latest successful run record], or [] (stages run outside the CLI record none)."""
    if not store.exists("runs"):
        return []
    return (store.read("runs").filter((F.col("stage") == stage) & (F.col("status") == "ok"))
            .orderBy(F.desc("finished_at")).limit(1).collect())


def of_latest_run(store: Store, stage: str, df):
    """df's rows written under the config hash of the stage's latest run (all rows when it has none)."""
    latest = latest_run(store, stage)
    return df.filter(F.col("config_hash") == latest[0]["config_hash"]) if latest else df
