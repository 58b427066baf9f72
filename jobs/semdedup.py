"""spark-submit entry: `instructlake semdedup`. All logic lives in instructlake.decontam."""

from instructlake.cli import stage_main

if __name__ == "__main__":
    stage_main("semdedup")
