"""The scrub stage's detectors: precision and recall on the labelled set, and the look-alikes one by one."""

from __future__ import annotations

import json

import pytest

from instructlake.scrub.detect import KINDS, find, luhn_ok, scrub
from instructlake.scrub.evaluate import score
from tests.conftest import SAMPLES

LABELLED = SAMPLES / "labelled" / "pii_planted.jsonl"


def test_precision_and_recall_on_the_labelled_set():
    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]
    result = score(rows, find)
    misses = result.pop("misses")
    for kind in KINDS:
        r = result[kind]
        assert r["tp"] + r["fn"] >= 50, (kind, r)  # every kind is in the set
        assert r["precision"] >= 0.95 and r["recall"] >= 0.95, (kind, r, misses[:10])


@pytest.mark.parametrize(
    "text",
    [
        "Write to maria@example.com or bob@mail.example; clone git@github.com:owner/repo.git; icon@2x.png",
        'smtp.login("yourname@yourdomain.com", pw); ftp://username:password@ftp.example.com',
        "Router 192.168.1.1, loopback 127.0.0.1, docs 203.0.113.7, DNS 8.8.8.8, version 1.2.3.4, ::1",
        "Chrome 86.0.4240.111; order 4111-1111-1111-1112 (fails Luhn); ISBN 978-0-306-40615-7",
        "(123) 456-7890 is no number; 95808 + 3036165596 = 3045734404; 1699999999 seconds",
        "3    15    3    7    8    6   11    9",
        'api_key = "YOUR_API_KEY"; password = "your-password-here"; key = os.environ["OPENAI_API_KEY"]',
        "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, "
        "id 123e4567-e89b-12d3-a456-426614174000",
        "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
    ],
)
def test_look_alikes_are_left_alone(text):
    assert find(text) == [], [(text[s.start : s.end], s.kind) for s in find(text)]


def test_each_kind_is_replaced_by_its_placeholder():
    key = (
        "-----BEGIN PRIVATE KEY-----\n"
        + "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" * 2
        + "\n-----END PRIVATE KEY-----"
    )
    text = (
        f"Mail jane.doe@gmail.com, call (212) 555-0123 or +44 20 7946 0958, server 52.14.200.7, "
        f"card 4111 1111 1111 1111, token ghp_{'a1B2' * 9}, "
        f"conn postgres://app:Zx81kQ0pLm2Ww9@db/x\n{key}\nend"
    )
    spans = find(text)
    assert [s.kind for s in spans] == [
        "EMAIL",
        "PHONE",
        "PHONE",
        "IP_ADDRESS",
        "CREDIT_CARD",
        "SECRET",
        "SECRET",
        "SECRET",
    ]
    assert scrub(text, spans) == (
        "Mail <EMAIL>, call <PHONE> or <PHONE>, server <IP_ADDRESS>, card <CREDIT_CARD>, "
        "token <SECRET>, conn postgres://app:<SECRET>@db/x\n<SECRET>\nend"
    )


def test_overlapping_finds_keep_the_first_and_longest():
    # the key assignment and the GitHub format overlap: one placeholder, not two
    text = f'token = "ghp_{"Q9w8" * 9}"'
    assert scrub(text, find(text)) == 'token = "<SECRET>"'


def test_luhn():
    assert luhn_ok("4111111111111111") and luhn_ok("378282246310005")
    assert not luhn_ok("4111111111111112")
