"""spark-submit entry: the `ingest` stage. All logic lives in instructlake.ingest."""

from instructlake.cli import stage_main

if __name__ == "__main__":
    stage_main("ingest")
