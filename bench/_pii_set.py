"""Builds data/samples/labelled/pii_planted.jsonl, the labelled set `bench pii` and tests/unit/test_pii.py
score the scrub stage's detectors on:

    python bench/_pii_set.py            # writes the file (deterministic: the same file every time)
    python bench/_pii_set.py --review   # prints the base texts' own candidates, for labelling KNOWN

1,000 real texts from data/samples (instructions, inputs and answers; half of them with code), chosen at
random with a fixed seed. Into 600 of them one value is planted at a paragraph or sentence boundary,
inside a sentence or a code line of its kind: 480 PII values (e-mail addresses, phone numbers in several
countries' formats, public IPv4 and IPv6 addresses, Luhn-valid card numbers of each network and grouping,
secrets in each provider's format, private key blocks, credentials in URLs and key-like assignments) and
120 look-alikes that are not PII (example-domain addresses, private and documentation IPs, version
numbers, Luhn-invalid card numbers, invalid phone numbers, placeholder keys, hashes and UUIDs). A planted
value's span and kind are recorded as it is inserted, not found by any detector.

The base texts' own PII (mostly e-mail addresses in tool-call and resume examples) is labelled by hand:
`--review` lists every candidate a loose scan finds in them (anything with an @, digit groups of phone
length, dotted quads, long mixed tokens, key headers), and KNOWN below holds those judged PII under the
stage's definition (an address at a domain that is not reserved for examples; a valid phone number; ...).
Every other candidate is a look-alike the detectors must leave alone.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import string
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
OUT = SAMPLES / "labelled" / "pii_planted.jsonl"
N_TEXTS, N_PLANTED, N_LOOKALIKES = 1000, 480, 120

# the base texts' own PII, judged by hand from `--review` (value -> kind)
# (the (123) 456-xxxx numbers are not valid: no North American area code starts with 1; and
# yourname@yourdomain.com is a tutorial's stand-in)
KNOWN: dict[str, str] = {"boss@company.com": "EMAIL", "jdoe@email.com": "EMAIL"}


def base_texts() -> list[tuple[str, str]]:
    """(source file, text) of every instruction, input and answer in the sample files, 40 to 3,000 chars."""
    out = []

    def add(src, text):
        if isinstance(text, str) and 40 <= len(text) <= 3000:
            out.append((src, text))

    for name in ("alpaca_en_demo.json", "cherry_alpaca_5_percent.json"):
        for r in json.loads((SAMPLES / name).read_text(encoding="utf-8")):
            for k in ("instruction", "input", "output"):
                add(name, r.get(k))
    for name in ("glaive_toolcall_en_demo.json", "dummy_conversation.json"):
        for r in json.loads((SAMPLES / name).read_text(encoding="utf-8")):
            for t in r["conversations"]:
                add(name, t["value"])
    for r in json.loads((SAMPLES / "kto_en_demo.json").read_text(encoding="utf-8")):
        for m in r["messages"]:
            add("kto_en_demo.json", m["content"])
    for line in (SAMPLES / "en_100_tree.jsonl").read_text(encoding="utf-8").splitlines():
        stack = [json.loads(line)["prompt"]]
        while stack:
            node = stack.pop()
            add("en_100_tree.jsonl", node["text"])
            stack.extend(node.get("replies", []))
    for line in (SAMPLES / "seed_tasks.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        add("seed_tasks.jsonl", r["instruction"])
        for inst in r["instances"]:
            add("seed_tasks.jsonl", inst["input"])
            add("seed_tasks.jsonl", inst["output"])
    return out


def has_code(text: str) -> bool:
    return "```" in text or bool(
        re.search(r"\b(def|import|function|return|class|SELECT)\b|[{};]\s*$", text, re.M)
    )


# ---------------------------------------------------------------- planted values

FIRST = ["maria", "john", "wei", "aisha", "lukas", "sofia", "raj", "emma", "omar", "yuki", "chloe", "diego"]
LAST = ["garcia", "smith", "chen", "khan", "muller", "rossi", "patel", "brown", "haddad", "tanaka", "dubois"]
DOMAINS = [
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.co.uk",
    "proton.me",
    "acme-corp.com",
    "uni-heidelberg.de",
    "company.io",
    "mail.ru",
    "qq.com",
    "icloud.com",
    "fastmail.fm",
]


def rand_str(rng, n, alphabet=string.ascii_letters + string.digits):
    return "".join(rng.choice(alphabet) for _ in range(n))


def email(rng):
    f, la = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice(
        [f"{f}.{la}", f"{f}{rng.randint(1, 99)}", f"{f[0]}{la}", f"{f}_{la}", f"{la}.{f}+news"]
    )
    return local + "@" + rng.choice(DOMAINS)


def phone(rng):
    # valid numbers (area codes and exchanges that exist) in the ways people write them
    us = [("212", "415", "617", "312", "206", "512", "303", "702")]
    a, ex, n = rng.choice(us[0]), rng.randint(201, 989), rng.randint(0, 9999)
    ex = ex if ex % 100 != 11 else ex + 1
    return rng.choice(
        [
            f"({a}) {ex}-{n:04d}",
            f"{a}-{ex}-{n:04d}",
            f"+1 {a} {ex} {n:04d}",
            f"{a}.{ex}.{n:04d}",
            f"+1-{a}-{ex}-{n:04d}",
            f"+44 20 7{rng.randint(100, 999)} {rng.randint(1000, 9999)}",
            f"+49 30 {rng.randint(1000000, 9999999)}",
            f"+33 1 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
            f"+91 98{rng.randint(100, 999)} {rng.randint(10000, 99999)}",
        ]
    )


def ipv4(rng):
    import ipaddress

    while True:
        ip = ipaddress.IPv4Address(rng.randint(0x01000000, 0xDFFFFFFF))
        if ip.is_global and str(ip) not in ("8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "9.9.9.9"):
            return str(ip)


def ipv6(rng):
    groups = [f"{rng.randint(0x2400, 0x2A0F):x}"] + [f"{rng.randint(0, 0xFFFF):x}" for _ in range(7)]
    if rng.random() < 0.5:
        return ":".join(groups)
    return ":".join(groups[:3]) + "::" + groups[-1]


def luhn_complete(prefix_digits: str, length: int, rng) -> str:
    body = prefix_digits + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix_digits) - 1))
    for check in "0123456789":
        d = body + check
        total = sum(
            (int(c) * 2 - 9 if int(c) * 2 > 9 else int(c) * 2) if i % 2 else int(c)
            for i, c in enumerate(reversed(d))
        )
        if total % 10 == 0:
            return d
    raise AssertionError


def card(rng, valid=True):
    prefix, length = rng.choice(
        [
            ("4", 16),
            ("51", 16),
            ("55", 16),
            ("2221", 16),
            ("34", 15),
            ("37", 15),
            ("6011", 16),
            ("35", 16),
            ("4", 13),
        ]
    )
    if prefix == "35":
        prefix = f"35{rng.randint(28, 89)}"
    digits = luhn_complete(prefix, length, rng)
    if not valid:  # one digit off: the check fails
        digits = digits[:-1] + str((int(digits[-1]) + rng.randint(1, 9)) % 10)
    if length == 16 and rng.random() < 0.6:
        sep = rng.choice([" ", "-"])
        return sep.join(digits[i : i + 4] for i in range(0, 16, 4))
    if length == 15 and rng.random() < 0.5:
        return f"{digits[:4]} {digits[4:10]} {digits[10:]}"
    return digits


def secret(rng):
    kind = rng.randrange(14)
    u, a = string.ascii_uppercase + string.digits, string.ascii_letters + string.digits
    if kind == 0:
        return "AKIA" + rand_str(rng, 16, u)
    if kind == 1:
        return "ghp_" + rand_str(rng, 36)
    if kind == 2:
        return "sk-proj-" + rand_str(rng, 48, a + "_-")
    if kind == 3:
        return (
            "xoxb-"
            + f"{rng.randint(10**10, 10**11)}-{rng.randint(10**10, 10**11)}-"
            + rand_str(rng, 24).lower()
        )
    if kind == 4:
        return "sk_live_" + rand_str(rng, 24)
    if kind == 5:
        return "AIza" + rand_str(rng, 35, a + "_-")
    if kind == 6:
        return "hf_" + rand_str(rng, 34)
    if kind == 7:
        return "glpat-" + rand_str(rng, 20, a + "_-")
    if kind == 8:
        return "SG." + rand_str(rng, 22, a + "_-") + "." + rand_str(rng, 43, a + "_-")
    if kind == 9:
        import base64

        head = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
        body = (
            base64.urlsafe_b64encode(json.dumps({"sub": rng.randint(1, 10**6)}).encode()).decode().rstrip("=")
        )
        return f"{head}.{body}.{rand_str(rng, 43, a + '_-')}"
    if kind == 10:
        return "npm_" + rand_str(rng, 36)
    if kind == 11:
        return "sk-ant-api03-" + rand_str(rng, 80, a + "_-")
    if kind == 12:
        return "github_pat_" + rand_str(rng, 82, a + "_")
    return rand_str(rng, 32)  # a bare random key: found only in a key-like assignment (its template)


def private_key(rng):
    lines = [rand_str(rng, 64, string.ascii_letters + string.digits + "+/") for _ in range(rng.randint(3, 8))]
    kind = rng.choice(["RSA ", "EC ", "OPENSSH ", ""])
    return f"-----BEGIN {kind}PRIVATE KEY-----\n" + "\n".join(lines) + f"\n-----END {kind}PRIVATE KEY-----"


# each planted kind: (value maker, templates; {v} is the value). Code templates for code texts.
PLANTS = {
    "EMAIL": (
        email,
        [
            "You can reach me at {v} if anything is unclear.",
            "Contact: {v}",
            "Send the report to {v} by Friday.",
            'recipient = "{v}"',
            "My email is {v}.",
        ],
    ),
    "PHONE": (
        phone,
        [
            "Call me at {v} after 5pm.",
            "Phone: {v}",
            "Our office number is {v}.",
            "For support, dial {v} (Mon-Fri).",
        ],
    ),
    "IP_ADDRESS4": (
        ipv4,
        [
            "The server at {v} stopped answering.",
            'HOST = "{v}"',
            "ssh admin@{v} -p 22",
            "Requests came from {v} all night.",
        ],
    ),
    "IP_ADDRESS6": (ipv6, ["Its address is {v}.", 'bind_addr = "{v}"']),
    "CREDIT_CARD": (
        lambda rng: card(rng),
        ["My card number is {v}, expiry 09/27.", "Card: {v}", "Please charge {v} for the order."],
    ),
    "SECRET": (
        secret,
        [
            'api_key = "{v}"',
            "export API_TOKEN={v}",
            'headers = {{"Authorization": "Bearer {v}"}}',
            '"client_secret": "{v}"',
            "Here is my key: {v}",
        ],
    ),
    "PRIVATE_KEY": (private_key, ["{v}"]),
    "URL_CREDENTIAL": (
        lambda rng: rand_str(rng, 14),
        [
            "DATABASE_URL=postgres://app:{v}@db.internal:5432/app",
            "ftp://deploy:{v}@files.acme-corp.com/upload",
        ],
    ),
}
KIND_OF = {
    "IP_ADDRESS4": "IP_ADDRESS",
    "IP_ADDRESS6": "IP_ADDRESS",
    "PRIVATE_KEY": "SECRET",
    "URL_CREDENTIAL": "SECRET",
}
WEIGHTS = {
    "EMAIL": 90,
    "PHONE": 80,
    "IP_ADDRESS4": 60,
    "IP_ADDRESS6": 20,
    "CREDIT_CARD": 70,
    "SECRET": 120,
    "PRIVATE_KEY": 20,
    "URL_CREDENTIAL": 20,
}

LOOKALIKES = [
    lambda rng: f"Write to {rng.choice(FIRST)}@example.com for details.",
    lambda rng: f'user = "{rng.choice(FIRST)}@example.org"',
    lambda rng: f"The router is at 192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}.",
    lambda rng: f"Listen on 127.0.0.1:{rng.randint(1024, 65535)} or 0.0.0.0.",
    lambda rng: f"Use the documentation range, e.g. 203.0.113.{rng.randint(1, 254)}.",
    lambda rng: (
        f"Upgrade to version {rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}."
        f"{rng.randint(0, 999)}."
    ),
    lambda rng: "Use Google's DNS at 8.8.8.8 or Cloudflare's 1.1.1.1.",
    lambda rng: f"Order number {card(rng, valid=False)} has shipped.",
    lambda rng: f"Call (123) 456-{rng.randint(1000, 9999)} for a demo.",
    lambda rng: f"{rng.randint(10000, 99999)} + {rng.randint(10**9, 10**10)} = ?",
    lambda rng: 'api_key = "YOUR_API_KEY"',
    lambda rng: 'password = "your-password-here"',
    lambda rng: 'OPENAI_API_KEY = os.environ["OPENAI_API_KEY"]',
    lambda rng: f"commit {rand_str(rng, 40, '0123456789abcdef')}",
    lambda rng: f"sha256: {rand_str(rng, 64, '0123456789abcdef')}",
    lambda rng: (
        f'id = "{rand_str(rng, 8, "0123456789abcdef")}-{rand_str(rng, 4, "0123456789abcdef")}-4'
        f"{rand_str(rng, 3, '0123456789abcdef')}-a{rand_str(rng, 3, '0123456789abcdef')}-"
        f'{rand_str(rng, 12, "0123456789abcdef")}"'
    ),
    lambda rng: "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
    lambda rng: (
        f"ISBN 978-{rng.randint(0, 1)}-{rng.randint(100, 999)}-"
        f"{rng.randint(10000, 99999)}-{rng.randint(0, 9)}"
    ),
    lambda rng: "git clone git@github.com:owner/project.git",
    lambda rng: f"Timestamp {rng.randint(1_500_000_000, 1_800_000_000)} in seconds.",
]


def insert(text: str, snippet: str, rng) -> tuple[str, int]:
    """`text` with `snippet` put at a paragraph or sentence boundary (on its own line); where it starts."""
    cuts = [m.end() for m in re.finditer(r"\n\n|(?<=[.!?])\s", text)] or [len(text)]
    at = rng.choice(cuts + [len(text)])
    before = text[:at].rstrip(" ")
    joiner = "\n" if before and not before.endswith("\n") else ""
    new = before + joiner + snippet + "\n" + text[at:].lstrip(" ")
    return new, len(before) + len(joiner)


def build(seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    texts = base_texts()
    code = [t for t in texts if has_code(t[1])]
    prose = [t for t in texts if not has_code(t[1])]
    chosen = rng.sample(code, N_TEXTS // 2) + rng.sample(prose, N_TEXTS // 2)
    rng.shuffle(chosen)
    kinds = [k for k, w in WEIGHTS.items() for _ in range(w)]
    assert len(kinds) == N_PLANTED
    rng.shuffle(kinds)
    rows = []
    for i, (src, text) in enumerate(chosen):
        spans = []
        if i < N_PLANTED:
            key = kinds[i]
            make, templates = PLANTS[key]
            value, template = make(rng), rng.choice(templates)
            snippet = template.format(v=value)
            text, at = insert(text, snippet, rng)
            start = at + snippet.index(value)
            spans.append(
                {
                    "start": start,
                    "end": start + len(value),
                    "kind": KIND_OF.get(key, key),
                    "value": value,
                    "planted": True,
                }
            )
        elif i < N_PLANTED + N_LOOKALIKES:
            text, _ = insert(text, rng.choice(LOOKALIKES)(rng), rng)
        spans += [
            {"start": m.start(), "end": m.end(), "kind": KNOWN[v], "value": v, "planted": False}
            for v in KNOWN
            for m in re.finditer(re.escape(v), text)
            if not any(p["start"] < m.end() and m.start() < p["end"] for p in spans)
        ]
        for s in spans:
            assert text[s["start"] : s["end"]] == s["value"], (i, s)
        rows.append({"id": i, "source": src, "text": text, "spans": sorted(spans, key=lambda s: s["start"])})
    return rows


LOOSE = re.compile(
    r"[\w.+%-]+@[\w.-]+|\+?\(?\d[\d ().-]{6,}\d|\b\d{1,3}(?:\.\d{1,3}){3}\b|"
    r"[A-Za-z0-9_\-+/]{20,}|PRIVATE KEY|://[^\s/]*:[^\s/]*@"
)


def review(rows: list[dict]) -> None:
    seen = {}
    for r in rows:
        planted = [(s["start"], s["end"]) for s in r["spans"] if s["planted"]]
        for m in LOOSE.finditer(r["text"]):
            if any(a < m.end() and m.start() < b for a, b in planted):
                continue
            seen.setdefault(m.group(), r["source"])
    for v, src in sorted(seen.items()):
        if (
            re.search(r"\d|@|KEY|://", v)
            or re.search(r"[a-z].*[A-Z]|[A-Z].*[a-z]", v)
            and re.search(r"\d", v)
        ):
            print(f"{src:32} {KNOWN.get(v, '-'):12} {v!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--review", action="store_true", help="list the base texts' own candidates")
    args = ap.parse_args()
    rows = build()
    if args.review:
        review(rows)
        return
    with OUT.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    n = sum(len(r["spans"]) for r in rows)
    print(f"wrote {OUT.relative_to(ROOT)}: {len(rows)} texts, {n} labelled spans", file=sys.stderr)


if __name__ == "__main__":
    main()
