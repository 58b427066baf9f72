"""spark-submit entry: `instructlake report`. All logic lives in the library."""

from instructlake.cli import stage_main

if __name__ == "__main__":
    stage_main("report")
