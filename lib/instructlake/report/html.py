"""One self-contained HTML report of the warehouse: <warehouse>/report/index.html.

Every stage's latest run (counts, seconds, config hash) from `runs`, then one section per analysis that
has run (the quality filter's verdicts, PII scrubbed and licenses: report/curation.py; the tag
co-occurrence graph and its power-law fits, loss scores and seeds, benchmark contamination, difficulty;
LLM tokens and their cost: report/llm_usage.py; the latest export, its licenses and mix). Pictures are
embedded as data URIs, so the page is one file that opens anywhere; the PNGs stay beside it too.
"""

from __future__ import annotations

import base64
import html
from datetime import datetime, timezone

from pyspark.sql import Window
from pyspark.sql import functions as F

from instructlake.report.curation import export_section, licenses_section, pii_section, quality_section
from instructlake.report.llm_usage import tokens_section
from instructlake.report.parts import esc, latest_run, of_latest_run, table
from instructlake.store import Store

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:left;vertical-align:top}th{background:#f4f4f4}.num{text-align:right;font-variant-numeric:tabular-nums}
figure{display:inline-block;margin:.5em 1em .5em 0}figcaption{font-size:.85em;color:#555}
img{max-width:100%;border:1px solid #eee}.muted{color:#777;font-size:.85em}
"""


def runs_section(store: Store) -> str:
    if not store.exists("runs"):
        return "<p>No stage has run yet.</p>"
    runs = store.read("runs")
    latest = (runs.withColumn("_n", F.row_number().over(Window.partitionBy("stage")
                                                        .orderBy(F.desc("finished_at"))))
              .filter("_n = 1").orderBy("finished_at").collect())
    rows = []
    for r in latest:
        counts = ", ".join(f"{k}={v:,}" for k, v in sorted((r["counts"] or {}).items()) if "." not in k)
        rows.append([r["stage"], r["status"], str(r["finished_at"])[:19], float(r["seconds"]),
                     r["config_hash"], counts])
    return table(["stage", "status", "finished (UTC)", "seconds", "config hash", "counts"], rows)


def _image(store: Store, name: str, caption: str) -> str:
    """A PNG a stage left in <warehouse>/report/, embedded ("" when it is not there)."""
    data = store.read_bytes(f"{store.warehouse}/report/{name}")
    return "" if data is None else _figure(data, name, caption)


def _figure(data: bytes, name: str, caption: str) -> str:
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    return (f'<figure><img src="{uri}" alt="{esc(caption)}">'
            f'<figcaption>{esc(caption)} ({esc(name)})</figcaption></figure>')


def graph_section(store: Store) -> str:
    from instructlake.graph.stage import PICTURES

    if not store.exists("powerlaw_fit") and not store.exists("tag_degrees"):
        return ""
    parts = ["<h2>Tag co-occurrence and power-law fits</h2>"]
    if store.exists("powerlaw_fit"):
        rows = []
        for r in store.read("powerlaw_fit").orderBy("target").collect():
            rows.append([r["target"], float(r["gamma"]), int(r["xmin"]), float(r["ks_d"]), int(r["n_tail"]),
                         int(r["n"]), "not computed" if r["p_value"] is None else float(r["p_value"]),
                         float(r["lognormal_r"]), float(r["lognormal_p"]), float(r["exponential_r"]),
                         float(r["exponential_p"]), r["verdict"]])
        parts.append(table(["fitted", "gamma", "xmin", "KS D", "tail", "n", "bootstrap p", "R vs lognormal",
                            "p", "R vs exponential", "p", "reading"], rows))
        parts.append('<p class="muted">Discrete power-law MLE with xmin by minimum KS distance (Clauset, '
                     "Shalizi and Newman 2009). R &gt; 0 favours the power law over the alternative; the "
                     "sign means something only when its p &lt; 0.1.</p>")
    if store.exists("tag_degrees"):
        top = store.read("tag_degrees").orderBy(F.desc("degree"), "tag").limit(15).collect()
        parts.append("<h3>Most connected tags</h3>")
        parts.append(table(["tag", "category", "samples", "degree", "weighted degree"],
                           [[r["tag"], r["category"] or "", int(r["frequency"]), int(r["degree"]),
                             int(r["weighted_degree"])] for r in top]))
    parts += [_image(store, name, caption) for name, caption in PICTURES.items()]
    return "\n".join(parts)


def _bins(df, col: str, n: int = 40) -> tuple[list[float], list[int], float, float]:
    """Histogram bins of a column counted in Spark (edges, counts, mean, std): no column is collected."""
    st = df.agg(F.min(col).alias("lo"), F.max(col).alias("hi"), F.mean(col).alias("m"),
                F.stddev_samp(col).alias("s")).first()
    lo, hi = float(st["lo"]), float(st["hi"])
    width = (hi - lo) / n or 1.0
    rows = (df.select(F.least(F.floor((F.col(col) - lo) / width), F.lit(n - 1)).alias("b"))
            .groupBy("b").count().collect())
    counts = [0] * n
    for r in rows:
        counts[int(r["b"])] = int(r["count"])
    return [lo + i * width for i in range(n + 1)], counts, float(st["m"]), float(st["s"] or 0.0)


def scores_section(store: Store) -> str:
    from instructlake.report import plots

    if not store.exists("scores"):
        return ""
    cols = {"loss_cond": "Response loss given the instruction (loss_cond)",
            "loss_cond_per_byte": "Response loss per byte",
            "ifd": "Instruction-following difficulty (IFD = loss_cond / loss_uncond)"}
    # held for the section's seven small jobs, so each does not replay the Delta table again
    scores = of_latest_run(store, "scoring", store.read("scores").filter(F.col("error").isNull())
                           ).select("model", *cols).persist()
    try:
        head = scores.agg(F.count(F.lit(1)).alias("n"), F.first("model").alias("model")).first()
        if not head["n"]:
            return ""
        parts = ["<h2>Loss scores and seeds</h2>",
                 f"<p>{head['n']:,} samples scored with <b>{esc(head['model'])}</b>.</p>"]
        for col, title in cols.items():
            edges, counts, m, s = _bins(scores.filter(F.col(col).isNotNull()), col)
            lines = ([(m + 1.96 * s, f"mean + 1.96 sigma = {m + 1.96 * s:.3f}")] if col != "ifd"
                     else [(1.0, "IFD = 1")])
            png = plots.binned_histogram(edges, counts, title, col, lines)
            name = f"scores_{col}.png"
            store.write_bytes(f"{store.warehouse}/report/{name}", png)  # beside the page, as the graph's are
            parts.append(_figure(png, name, title))
    finally:
        scores.unpersist()
    if store.exists("seeds"):
        from instructlake.scoring.seeds import CRITERIA

        seeds = store.read("seeds")
        flags = seeds.select(*[F.array_contains("criteria", c).cast("int").alias(c) for c in CRITERIA])
        agg = flags.agg(*[F.sum(F.col(a) * F.col(b)).alias(f"{a}|{b}")
                          for a in CRITERIA for b in CRITERIA]).first()
        rows = [[a] + [int(agg[f"{a}|{b}"] or 0) for b in CRITERIA] for a in CRITERIA]
        parts.append(f"<h3>Seed criteria and their overlaps ({seeds.count():,} seeds)</h3>")
        parts.append(table(["criterion", *CRITERIA], rows))
        parts.append('<p class="muted">The diagonal counts each criterion; the other cells count seeds '
                     "meeting both.</p>")
    return "\n".join(parts)


def contamination_rows(store: Store):
    """The contamination rows of the latest decontam config (an earlier config's rows are history)."""
    latest = latest_run(store, "decontam")
    c = store.read("contamination")
    newest = (latest[0]["config_hash"] if latest
              else c.orderBy(F.desc("checked_at")).select("config_hash").first())
    if newest is not None:
        c = c.filter(F.col("config_hash") == (newest if isinstance(newest, str) else newest[0]))
    return c


def contamination_summary(c):
    """Per benchmark: samples checked, flagged, flagged by embedding cosine, by shared n-grams."""
    return (c.groupBy("benchmark").agg(
        F.countDistinct("sample_id").alias("checked"),
        F.countDistinct(F.when(F.col("flagged"), F.col("sample_id"))).alias("flagged"),
        F.countDistinct(F.when(F.array_contains("methods", "embedding"), F.col("sample_id")))
        .alias("embedding"),
        F.countDistinct(F.when(F.array_contains("methods", "ngram"), F.col("sample_id"))).alias("ngram"))
        .orderBy("benchmark"))


def contamination_section(store: Store, top: int = 20) -> str:
    """Flag counts per benchmark and method under the latest decontam run, and its closest matches."""
    if not store.exists("contamination"):
        return ""
    c = contamination_rows(store)
    if not c.limit(1).count():
        return ""
    parts = ["<h2>Benchmark contamination</h2>"]
    stats = contamination_summary(c).collect()
    parts.append(table(["benchmark", "samples checked", "flagged", "by embedding", "by n-gram"],
                       [[r["benchmark"], int(r["checked"]), int(r["flagged"]), int(r["embedding"]),
                         int(r["ngram"])] for r in stats]))
    matches = (c.filter("flagged").orderBy(F.desc("cosine"), F.desc("ngram_shared")).limit(top).alias("c")
               .join(store.read("samples").select("sample_id", "instruction"), "sample_id")
               .join(store.read("benchmarks").select("benchmark", "item_id", "prompt"),
                     ["benchmark", "item_id"])
               .orderBy(F.desc("cosine"), F.desc("ngram_shared")).collect()
               ) if store.exists("benchmarks") else []
    if matches:
        parts.append(f"<h3>Top {len(matches)} flagged matches</h3>")
        parts.append(table(["cosine", "shared n-grams", "methods", "sample instruction", "benchmark prompt"],
                           [[float(r["cosine"]) if r["cosine"] is not None else "", int(r["ngram_shared"]),
                             ", ".join(r["methods"]), r["instruction"][:300],
                             f"{r['benchmark']} #{r['item_id']}: {r['prompt'][:300]}"] for r in matches]))
    parts.append('<p class="muted">Export drops every flagged sample; each row of the contamination table '
                 "keeps the evidence (cosine, shared n-grams and an example n-gram).</p>")
    return "\n".join(parts)


def difficulty_section(store: Store) -> str:
    """Difficulty distributions of the original pool, the synthesized samples and what export keeps."""
    if not store.exists("difficulty"):
        return ""
    from instructlake.pool import without_removed

    d = of_latest_run(store, "difficulty", store.read("difficulty").filter(F.col("difficulty").isNotNull()))
    samples = store.read("samples").select("sample_id", "source")
    rated = d.select("sample_id", "difficulty").join(samples, "sample_id")
    kept = without_removed(store, rated)
    if store.exists("contamination"):
        flagged = store.read("contamination").filter("flagged").select("sample_id")
        kept = kept.join(flagged, "sample_id", "left_anti")
    sets = {"original pool": rated.filter(F.col("source") != "synth"),
            "evolved": rated.filter(F.col("source") == "synth"), "final export": kept}
    hist = {name: {r["difficulty"]: int(r["count"]) for r in df.groupBy("difficulty").count().collect()}
            for name, df in sets.items()}
    rows = [[level] + [hist[name].get(level, 0) for name in sets] for level in range(1, 11)]
    means = [sum(k * v for k, v in h.items()) / max(1, sum(h.values())) for h in hist.values()]
    rows.append(["mean", *[float(m) for m in means]])
    return ("<h2>Difficulty</h2>" + table(["difficulty (1-10)", *sets], rows)
            + '<p class="muted">LLM ratings; "final export" is what export keeps (samples neither dedup nor '
              "the quality filter removed, not flagged as contamination).</p>")


def _with_anchors(body: str) -> tuple[str, str]:
    """Give every <h2> an id and return (body, the table of contents linking to them)."""
    import re

    items: list[str] = []

    def anchor(m) -> str:
        slug = (re.sub(r"[^a-z0-9]+", "-", html.unescape(m.group(1)).lower()).strip("-")
                or f"section-{len(items)}")
        items.append(f'<li><a href="#{slug}">{m.group(1)}</a></li>')
        return f'<h2 id="{slug}">{m.group(1)}</h2>'

    return re.sub(r"<h2>(.*?)</h2>", anchor, body), "".join(items)


# The sections' small Spark jobs overlap when they come from several threads (Spark schedules jobs of
# several threads at once): build() took 4.8-5.1 s against 6.9-7.3 s one after the other for a warm
# 130-sample warehouse. Only scores_section draws (matplotlib, not thread-safe), so no two threads plot.
SECTION_THREADS = 4


def sections(store: Store, config=None) -> list[str]:
    """The page's sections in page order, built in SECTION_THREADS threads."""
    from concurrent.futures import ThreadPoolExecutor

    def tables() -> str:
        return "".join(f"<li>{esc(t)}: {store.count(t):,} rows</li>" for t in store.tables())

    parts = [lambda: runs_section(store), tables, lambda: quality_section(store), lambda: pii_section(store),
             lambda: licenses_section(store, config), lambda: graph_section(store),
             lambda: scores_section(store), lambda: contamination_section(store),
             lambda: difficulty_section(store), lambda: tokens_section(store, config),
             lambda: export_section(store)]
    with ThreadPoolExecutor(SECTION_THREADS, thread_name_prefix="report") as pool:
        return list(pool.map(lambda part: part(), parts))


def build(store: Store, config=None) -> str:
    """Write <warehouse>/report/index.html and return its path."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    runs, tables, *rest = sections(store, config)
    body, toc = _with_anchors(f"""<h2>Stages (latest run of each)</h2>
{runs}
<h2>Tables</h2><ul>{tables}</ul>
""" + "\n".join(rest))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>instructlake report</title><style>{CSS}</style></head>
<body>
<h1>instructlake report</h1>
<p class="muted">Warehouse {esc(store.warehouse)} &middot; generated {now}</p>
<nav><ul>{toc}</ul></nav>
{body}
</body></html>
"""
    path = f"{store.warehouse}/report/index.html"
    store.write_text(path, page)
    return path
