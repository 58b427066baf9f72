"""spark-submit entry: `instructlake evolve`. All logic lives in instructlake.synth."""

from instructlake.cli import stage_main

if __name__ == "__main__":
    stage_main("evolve")
