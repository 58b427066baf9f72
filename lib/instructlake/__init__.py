"""instructlake: Spark jobs that build instruction-tuning datasets."""

__version__ = "0.1.0"
