"""spark-submit entry: the `dedup` stage. All logic lives in instructlake.dedup."""

from instructlake.cli import stage_main

if __name__ == "__main__":
    stage_main("dedup")
