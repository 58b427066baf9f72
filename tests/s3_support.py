"""Object storage for real in the tests: moto's S3 API server on 127.0.0.1 (a separate process speaking the
S3 REST API), reached through Hadoop's S3A connector as a user's cluster reaches S3 or an S3-compatible
store. Shared by the cluster test (an EMR-shaped run: executors in their own JVMs, data on S3) and the
object-storage test (the reference model trained and kept on S3)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from instructlake.cluster import free_port
from instructlake.jvm import local_jars

BUCKET = "lake"
KEY = "test"  # moto accepts any credentials


@dataclass
class S3:
    endpoint: str
    client: object

    def keys(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def upload(self, path: Path, key: str) -> str:
        """A file, or a directory's files under key/; the s3a:// URI of what was uploaded."""
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            self.client.upload_file(str(f), BUCKET, key if f == path else f"{key}/{f.relative_to(path)}")
        return f"s3a://{BUCKET}/{key}"

    def download(self, prefix: str, dest: Path) -> Path:
        for key in self.keys(prefix):
            out = dest / key
            out.parent.mkdir(parents=True, exist_ok=True)
            if not key.endswith("/"):
                self.client.download_file(BUCKET, key, str(out))
        return dest / prefix

    def hadoop_settings(self) -> dict[str, str]:
        """Hadoop's fs.s3a.* settings a user gives for an S3-compatible endpoint."""
        return {
            "fs.s3a.endpoint": self.endpoint, "fs.s3a.endpoint.region": "us-east-1",
            "fs.s3a.path.style.access": "true", "fs.s3a.connection.ssl.enabled": "false",
            "fs.s3a.access.key": KEY, "fs.s3a.secret.key": KEY,
            "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        }

    def config_file(self, path: Path) -> Path:
        """The same settings as a user's --config file (platform.spark.conf)."""
        lines = ["platform:", "  spark:", "    conf:"]
        lines += [f'      spark.hadoop.{k}: "{v}"' for k, v in self.hadoop_settings().items()]
        path.write_text("\n".join(lines) + "\n")
        return path


def s3a_jars() -> list[Path]:
    """The S3A connector's JARs setup fetched (jvm/pom.xml, profile s3)."""
    jars = local_jars(["s3"]).get("s3")
    if not jars:
        pytest.fail("no S3A JARs under the venv: `python build.py setup` fetches them "
                    "(jvm/pom.xml, profile s3)")
    return jars


def serve() -> Iterator[S3]:
    """moto's server on a free port with one bucket, until the generator is closed."""
    import boto3

    s3a_jars()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY, aws_secret_access_key=KEY,
                          region_name="us-east-1")
    deadline = time.time() + 60
    while True:
        try:
            client.create_bucket(Bucket=BUCKET)
            break
        except Exception:  # noqa: BLE001 - not listening yet
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.3)
    try:
        yield S3(endpoint, client)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
