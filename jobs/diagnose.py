"""spark-submit entry: `instructlake diagnose`. All logic lives in instructlake.synth."""

from instructlake.cli import stage_main

if __name__ == "__main__":
    stage_main("diagnose")
