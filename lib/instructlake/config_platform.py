"""Platform config sections (conf/platform/NAME.yaml): where and how it runs. They never change a result
and never enter a hash."""

from __future__ import annotations

from dataclasses import dataclass, field

from instructlake.errors import ConfigError

JIT_MODES = ("quick", "full")
GC_MODES = ("serial", "parallel", "g1")


@dataclass(frozen=True)
class SparkSettings:
    master: str | None = "local[*]"
    app_name: str = "instructlake"
    # Put the JARs fetched by `build.py setup` on the classpath. Off on Databricks/EMR, whose runtime has
    # them.
    local_jars: bool = True
    # Add Delta's SQL extension and catalog. Databricks runtimes configure Delta themselves.
    delta_extensions: bool = True
    shuffle_partitions: int = 8
    # The JVM heap of a local session (local[*]: the driver is the executor too). 2g: bench dedup-speed at
    # 100 MB ran as fast as with 4g and its process tree peaked at 2.8 GB instead of 5.5 GB (a bigger
    # heap is filled before it is collected); Spark spills what does not fit.
    driver_memory: str | None = "2g"
    # Local sessions map the JVM class archive `build.py setup` wrote (instructlake.jvm_archive): seconds
    # less start-up per session. Ignored where the cluster starts the JVMs.
    class_archive: bool = True
    # The JIT of a local session's JVM: `quick` compiles with C1 only (-XX:TieredStopAtLevel=1); `full` is
    # the JVM's default, C1 and then C2 for hot code. On two cores C2's compiler thread takes a core from
    # the work for much of a run: ingest + dedup of 100 MB took 36-48 s against 55-65 s (four and five
    # runs), and 1 GB 149 / 163 s against 156 / 157 s. Try `full` for long runs on a machine with cores to
    # spare. Ignored where the cluster starts the JVMs.
    jit: str = "quick"
    # The garbage collector of a local session's JVM: `serial` (-XX:+UseSerialGC), `parallel` or `g1` (the
    # JVM's own choice on a machine of two cores or more). G1 grew the 2 GB heap to 1.5 GB around 0.3-0.6 GB
    # of live data (large Arrow buffers are "humongous" objects to it, and each one starts a cycle):
    # ingest + dedup of 100 MB peaked at 3.5-3.6 GB with g1, 2.6-2.8 GB with serial and 3.2-3.3 GB with
    # parallel, in 17-20 s each; at 1 GB serial 70.1-72.1 s, g1 68.6-73.1 s (three pairs). For a heap of
    # many GB on a machine with cores to spare try `g1` or `parallel`, whose collections use every core.
    # Ignored where the cluster starts the JVMs.
    gc: str = "serial"
    # Optional JVM packages setup fetched that local sessions load only when named here: `s3` (Hadoop's S3A
    # connector and the AWS SDK, for s3a:// inputs; a warehouse on s3a:// loads it by itself).
    packages: list[str] = field(default_factory=list)
    # Extra Spark properties, passed through as they are.
    conf: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.jit not in JIT_MODES:
            raise ConfigError(f"platform.spark.jit must be one of {', '.join(JIT_MODES)}, not {self.jit!r}")
        if self.gc not in GC_MODES:
            raise ConfigError(f"platform.spark.gc must be one of {', '.join(GC_MODES)}, not {self.gc!r}")


@dataclass(frozen=True)
class StoreSettings:
    # Root of the Delta tables; any URI Delta accepts (a local path, s3://, abfss://, dbfs:/).
    warehouse: str = "./lakehouse"
    # Attempts for a write that loses an optimistic-concurrency race to another writer.
    write_retries: int = 5


RAW_READERS = ("auto", "python", "hadoop")


@dataclass(frozen=True)
class ExecutionSettings:
    # Rows per Arrow batch handed from a Python worker back to Spark.
    arrow_batch_rows: int = 5000
    # Files smaller than this are parsed together in one task; larger ones get a task each.
    small_file_bytes: int = 8_000_000
    # A plain JSON Lines file is parsed in byte ranges of at most this size, fewer if that leaves cores idle.
    split_bytes: int = 128 << 20
    # Who opens raw input files on the executors: `python` (local paths only, opened by the Python
    # workers), `hadoop` (Hadoop's FileSystem in the executor JVMs, through instructlake-io.jar: any URI
    # the cluster reads) or `auto` (hadoop for a URI with a scheme such as s3a:// or dbfs:/, else python).
    raw_reader: str = "auto"
    # Dedup: up to this many signatures are banded on the driver with numpy (same pairs as the Spark
    # path, without its shuffles; 1M x 128 permutations is 0.5 GB); more go through Spark. 0: always Spark.
    driver_lsh_max_rows: int = 1_000_000
    # While a stage runs, a log line this often with the Spark stages running, their tasks done and the
    # time left at their pace (instructlake.progress). 0: none.
    progress_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.raw_reader not in RAW_READERS:
            raise ConfigError(f"platform.execution.raw_reader must be one of {', '.join(RAW_READERS)}, "
                              f"not {self.raw_reader!r}")
        if self.progress_seconds < 0:
            raise ConfigError("platform.execution.progress_seconds must be 0 (no progress lines) or more, "
                              f"not {self.progress_seconds!r}")


@dataclass(frozen=True)
class LLMSettings:
    """Where and how the configured model runs; never hashed, never part of a cache key."""

    # model name -> local directory or cluster path of its weights (transformers and vllm backends)
    model_paths: dict[str, str] = field(default_factory=dict)
    # http backend: an OpenAI-compatible server; the API key is read from the named environment variable.
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 5
    backoff_s: float = 1.0
    # Send the task's JSON schema as response_format (servers without structured output: false).
    structured_output: bool = True
    # Prompts handed to the engine at once (transformers and http; vLLM takes each Arrow batch whole).
    batch_size: int = 16
    device: str = "auto"
    # vllm backend. On a GPU: the fraction of its memory vLLM may take (weights + KV cache) and the GPUs one
    # engine spans. kv_cache_gib sizes the KV cache in GiB instead (0: by gpu_memory_utilization on a GPU,
    # 1 GiB on vLLM's CPU build, where the fraction would reserve host RAM). max_model_len 0: the model's.
    gpu_memory_utilization: float = 0.9
    kv_cache_gib: float = 0.0
    tensor_parallel_size: int = 1
    max_model_len: int = 0
    dtype: str = "auto"
    # CUDA graphs cost start-up time and memory; eager mode trades a little throughput for both.
    enforce_eager: bool = False
    # CPU threads of a vLLM engine on the CPU build (0: the host's cores over its Spark task slots).
    threads: int = 0
    # vLLM's engine core in the Python worker's own process, not a process of its own: Spark kills idle or
    # cancelled workers with SIGKILL, and an engine core process would outlive its worker, holding the
    # GPU (measured: it did). Its tensor-parallel workers watch it and exit with it.
    engine_core_in_worker: bool = True
    # Any other keyword argument of vllm.LLM, passed as it is (it wins over the settings above).
    engine_kwargs: dict[str, str] = field(default_factory=dict)
    # Partitions the prompts of one call are spread over (0: Spark's default parallelism).
    partitions: int = 0
    # Answers are committed to llm_cache every this many prompts, so a crash loses at most one round.
    commit_every: int = 20000
    # Stage-level scheduling on a cluster: GPUs per model task and per executor (0: no ResourceProfile).
    gpus_per_task: float = 0.0
    executor_gpus: int = 1
    # Tests: the scripted double and the vLLM engine append every prompt they are asked here, one line each
    # (tests count calls made in Spark's Python workers).
    calls_file: str | None = None
    # model name or glob -> "prompt,completion" US dollars per million tokens: run records, the CLI and the
    # report then estimate what each stage's calls cost (no entry: tokens only).
    prices: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from instructlake.llm.usage import parse_prices

        parse_prices(self.prices)


@dataclass(frozen=True)
class EmbedSettings:
    # model name -> local directory of a sentence-transformers model (e.g. BGE on a cluster volume)
    model_paths: dict[str, str] = field(default_factory=dict)
    batch_size: int = 64
    # Texts handed to the model per call; it sorts each call's texts by length, so bigger calls pad less.
    rows_per_call: int = 8192
    device: str = "auto"
    # Torch threads per Python worker (0: the host's cores divided by the Spark task slots on it).
    threads: int = 0
    # Stage-level scheduling on a cluster: GPUs per model task and per executor (0: no ResourceProfile).
    gpus_per_task: float = 0.0
    executor_gpus: int = 1


@dataclass(frozen=True)
class ScoringSettings:
    # model name -> local directory of its weights and tokenizer
    model_paths: dict[str, str] = field(default_factory=dict)
    # Tokens per forward pass (longest sequence in a batch x its rows); sequences are sorted by length.
    # 0: 2048 on a CPU (a pass's activations then stay in cache: 1.3x the tokens/s of 8192 on the bench
    # model) and 65536 on a GPU (4x the tokens/s of 4096 on an H200: bench score), 16384 where the model
    # needs the full output head at every position.
    token_budget: int = 0
    device: str = "auto"
    # Stage-level scheduling on a cluster (0: no ResourceProfile).
    gpus_per_task: float = 0.0
    executor_gpus: int = 1

    def __post_init__(self) -> None:
        if self.token_budget < 0:
            raise ConfigError(f"platform.scoring.token_budget must be 0 (by device) or positive, not "
                              f"{self.token_budget}")


@dataclass(frozen=True)
class DecontamSettings:
    # Benchmark sides up to this many prompts are broadcast and matched against every sample with
    # matrix products; bigger ones are blocked: KMeans buckets (ivf_clusters, 0: about sqrt(rows)), each
    # sample compared with the prompts of the buckets that can hold a match (same flags as brute force).
    broadcast_max_rows: int = 50_000
    ivf_clusters: int = 0


@dataclass(frozen=True)
class PipelineSettings:
    """What `instructlake pipeline run` is pointed at (its --input/--benchmark/--export-dir override these)."""

    # Raw files or directories (a landing zone a scheduled refresh re-reads; only new files are ingested).
    inputs: tuple[str, ...] = ()
    # Benchmarks to decontaminate against, NAME=PATH (none: the built-in AlpacaEval).
    benchmarks: tuple[str, ...] = ()
    # Where export writes ("": a new <warehouse>/exports/<UTC timestamp> each run).
    export_dir: str = ""
    # Stages left out, e.g. train_reference when scoring.model is your own base model.
    skip: tuple[str, ...] = ()


# License ids (SPDX, lower case) whose terms allow commercial use of the data; export --commercial-only
# keeps rows carrying only these.
COMMERCIAL_LICENSES = ("apache-2.0", "mit", "bsd-2-clause", "bsd-3-clause", "cc0-1.0", "cc-by-4.0",
                       "cc-by-sa-4.0", "cc-by-3.0", "odc-by", "odbl", "pddl", "unlicense", "isc", "zlib")


@dataclass(frozen=True)
class LicenseSettings:
    """Which license each source's samples carry and which terms each model's outputs come under. Export
    reads them (--licenses, --commercial-only, the manifest and the dataset card); they are not hashed."""

    # source name or fnmatch pattern (alpaca_*) -> license id (apache-2.0, cc-by-nc-4.0, ...); the first
    # entry that matches wins, and `ingest --license` wins over this map. Unmatched sources: unknown.
    # A diagnosis set's targeted samples are source diagnosis:<set name>.
    sources: dict[str, str] = field(default_factory=dict)
    # model name (as the LLM config names it) -> the terms its outputs come under; unmatched: unknown
    models: dict[str, str] = field(default_factory=dict)
    # ids that allow commercial use (--commercial-only keeps rows whose licenses and model terms are all
    # among them)
    commercial: tuple[str, ...] = COMMERCIAL_LICENSES

    def __post_init__(self) -> None:
        for what, m in (("sources", self.sources), ("models", self.models)):
            bad = [k for k, v in m.items() if not isinstance(v, str) or not v.strip()]
            if bad:
                raise ConfigError(f"platform.licenses.{what}: {bad} need a license id (a string such as "
                                  "apache-2.0)")
        object.__setattr__(self, "commercial", tuple(x.lower() for x in self.commercial))


@dataclass(frozen=True)
class PlatformConfig:
    name: str = "local"
    spark: SparkSettings = field(default_factory=SparkSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    embed: EmbedSettings = field(default_factory=EmbedSettings)
    scoring: ScoringSettings = field(default_factory=ScoringSettings)
    decontam: DecontamSettings = field(default_factory=DecontamSettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    licenses: LicenseSettings = field(default_factory=LicenseSettings)
