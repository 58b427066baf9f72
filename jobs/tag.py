"""spark-submit entry: the `tag` stage. All logic lives in instructlake.tagging."""

from instructlake.cli import stage_main

if __name__ == "__main__":
    stage_main("tag")
