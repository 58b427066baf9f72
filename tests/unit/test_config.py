import pytest

from instructlake.config import ConfigError, load_config


def test_defaults_and_platform_merge():
    cfg = load_config("local")
    assert cfg.ingest.oasst_paths == "best"
    assert cfg.platform.name == "local"
    assert cfg.platform.spark.master == "local[*]"
    assert cfg.export.formats == ("sharegpt", "openai", "parquet")
    emr = load_config("emr")
    assert emr.platform.spark.master is None and emr.platform.spark.local_jars is False


def test_set_overrides_are_typed():
    cfg = load_config("local", ["ingest.max_record_bytes=1234", "platform.spark.shuffle_partitions=3",
                                "export.formats=sharegpt,parquet", "ingest.oasst_paths=all"])
    assert cfg.ingest.max_record_bytes == 1234
    assert cfg.platform.spark.shuffle_partitions == 3
    assert cfg.export.formats == ("sharegpt", "parquet")
    assert cfg.ingest.oasst_paths == "all"


def test_unknown_key_in_file_names_key_and_file(tmp_path):
    f = tmp_path / "extra.yaml"
    f.write_text("ingest:\n  max_record_byte: 10\n")
    with pytest.raises(ConfigError) as e:
        load_config("local", extra_files=[f])
    assert "ingest.max_record_byte" in str(e.value) and str(f) in str(e.value)


def test_unknown_key_in_override_names_it():
    with pytest.raises(ConfigError, match=r"'ingest.nope'.*--set ingest.nope=1"):
        load_config("local", ["ingest.nope=1"])
    with pytest.raises(ConfigError, match=r"'bogus'"):
        load_config("local", ["bogus.x=1"])


def test_wrong_type_and_bad_value_are_errors():
    with pytest.raises(ConfigError, match="max_record_bytes"):
        load_config("local", ["ingest.max_record_bytes=lots"])
    with pytest.raises(ConfigError, match="oasst_paths"):
        load_config("local", ["ingest.oasst_paths=some"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config("local", ["ingest.max_record_bytes"])


def test_unknown_platform():
    with pytest.raises(ConfigError, match="unknown platform 'mars'.*databricks"):
        load_config("mars")


def test_stage_hash_covers_semantic_settings_only():
    base = load_config("local")
    assert base.stage_hash("ingest") == load_config("local").stage_hash("ingest")
    assert base.stage_hash("ingest") != load_config("local", ["ingest.max_record_bytes=5"]).stage_hash("ingest")
    # execution settings never change a result, so never the hash
    assert base.stage_hash("ingest") == load_config(
        "local", ["platform.execution.arrow_batch_rows=7", "platform.spark.shuffle_partitions=1"]).stage_hash("ingest")
    assert base.stage_hash("ingest") == load_config("databricks").stage_hash("ingest")
    # one stage's setting does not touch another stage's hash
    assert base.stage_hash("export") == load_config("local", ["ingest.max_record_bytes=5"]).stage_hash("export")


def test_warehouse_from_argument_and_env(monkeypatch):
    monkeypatch.setenv("INSTRUCTLAKE_WAREHOUSE", "/tmp/from-env")
    assert load_config("local").warehouse == "/tmp/from-env"
    assert load_config("local", warehouse="/tmp/arg").warehouse == "/tmp/arg"


def test_yaml_that_is_not_a_mapping(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config("local", extra_files=[f])


def test_a_mapping_setting_gains_keys_from_later_files_and_sets(tmp_path):
    """A --config file adding fs.s3a.* settings keeps the platform file's own spark.conf entries."""
    extra = tmp_path / "s3.yaml"
    extra.write_text('platform:\n  spark:\n    conf:\n      spark.hadoop.fs.s3a.endpoint: '
                     '"http://127.0.0.1:9"\n')
    cfg = load_config("local", ['platform.spark.conf={"spark.sql.session.timeZone": "Europe/Paris"}'],
                      extra_files=[extra])
    conf = cfg.platform.spark.conf
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9"
    assert conf["spark.ui.enabled"] == "false"  # from conf/platform/local.yaml
    assert conf["spark.sql.session.timeZone"] == "Europe/Paris"  # the later setting wins


def test_a_set_below_a_mapping_setting_keeps_the_dotted_key_whole():
    """Spark's keys have dots: `--set platform.spark.conf.spark.ui.enabled=true` sets that one key, not a
    key `spark` holding a nested mapping."""
    cfg = load_config("local", ["platform.spark.conf.spark.driver.extraJavaOptions=-Xss4m -XX:+UseSerialGC",
                                "platform.spark.conf.spark.ui.enabled=true"])
    conf = cfg.platform.spark.conf
    assert conf["spark.driver.extraJavaOptions"] == "-Xss4m -XX:+UseSerialGC"
    assert conf["spark.ui.enabled"] == "true"  # Spark's spelling of a boolean, not Python's
    assert "spark" not in conf and conf["spark.sql.session.timeZone"] == "UTC"
    with pytest.raises(ConfigError, match=r"'spark.nope'"):
        load_config("local", ["platform.spark.nope.x=1"])


def test_the_frequency_cut_scales_with_the_pool_unless_set():
    from instructlake.config import TagNormConfig

    auto = TagNormConfig()
    # the paper's 100 samples in 7M, as a rate; at least 1
    assert [auto.cut_for(n) for n in (0, 700, 70_000, 700_000, 7_000_000, 21_000_000)] == [1, 1, 1, 10, 100, 300]
    assert TagNormConfig(min_freq=5).cut_for(7_000_000) == 5  # a number that is set wins
    assert load_config("local", ["normalize_tags.min_freq=null"]).normalize_tags.min_freq is None
    assert load_config("local", ["normalize_tags.min_freq=3"]).normalize_tags.cut_for(10**9) == 3
    with pytest.raises(ConfigError, match="normalize_tags.min_freq must be >= 1"):
        load_config("local", ["normalize_tags.min_freq=0"])


def driver_options(*sets: str, launched: bool = False) -> str | None:
    """spark.driver.extraJavaOptions a session asks for with these settings (no class archive)."""
    from instructlake.spark import _session_settings

    cfg = load_config("local", ["platform.spark.class_archive=false", *sets])
    return _session_settings(cfg.platform, launched).get("spark.driver.extraJavaOptions")


def test_the_jit_setting_reaches_a_local_driver_and_nothing_else():
    opts = driver_options
    quick = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"
    assert opts() == f"{quick} -XX:+UseSerialGC"
    assert opts("platform.spark.jit=full") == "-XX:+UseSerialGC"
    # the platform's own options come after, so a flag given there wins
    assert opts("platform.spark.conf.spark.driver.extraJavaOptions=-XX:TieredStopAtLevel=4") == (
        f"{quick} -XX:+UseSerialGC -XX:TieredStopAtLevel=4")
    assert opts(launched=True) is None  # spark-submit started the JVM: its options stand
    assert opts("platform.spark.master=spark://127.0.0.1:7077") is None
    with pytest.raises(ConfigError, match=r"platform.spark.jit must be one of quick, full, not 'fast'"):
        load_config("local", ["platform.spark.jit=fast"])


def test_the_gc_setting_reaches_a_local_driver_unless_its_own_options_name_a_collector():
    def opts(*sets, launched=False):
        return driver_options("platform.spark.jit=full", *sets, launched=launched)

    assert opts() == "-XX:+UseSerialGC"
    assert opts("platform.spark.gc=g1") == "-XX:+UseG1GC"
    assert opts("platform.spark.gc=parallel") == "-XX:+UseParallelGC"
    # a JVM given two collectors does not start: the one in the platform's own options is the only one
    own = "platform.spark.conf.spark.driver.extraJavaOptions"
    assert opts(f"{own}=-XX:+UseZGC -Xss4m") == "-XX:+UseZGC -Xss4m"
    assert opts(f"{own}=-XX:+UseStringDeduplication") == "-XX:+UseSerialGC -XX:+UseStringDeduplication"
    assert opts(launched=True) is None
    assert opts("platform.spark.master=spark://127.0.0.1:7077") is None
    with pytest.raises(ConfigError, match=r"platform.spark.gc must be one of serial, parallel, g1, "
                                          r"not 'zgc'"):
        load_config("local", ["platform.spark.gc=zgc"])
