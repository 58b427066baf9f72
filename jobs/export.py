"""spark-submit entry: the `export` stage. All logic lives in instructlake.export."""

from instructlake.cli import stage_main

if __name__ == "__main__":
    stage_main("export")
