"""The `instructlake` argument parser: every command, its options and its --help text."""

from __future__ import annotations

import argparse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="instructlake",
        description="Build instruction-tuning (SFT) datasets with Spark and Delta tables.",
        epilog="Tables live under the warehouse directory (--warehouse, INSTRUCTLAKE_WAREHOUSE, "
               "or store.warehouse in the platform config; default ./lakehouse).")
    p.add_argument("--warehouse", help="warehouse directory or URI holding the Delta tables")
    p.add_argument("--platform", help="platform config: local (default), databricks, emr")
    p.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="extra YAML merged over conf/defaults.yaml (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override one setting, e.g. --set ingest.max_record_bytes=100000 "
                        "or --set platform.spark.shuffle_partitions=4 (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("ingest", help="read chat files into the samples table",
                       description="Read Alpaca, ShareGPT, OpenAI-messages, Dolly, OASST-tree and "
                                   "Self-Instruct files (JSON arrays or JSON Lines, plain or gzip/bzip2/xz, "
                                   "or Parquet) into `samples`. Records that cannot be read go to "
                                   "`quarantine` with the reason and raw text. Re-ingesting a file adds "
                                   "nothing.")
    s.add_argument("paths", nargs="+", metavar="PATH",
                   help="files, or directories of *.json, *.jsonl, *.ndjson (plain, .gz, .bz2, .xz) and "
                        "*.parquet files")
    s.add_argument("--source", help="source name for every file (default: the file name without extensions)")
    s.add_argument("--license", metavar="ID",
                   help="the license every sample of these sources carries (apache-2.0, cc-by-nc-4.0, ...); "
                        "export --licenses / --commercial-only filter by it (default: the "
                        "platform.licenses.sources map, else unknown)")
    s.add_argument("--format", choices=["alpaca", "sharegpt", "openai", "dolly", "oasst", "self_instruct"],
                   help="force the format instead of detecting it per file")

    s = sub.add_parser("dedup", help="cluster exact and near duplicates (MinHash LSH) into dedup_clusters",
                       description="Find exact duplicates (same normalized text) and near duplicates "
                                   "(MinHash LSH over word n-grams, verified against dedup.threshold), "
                                   "cluster them, and keep one sample per cluster by the "
                                   "dedup.source_priority rule. Signatures are stored, so a refresh hashes "
                                   "only new samples.")
    s.add_argument("--engine", choices=["auto", "graphframes", "spark"], default="auto",
                   help="auto: pools up to platform.execution.driver_lsh_max_rows signatures are banded and "
                        "clustered on the driver, larger ones in Spark with GraphFrames when its JARs are "
                        "present; graphframes / spark: always in Spark with that components engine")

    sub.add_parser("filter", help="judge each kept sample's quality: language, repetition, refusals, cut-off "
                                  "answers, mojibake -> quality",
                   description="Compute every kept sample's quality signals (its language and each turn's, "
                               "Gopher's repetition measures of its answers, their length, refusal and "
                               "AI-disclaimer phrases, unclosed code fences or prose stopping mid-sentence, "
                               "mojibake) and whether it passes the filter section of the config, with the "
                               "reasons it does not. Writes the quality table; deletes nothing. Only samples "
                               "not yet judged under the current filter config are judged.")

    sub.add_parser("scrub", help="find PII and secrets in each sample export may ship -> pii",
                   description="Find e-mail addresses, phone numbers, IP addresses, credit-card numbers and "
                               "secrets (API keys, tokens, private keys, credentials) in every turn and "
                               "system prompt of the samples later stages read (synthesized ones included), "
                               "and write each sample's counts by kind and its text with <EMAIL>, <PHONE>, "
                               "<IP_ADDRESS>, <CREDIT_CARD> and <SECRET> placeholders to the pii table. "
                               "`samples` keeps the original text; export ships the scrubbed one and refuses "
                               "samples not checked under the current scrub config. Only samples not yet "
                               "checked under it are checked.")

    sub.add_parser("tag", help="tag each instruction with fine-grained skill/knowledge tags",
                   description="Tag every sample dedup kept with the skills and knowledge its instruction "
                               "asks for. With tagging.llm.backend set (http, vllm, transformers) an LLM "
                               "answers an InsTag-style prompt, through the llm_cache table; otherwise a "
                               "zero-shot tagger assigns tags of the packaged 25-category taxonomy by "
                               "embedding similarity. Only untagged samples are tagged, so a re-run makes no "
                               "model calls.")

    sub.add_parser("normalize-tags", help="merge synonymous tags, cluster them, map them to 25 categories",
                   description="Drop tags used by fewer samples than the frequency cut "
                               "(normalize_tags.min_freq when set, else the paper's 100 per 7M samples "
                               "scaled to the pool: normalize_tags.min_freq_per_million), merge tags whose "
                               "embeddings have cosine >= normalize_tags.merge_threshold into the most "
                               "frequent one, cluster the rest with DBSCAN (normalize_tags.dbscan_eps) and "
                               "map each cluster to a category. Writes tag_map and tag_stats.")

    s = sub.add_parser("graph", help="tag co-occurrence graph, degrees, components and power-law fits",
                       description="Build the tag co-occurrence graph from the (canonical) tags: tag_edges "
                                   "(pairs weighted by samples, with PMI), tag_degrees (degree, weighted "
                                   "degree, component per tag) and powerlaw_fit (discrete MLE, xmin by KS "
                                   "distance, likelihood-ratio tests against lognormal and exponential; "
                                   "graph.bootstrap rounds for a p-value), plus the pictures for the report.")
    s.add_argument("--engine", choices=["auto", "graphframes", "spark", "driver"], default="auto",
                   help="connected-components engine (auto: driver for small graphs, else GraphFrames when "
                        "present)")

    sub.add_parser("train-reference", help="train a small GPT on the pool, for scoring with no model hub",
                   description="Fit a byte-level BPE tokenizer and a small GPT-2 style model on the kept "
                               "samples for scoring.reference_seconds of wall-clock time, and save them in "
                               "<warehouse>/models/reference, the model `score` uses when scoring.model is "
                               "'reference' (the default).")

    sub.add_parser("score", help="base-model losses of each sample's response (loss_cond, loss_uncond, IFD)",
                   description="Score every kept, not yet scored sample with scoring.model (a causal LM; its "
                               "directory in platform.scoring.model_paths): the mean token loss of the last "
                               "response given the conversation before it and alone, IFD and loss reduction, "
                               "batched by a token budget. Writes scores.")

    sub.add_parser("select-seeds", help="pick seeds by the paper's four criteria -> seeds",
                   description="Mark samples as seeds for synthesis: long tail (a canonical tag rarer than "
                               "seeds.long_tail_max_freq; unset: twice normalize-tags' frequency cut), "
                               "multi-skill (>= seeds.multi_skill_min_tags tags), hard "
                               "to follow (loss reduction in the lowest seeds.hard_quantile), undertrained "
                               "(loss_cond > mean + seeds.undertrained_sigma std). Each seed row keeps the "
                               "values that triggered it.")

    s = sub.add_parser("decontam", help="flag samples close to benchmark prompts (embeddings + n-grams)",
                       description="Check every kept sample's instruction against benchmark prompts: the "
                                   "cosine of their embeddings (flag at decontam.cosine_threshold) and "
                                   "shared word n-grams (decontam.ngram words; flag at "
                                   "decontam.ngram_min_shared). Writes contamination with the evidence of "
                                   "each match; export drops flagged samples. Benchmarks load into the "
                                   "benchmarks table; with none loaded, AlpacaEval's 805 instructions (built "
                                   "in) are used. Only unchecked samples are checked.")
    s.add_argument("--benchmark", action="append", default=[], metavar="NAME=PATH",
                   help="load (or reload) a benchmark: any supported chat format, or JSON/JSONL prompts "
                        "(strings, or objects with prompt / instruction / question / turns); repeatable. "
                        "A bare NAME loads a built-in one (alpaca_eval)")

    s = sub.add_parser("semdedup", help="semantic dedup (SemDeDup): near-paraphrase instructions -> "
                                        "dedup_clusters",
                       description="Cluster the kept samples' instruction embeddings with KMeans, compare "
                                   "pairs within each cluster, and mark pairs with cosine >= "
                                   "semdedup.threshold as duplicates (method 'semantic' in dedup_clusters), "
                                   "keeping one per group by the dedup keep rule. Run it after dedup (dedup "
                                   "rewrites dedup_clusters).")

    sub.add_parser("evolve", help="evolve seeds into harder instructions, judge them, answer them -> samples",
                   description="Evolve every seed (select-seeds) synth.evolutions_per_seed times per round "
                               "for synth.rounds rounds with Evol-Instruct strategies guided by its tags and "
                               "category; reject evolutions by rules (copies, refusals, leaked template "
                               "markers, too short or long) and by the oracle (synth.oracle); answer the "
                               "valid ones with synth.llm and add them to samples (source 'synth'). Lineage "
                               "in the evolved table. Needs an LLM backend.")

    s = sub.add_parser("diagnose", help="one iteration of the deficiency diagnosis loop -> diagnosis + "
                                        "targeted samples",
                       description="The model under test (synth.diagnose_model) answers a diagnosis set; the "
                                   "oracle compares each answer with its reference and names the abstract "
                                   "skill it lacks; synth.targeted_per_deficiency new instructions per "
                                   "deficiency are written per skill and answered into samples. Each run is "
                                   "the next iteration on that set.")
    s.add_argument("path", metavar="SET", help="instructions with reference answers: any chat format, or "
                                               "JSON/JSONL with a prompt and a reference (MT-Bench "
                                               "question.jsonl)")
    s.add_argument("--name", help="name of the diagnosis set (default: the file name)")
    s.add_argument("--references", metavar="FILE", help="reference answers matched on question_id "
                                                        "(MT-Bench model_answer/gpt-4.jsonl)")
    s.add_argument("--iterations", type=int, help="iterations in this run (default "
                                                  "synth.diagnose_iterations); each next one probes the "
                                                  "targeted instructions the last one wrote")

    sub.add_parser("difficulty", help="rate each instruction's difficulty 1-10 with an LLM -> difficulty",
                   description="Rate every kept sample's instruction (pool and synthesized) from 1 to 10 "
                               "with a rationale, with synth.oracle (or synth.llm). Only unrated samples are "
                               "rated.")

    sub.add_parser("report", help="write the HTML report (<warehouse>/report/index.html)",
                   description="Write one self-contained HTML page with every stage's latest run and the "
                               "analyses that have run, pictures embedded.")

    s = sub.add_parser("export", help="write SFT files (ShareGPT, OpenAI messages, Parquet) and a manifest",
                       description="Export the samples a training job should see as JSONL in ShareGPT and "
                                   "OpenAI-messages form and as Parquet, with manifest.json beside them. "
                                   "Only samples checked by dedup and decontam under the current config go "
                                   "out: if any is not, export stops and names the stage to run.")
    s.add_argument("--out", help="output directory (default: <warehouse>/exports/<UTC timestamp>); a "
                                 "non-empty directory that is not an earlier export is refused")
    s.add_argument("--allow-unchecked", action="store_true",
                   help="export samples dedup or decontam has not checked under the current config "
                        "(samples flagged under an earlier decontam config are still left out); the manifest "
                        "records how many")
    s.add_argument("--licenses", metavar="ID,ID",
                   help="ship only rows whose licenses (and, for synthesized rows, model terms) are all "
                        "among these ids (export.licenses)")
    s.add_argument("--max-samples", type=int, metavar="N",
                   help="budgeted mixing: at most N rows, shared among categories (or sources) by the "
                        "weights of export.mix (export.mix.max_samples)")
    s.add_argument("--mix", metavar="FILE",
                   help="a YAML file of export.mix settings: by (category | source), weights (group: "
                        "weight), default_weight, min_per_group, seed, max_samples")
    s.add_argument("--commercial-only", action="store_true",
                   help="ship only rows whose licenses and model terms all allow commercial use "
                        "(platform.licenses.commercial; unknown never does) (export.commercial_only)")

    s = sub.add_parser("pipeline", help="run every stage in order, resumably and incrementally; or show "
                                        "status",
                       description="`pipeline run` runs the stages in order (ingest, dedup, semdedup, "
                                   "filter, tagging, normalize_tags, graph, train_reference, scoring, seeds, "
                                   "synth, difficulty, scrub, decontam, export, report). A stage is skipped "
                                   "when the config sections it depends on, the versions of the tables it "
                                   "reads and its other inputs (new raw files, benchmark files, the scoring "
                                   "model) match its last completed run, so a crashed run resumes where it "
                                   "stopped and a scheduled refresh only processes what is new. `pipeline "
                                   "status` shows each stage's last run and what a run would do now.")
    psub = s.add_subparsers(dest="pipeline_command", required=True, metavar="ACTION")
    for action, text in (("run", "run the stages that are not up to date"),
                         ("status", "each stage's last run and whether the next run would run it")):
        t = psub.add_parser(action, help=text, description=text)
        t.add_argument("--input", action="append", default=[], metavar="PATH",
                       help="raw files or directories to ingest (repeatable; default "
                            "platform.pipeline.inputs). Only files not ingested before (or changed since) "
                            "are read")
        t.add_argument("--benchmark", action="append", default=[], metavar="NAME=PATH",
                       help="benchmark files for decontam (repeatable; default platform.pipeline.benchmarks, "
                            "else the built-in AlpacaEval)")
        t.add_argument("--skip", action="append", default=[], metavar="STAGE", help="leave a stage out "
                                                                                    "(repeatable)")
        if action == "run":
            t.add_argument("--from", dest="start", metavar="STAGE", help="first stage to consider")
            t.add_argument("--to", dest="stop", metavar="STAGE", help="last stage to consider")
            t.add_argument("--force", action="store_true", help="run the selected stages even when up to date")
            t.add_argument("--export-dir", help="export directory (default platform.pipeline.export_dir, "
                                                "else <warehouse>/exports/<UTC timestamp>)")
        else:
            t.add_argument("--json", action="store_true", help="print JSON")

    s = sub.add_parser("tables", help="list the tables and their row counts")
    s.add_argument("--json", action="store_true", help="print a JSON object: table -> row count")

    s = sub.add_parser("table", help="operations on one table")
    tsub = s.add_subparsers(dest="table_command", required=True, metavar="OPERATION")
    t = tsub.add_parser("export", help="write one table to a JSON Lines file",
                        description="Write every row of table NAME to OUT as JSON Lines.")
    t.add_argument("name", metavar="NAME")
    t.add_argument("out", metavar="OUT.jsonl")
    t.add_argument("--version", type=int, help="the table as of this Delta version")

    s = sub.add_parser("show", help="print the first rows of a table",
                       description="Print the first rows of table NAME (for example samples, quarantine, "
                                   "runs).")
    s.add_argument("name", metavar="NAME")
    s.add_argument("-n", type=int, default=20, help="rows to show (default 20)")
    s.add_argument("--width", type=int, default=60, help="truncate cells to this many characters (0: never)")
    return p
