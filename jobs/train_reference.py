"""spark-submit entry: `instructlake train-reference`. All logic lives in instructlake.scoring."""

from instructlake.cli import stage_main

if __name__ == "__main__":
    stage_main("train-reference")
