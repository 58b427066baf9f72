"""The report's sections on curation: the quality filter's verdicts, PII and secrets scrubbed, the licenses
of the sources, and what the latest export shipped (its drops, licenses and the mix it drew)."""

from __future__ import annotations

from pyspark.sql import Window
from pyspark.sql import functions as F

from instructlake.counts import prefixed
from instructlake.report.parts import esc, latest_run, table
from instructlake.store import Store


def quality_section(store: Store, examples: int = 3) -> str:
    """The quality filter's verdicts: samples per failed criterion, languages, and a few examples of each
    reason so a reader can judge the thresholds."""
    if not store.exists("quality"):
        return ""
    q = store.read("quality")
    total = q.count()
    if not total:
        return ""
    from instructlake.quality.stage import criteria, top_languages

    failed = q.filter(~F.col("passed")).select("sample_id", "reasons", criteria().alias("criterion"))
    per = {r["criterion"]: int(r["count"]) for r in failed.groupBy("criterion").count().collect()}
    passed = q.filter("passed").count()
    parts = ["<h2>Quality filter</h2>",
             f"<p>{passed:,} of {total:,} judged samples passed; {total - passed:,} were filtered out (a "
             "sample can fail several criteria). Later stages and export leave them out.</p>",
             table(["criterion", "samples", "share of judged"],
                   [[k, v, f"{v / total:.1%}"] for k, v in sorted(per.items(), key=lambda kv: -kv[1])])]
    parts.append("<h3>Languages</h3>"
                 + table(["language", "samples"], [[lang, n] for lang, n in top_languages(q, 15)]))
    w = Window.partitionBy("criterion").orderBy("sample_id")
    shown = (failed.withColumn("_n", F.row_number().over(w)).filter(F.col("_n") <= examples)
             .join(store.read("samples").select("sample_id", "instruction"), "sample_id")
             .orderBy("criterion", "sample_id").collect())
    if shown:
        parts.append(f"<h3>Examples ({examples} per criterion)</h3>")
        parts.append(table(["criterion", "reasons", "instruction"],
                           [[r["criterion"], "; ".join(r["reasons"]), (r["instruction"] or "")[:200]]
                            for r in shown]))
    return "\n".join(parts)


def pii_section(store: Store, examples: int = 3) -> str:
    """What scrub found: values and samples per kind, and a few scrubbed passages per kind (the placeholder
    in its context, never the value) so a reader can judge what was taken out."""
    if not store.exists("pii"):
        return ""
    p = store.read("pii")
    total = p.count()
    if not total:
        return ""
    per = (p.select("sample_id", F.explode("counts").alias("kind", "n")).groupBy("kind")
           .agg(F.sum("n").alias("values"), F.count("*").alias("samples"))
           .orderBy(F.desc("values")).collect())
    hit = p.filter("found > 0").count()
    parts = ["<h2>PII and secrets</h2>",
             f"<p>{hit:,} of {total:,} checked samples hold e-mail addresses, phone numbers, IP addresses, "
             "card numbers or secrets; export ships them with typed placeholders, the samples table keeps "
             "the original.</p>",
             table(["kind", "values replaced", "samples"], [[r["kind"], int(r["values"]), int(r["samples"])]
                                                            for r in per])]
    # the first `examples` samples of each kind (by id), in one job, as the quality section picks its own
    text = F.concat_ws("\n", F.transform("conversation", lambda t: t["content"]))
    w = Window.partitionBy("kind").orderBy("sample_id")
    kinds = F.explode(F.map_keys("counts")).alias("kind")
    picked = (p.filter("found > 0").select("sample_id", text.alias("t"), kinds)
              .withColumn("_n", F.row_number().over(w)).filter(F.col("_n") <= examples)
              .orderBy("kind", "sample_id").collect())
    shown = []
    for r in per:
        tag = f"<{r['kind']}>"
        for row in (x for x in picked if x["kind"] == r["kind"]):
            at = (row["t"] or "").find(tag)
            if at >= 0:
                shown.append([r["kind"], row["t"][max(0, at - 80):at + len(tag) + 80]])
    if shown:
        parts.append(f"<h3>Scrubbed passages (up to {examples} per kind)</h3>"
                     + table(["kind", "passage as exported"], shown))
    return "\n".join(parts)


def licenses_section(store: Store, config) -> str:
    """Each source's license as export will resolve it (ingest --license, else the platform map)."""
    if config is None or not store.exists("samples"):
        return ""
    from instructlake import licenses

    recorded = licenses.recorded(store)
    per = store.read("samples").groupBy("source").count().orderBy("source").collect()
    rows = [[r["source"], licenses.source_license(r["source"], recorded, config.platform.licenses.sources),
             "ingest --license" if r["source"] in recorded else "platform map or unknown", int(r["count"])]
            for r in per if r["source"] != "synth"]
    return ("<h2>Licenses</h2>" + table(["source", "license", "from", "samples"], rows)
            + '<p class="muted">Synthesized samples carry their seeds\' licenses and their models\' terms; '
              "export --licenses and --commercial-only filter by them, and the export's manifest counts "
              "its rows per license.</p>")


def export_section(store: Store) -> str:
    """The latest export as its run record has it: rows shipped, rows left out and why, rows per license,
    and, when it was mixed to a budget, what each group had and what was drawn from it."""
    latest = latest_run(store, "export")
    if not latest:
        return ""
    c = dict(latest[0]["counts"] or {})
    why = [("duplicates", "duplicates_dropped"), ("failed the quality filter", "filtered_dropped"),
           ("benchmark contamination", "contaminated_dropped"),
           ("flagged under an earlier decontam config", "flagged_earlier_dropped"),
           ("outside the licenses asked for", "license_dropped"), ("not drawn by the mix", "mix_dropped")]
    parts = ["<h2>Export</h2>",
             f"<p>The latest export ({esc(str(latest[0]['finished_at'])[:19])} UTC) shipped "
             f"{c.get('exported', 0):,} rows.</p>",
             table(["left out", "rows"], [[label, c.get(key, 0)] for label, key in why])]
    lic = prefixed(c, "license.")
    if lic:
        parts.append("<h3>Rows per license</h3>" + table(["licenses (+: all of them apply)", "rows"],
                                                         [list(x) for x in lic]))
    drawn, available = dict(prefixed(c, "mix.drawn.")), dict(prefixed(c, "mix.available."))
    if available:
        rows = [[g, n, drawn.get(g, 0), f"{drawn.get(g, 0) / n:.0%}" if n else ""]
                for g, n in sorted(available.items(), key=lambda kv: (-drawn.get(kv[0], 0), kv[0]))]
        parts.append(f"<h3>Mix drawn (budget {c.get('mix_budget', 0):,} rows)</h3>"
                     + table(["group", "available", "drawn", "share drawn"], rows)
                     + '<p class="muted">export.mix: every group with a weight gets its minimum first, then '
                       "the rest of the budget goes out by weight; rows are drawn by a seeded hash of the "
                       "sample id, so the same config draws the same rows.</p>")
    return "\n".join(parts)
