"""spark-submit entry: `instructlake select-seeds`. All logic lives in instructlake.scoring."""

from instructlake.cli import stage_main

if __name__ == "__main__":
    stage_main("select-seeds")
