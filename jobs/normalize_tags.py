"""spark-submit entry: the `normalize-tags` stage. All logic lives in instructlake.tagging."""

from instructlake.cli import stage_main

if __name__ == "__main__":
    stage_main("normalize-tags")
