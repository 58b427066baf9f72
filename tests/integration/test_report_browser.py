"""The HTML report of a pipeline-built warehouse, opened in headless Chromium (Debian's `chromium`, where it
is installed): it renders, every image decodes, every in-page link has its target, and a screenshot is
saved to .test-artifacts/report.png. Skipped where no Chromium is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
# headless, and quiet on a machine with no network: no background connections, no updates, no sync
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--virtual-time-budget=5000"]

CHECK = """<script>
window.addEventListener('load', () => {
  const bad = [];
  for (const img of document.images) {
    if (!img.complete || img.naturalWidth === 0) bad.push('image ' + (img.alt || img.src.slice(0, 80)));
  }
  for (const a of document.querySelectorAll('a[href^="#"]')) {
    const id = decodeURIComponent(a.getAttribute('href').slice(1));
    if (id && !document.getElementById(id)) bad.push('link ' + a.getAttribute('href'));
  }
  const sections = document.querySelectorAll('h2').length;
  const links = document.querySelectorAll('a[href^="#"]').length;
  document.body.setAttribute('data-check', JSON.stringify({images: document.images.length, sections, links, bad}));
});
</script>"""

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install "
                                                         "chromium)")


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120)


def test_report_renders_with_images_and_links(pipeline_lake, tmp_path):
    page = pipeline_lake.warehouse / "report" / "index.html"
    html = page.read_text(encoding="utf-8")
    # links to files beside the report (not in-page anchors, not data URIs) must exist
    for href in re.findall(r'(?:href|src)="([^"#][^"]*)"', html):
        if not href.startswith(("data:", "http://", "https://", "mailto:")):
            assert (page.parent / href).exists(), f"broken link {href}"
    checked = tmp_path / "index.html"
    checked.write_text(html.replace("</body>", CHECK + "</body>"), encoding="utf-8")
    r = chromium(["--dump-dom", checked.as_uri()], tmp_path / "profile")
    m = re.search(r"data-check=\"([^\"]*)\"", r.stdout)
    assert m, f"the page did not finish loading in Chromium: {r.stderr[-2000:]}"
    result = json.loads(m.group(1).replace("&quot;", '"'))
    assert result["bad"] == [], result["bad"]
    # runs, graph pictures, scores, contamination ...
    assert result["images"] >= 3 and result["sections"] >= 4
    assert result["links"] == result["sections"]  # the table of contents links every section

    out = ROOT / ".test-artifacts"
    out.mkdir(exist_ok=True)
    shot = out / "report.png"
    shot.unlink(missing_ok=True)
    r = chromium([f"--screenshot={shot}", "--window-size=1280,4000", page.as_uri()], tmp_path / "profile2")
    assert shot.exists() and shot.stat().st_size > 50_000, r.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
