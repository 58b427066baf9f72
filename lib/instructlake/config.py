"""Configuration: YAML files merged into frozen dataclasses.

Two kinds of settings, kept apart on purpose:

* semantic (conf/defaults.yaml): thresholds, limits, model names. They change results, so each
  stage's section is hashed (`Config.stage_hash`) and the hash goes into its output rows and run records.
* platform (conf/platform/NAME.yaml): where and how it runs (Spark master, warehouse, JARs, batch sizes).
  They never change a result and never enter a hash.

An unknown key anywhere is an error that names the key and the file it came from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

# The sections live in their own modules (llm, platform, quality, semantic, tagging); everything is importable
# from here.
from instructlake.config_llm import LLM_BACKENDS, LLMConfig  # noqa: F401
from instructlake.config_platform import (  # noqa: F401
    DecontamSettings,
    EmbedSettings,
    ExecutionSettings,
    LLMSettings,
    PipelineSettings,
    PlatformConfig,
    ScoringSettings,
    SparkSettings,
    StoreSettings,
)
from instructlake.config_quality import FilterConfig, ScrubConfig  # noqa: F401
from instructlake.config_semantic import (  # noqa: F401
    STRATEGIES,
    DecontamConfig,
    DedupConfig,
    EmbedConfig,
    ExportConfig,
    IngestConfig,
    MixConfig,
    ScoringConfig,
    SeedConfig,
    SemanticConfig,
    SemDedupConfig,
    SynthConfig,
)
from instructlake.config_tagging import DistillConfig, GraphConfig, TaggingConfig, TagNormConfig  # noqa: F401
from instructlake.errors import ConfigError


@dataclass(frozen=True)
class Config:
    semantic: SemanticConfig
    platform: PlatformConfig

    def stage_hash(self, stage: str) -> str:
        """Hash of one stage's semantic section only: execution settings never change it."""
        section = getattr(self.semantic, stage)
        return config_hash(section)

    @property
    def ingest(self) -> IngestConfig:
        return self.semantic.ingest

    @property
    def dedup(self) -> DedupConfig:
        return self.semantic.dedup

    @property
    def filter(self) -> FilterConfig:
        return self.semantic.filter

    @property
    def scrub(self) -> ScrubConfig:
        return self.semantic.scrub

    @property
    def embed(self) -> EmbedConfig:
        return self.semantic.embed

    @property
    def tagging(self) -> TaggingConfig:
        return self.semantic.tagging

    @property
    def normalize_tags(self) -> TagNormConfig:
        return self.semantic.normalize_tags

    @property
    def graph(self) -> GraphConfig:
        return self.semantic.graph

    @property
    def scoring(self) -> ScoringConfig:
        return self.semantic.scoring

    @property
    def seeds(self) -> SeedConfig:
        return self.semantic.seeds

    @property
    def decontam(self) -> DecontamConfig:
        return self.semantic.decontam

    @property
    def semdedup(self) -> SemDedupConfig:
        return self.semantic.semdedup

    @property
    def synth(self) -> SynthConfig:
        return self.semantic.synth

    @property
    def export(self) -> ExportConfig:
        return self.semantic.export

    @property
    def warehouse(self) -> str:
        return self.platform.store.warehouse


def config_hash(section: Any) -> str:
    """Hash of a config section (a dataclass) or of a plain dict of settings."""
    data = dataclasses.asdict(section) if dataclasses.is_dataclass(section) else section
    payload = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- loading


def conf_dir() -> Path:
    """conf/ of a checkout (or an editable install); INSTRUCTLAKE_CONF points elsewhere."""
    env = os.environ.get("INSTRUCTLAKE_CONF")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "conf", here.parent / "_conf"):
        if (candidate / "defaults.yaml").exists():
            return candidate
    raise ConfigError("conf/defaults.yaml was not found; set INSTRUCTLAKE_CONF to the conf directory")


def load_config(
    platform: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    extra_files: list[str | Path] | tuple[str | Path, ...] = (),
    warehouse: str | None = None,
) -> Config:
    """defaults.yaml + platform/NAME.yaml + extra files + `a.b=value` overrides, in that order.

    Override keys start with a semantic section (`ingest.max_record_bytes=10`) or with `platform.`
    (`platform.spark.shuffle_partitions=4`).
    """
    root = conf_dir()
    platform = platform or os.environ.get("INSTRUCTLAKE_PLATFORM", "local")
    semantic: dict[str, Any] = {}
    plat: dict[str, Any] = {}
    _merge(semantic, _read_yaml(root / "defaults.yaml"), root / "defaults.yaml", SemanticConfig)
    pfile = root / "platform" / f"{platform}.yaml"
    if not pfile.exists():
        names = sorted(p.stem for p in (root / "platform").glob("*.yaml"))
        raise ConfigError(f"unknown platform {platform!r}: no {pfile} (platforms: {', '.join(names)})")
    _merge(plat, _read_yaml(pfile), pfile, PlatformConfig)
    for f in extra_files:
        data = _read_yaml(Path(f))
        _merge(plat, data.pop("platform", {}) or {}, Path(f), PlatformConfig)
        _merge(semantic, data, Path(f), SemanticConfig)
    for item in overrides:
        key, value = _parse_override(item)
        target, cls, path = (plat, PlatformConfig, key[1:]) if key[0] == "platform" else (semantic, SemanticConfig, key)
        _merge(target, _nest(path, value, cls), f"--set {item}", cls)
    plat.setdefault("name", platform)
    env_wh = os.environ.get("INSTRUCTLAKE_WAREHOUSE")
    if warehouse or env_wh:
        plat.setdefault("store", {})["warehouse"] = warehouse or env_wh
    return Config(
        semantic=_build(SemanticConfig, semantic, "config"),
        platform=_build(PlatformConfig, plat, "platform config"),
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top, not {type(data).__name__}")
    return data


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, for example ingest.max_record_bytes=100000")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if len(parts) < 2:
        raise ConfigError(f"--set {item!r}: the key needs a section, for example "
                          f"ingest.{key.strip() or 'name'}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def _nest(path: list[str], value: Any, cls: type) -> dict[str, Any]:
    """An override's dotted path as nested mappings. Below a mapping setting (platform.spark.conf) the rest
    of the path is one key, since Spark's own keys have dots: `platform.spark.conf.spark.ui.enabled=true`
    sets conf["spark.ui.enabled"]."""
    head, rest = path[0], path[1:]
    if not rest:
        return {head: value}
    sub = get_type_hints(cls).get(head) if is_dataclass(cls) else None
    if sub is not None and is_dataclass(sub):
        return {head: _nest(rest, value, sub)}
    if sub is not None and get_origin(sub) is dict:
        return {head: {".".join(rest): value}}
    return {head: _nest(rest, value, dict)}  # an unknown key: _merge names it


def _merge(dst: dict[str, Any], src: dict[str, Any], origin: Any, cls: type, prefix: str = "") -> None:
    """Deep-merge src into dst, checking every key against the dataclass it will build."""
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    for key, value in src.items():
        full = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"unknown key {full!r} in {origin} (known here: {', '.join(sorted(names))})")
        sub = hints[key]
        if is_dataclass(sub):
            if not isinstance(value, dict):
                raise ConfigError(f"key {full!r} in {origin} must be a mapping")
            _merge(dst.setdefault(key, {}), value, origin, sub, f"{full}.")
        elif isinstance(dst.get(key), dict) and isinstance(value, dict):
            # a mapping setting (platform.spark.conf, model_paths) gains keys: a --config file that adds
            # fs.s3a.* settings keeps the platform file's own
            dst[key] = {**dst[key], **_coerce(value, sub, full, origin)}
        else:
            dst[key] = _coerce(value, sub, full, origin)


def _coerce(value: Any, typ: Any, key: str, origin: Any) -> Any:
    origin_t = get_origin(typ)
    args = get_args(typ)
    if origin_t is not None and type(None) in args:  # Optional[X]
        if value is None:
            return None
        typ = next(a for a in args if a is not type(None))
        origin_t, args = get_origin(typ), get_args(typ)
    bad = ConfigError(f"key {key!r} in {origin}: expected {getattr(typ, '__name__', typ)}, got {value!r}")
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad
    if typ is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad
    if origin_t is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise bad
        return tuple(_coerce(v, args[0], key, origin) for v in value)
    if origin_t is dict:
        if not isinstance(value, dict):
            raise bad
        # a YAML or --set boolean becomes Spark's spelling (true), not Python's (True)
        return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
    return value


def _build(cls: type, data: dict[str, Any], what: str) -> Any:
    hints = get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        if f.name in data:
            v = data[f.name]
            kwargs[f.name] = _build(hints[f.name], v, what) if is_dataclass(hints[f.name]) else v
    return cls(**kwargs)
