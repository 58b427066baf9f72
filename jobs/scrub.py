"""spark-submit entry: `instructlake scrub`. All logic lives in instructlake.scrub."""

from instructlake.cli import stage_main

if __name__ == "__main__":
    stage_main("scrub")
