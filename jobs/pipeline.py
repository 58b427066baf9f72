"""spark-submit entry: `pipeline run | status` (every stage in order, resumable). Logic: instructlake.pipeline."""

from instructlake.cli import stage_main

if __name__ == "__main__":
    stage_main("pipeline")
