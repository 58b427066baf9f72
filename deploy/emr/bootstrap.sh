#!/usr/bin/env bash
# EMR bootstrap action: runs on every node before Spark starts. Installs Python 3.11 and the instructlake
# wheel (built by `python build.py bundle`, uploaded next to this script) with its dependencies, so the
# driver and every executor import the same code.
#   aws emr create-cluster ... --bootstrap-actions Path=s3://BUCKET/instructlake/bootstrap.sh,Args=[s3://BUCKET/instructlake]
set -euo pipefail
PREFIX="${1:?usage: bootstrap.sh s3://BUCKET/instructlake (where the wheel and jobs/ were uploaded)}"
PY=python3.11
if ! command -v "$PY" >/dev/null; then
  sudo dnf install -y python3.11 python3.11-pip
fi
WORK=$(mktemp -d)
aws s3 cp --recursive --exclude "*" --include "instructlake-*.whl" "$PREFIX/" "$WORK/"
WHEEL=$(ls "$WORK"/instructlake-*.whl | sort | tail -1)
# torch first and alone (pinned), so nothing installed after it pulls another build
sudo "$PY" -m pip install --quiet "torch==2.13.0"
sudo "$PY" -m pip install --quiet "$WHEEL"
"$PY" -c "import instructlake.config as c; c.load_config('emr'); print('instructlake ready:', c.conf_dir())"
