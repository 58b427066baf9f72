"""spark-submit entry: `instructlake filter`. All logic lives in instructlake.quality."""

from instructlake.cli import stage_main

if __name__ == "__main__":
    stage_main("filter")
