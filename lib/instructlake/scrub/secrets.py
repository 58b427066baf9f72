"""Secrets in a text: API keys, tokens, private keys, credentials in URLs and key-like assignments.

Three sources of rules:
- detect-secrets' format plugins (AWS, GitHub, GitLab, Slack, Stripe, JWT, SendGrid, npm, PyPI, ...),
  maintained upstream as providers change their formats. Its entropy and keyword plugins are left out:
  on code answers they fire on hashes, base64 images and every `password = ...` in a tutorial.
- The formats it lacks (FORMATS below).
- A key-like assignment (`api_key = "..."`, `"client_secret": "..."`) whose value looks random: long
  enough, mixed characters, high entropy, and no placeholder word (YOUR_API_KEY, <token>, xxxx, ...).
A private key counts only with a body of real key material (an example's "..." body does not).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from functools import lru_cache

from instructlake.scrub.span import Span

# detect-secrets plugins whose patterns are formats of one provider
# (Cloudant's, IBM Cloud's and SoftLayer's keyword patterns are left out too: each costs as much as all the
# others together on a long text, for credentials rarely seen in instruction data.)
_PLUGINS = ("AWSKeyDetector", "AzureStorageKeyDetector", "BasicAuthDetector", "DiscordBotTokenDetector",
            "GitHubTokenDetector", "GitLabTokenDetector", "JwtTokenDetector", "MailchimpDetector",
            "NpmDetector", "OpenAIDetector", "PypiTokenDetector", "SendGridDetector", "SlackDetector",
            "SquareOAuthDetector", "StripeDetector", "TelegramBotTokenDetector", "TwilioKeyDetector")

FORMATS = (
    r"AIza[0-9A-Za-z_-]{35}",  # Google API key
    r"ya29\.[0-9A-Za-z_-]{30,}",  # Google OAuth access token
    r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}",  # OpenAI project / service keys
    r"sk-[A-Za-z0-9]{48}(?![A-Za-z0-9])",  # OpenAI legacy key
    r"sk-ant-(?:api|admin)\d\d-[A-Za-z0-9_-]{40,}",  # Anthropic
    r"hf_[A-Za-z0-9]{34,}",  # Hugging Face token
    r"github_pat_[A-Za-z0-9_]{60,}",  # GitHub fine-grained token
    r"[rs]k_test_[0-9a-zA-Z]{24,}",  # Stripe test key
    r"xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]{32,}",  # Slack app token
    r"dop_v1_[a-f0-9]{64}",  # DigitalOcean
    r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",  # Shopify
    r"npm_[A-Za-z0-9]{36}",  # npm
    r"glpat-[A-Za-z0-9_-]{20}",  # GitLab personal token (short form)
    r"(?:AccountKey|SharedAccessKey)=[A-Za-z0-9+/]{40,}={0,2}",  # Azure connection strings
)
_FORMAT = re.compile("|".join(f"(?:{p})" for p in FORMATS))

_PRIVATE_KEY = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY((?: BLOCK)?)-----(.*?)"
                          r"(?:-----END \1PRIVATE KEY\2-----|\Z)", re.S)
_KEY_BODY = re.compile(r"[A-Za-z0-9+/=]{40,}")

# a key-like name (my_api_key, DB_PASSWORD, "client_secret") assigned a quoted value, or an unquoted one
# that is a single key-like token (API_TOKEN=..., "my key: ...")
_ASSIGNED = re.compile(
    r"(?i)(?:api[_-]?key|secret|access[_-]?key|token|password|passwd|pwd|private[_-]?key|\bkey)"
    r"[a-z0-9_]{0,20}[\"']?\s*(?:=|:|:=|=>)\s*"
    r"(?:[br]?[\"'`]([^\"'`\s]{12,200})[\"'`]|([A-Za-z0-9_+/=.-]{16,200})(?![^\s,;)]))")
_ASSIGNED_WORDS = ("key", "secret", "token", "pass", "pwd")
_BEARER = re.compile(r"(?i)\bBearer\s+([A-Za-z0-9._~+/-]{24,}=*)")
# words in a value that make it an example, not a secret
_PLACEHOLDER = re.compile(r"(?i)your|example|sample|dummy|placeholder|changeme|change[_-]?me|here|replace|"
                          r"xxxx|\*\*\*|\.\.\.|<|>|\{|\}|\$|%s|secret|password|token|apikey|api_key|insert|"
                          r"redacted|test|fake|abc123|1234|0000|qwerty|todo|environ|getenv|config")


def secret_spans(text: str) -> Iterator[Span]:
    for start, end in _private_keys(text):
        yield Span(start, end, "SECRET")
    for pattern in _plugin_patterns():
        for m in pattern.finditer(text):
            start, end = _value_span(m)
            if end - start < m.end() - m.start() and _PLACEHOLDER.search(text[start:end]):
                continue  # a credential field holding an example (ftp://username:password@...)
            yield Span(start, end, "SECRET")
    for m in _FORMAT.finditer(text):
        yield Span(m.start(), m.end(), "SECRET")
    lowered = text.lower()
    patterns = [_BEARER] if "bearer" in lowered else []
    if any(w in lowered for w in _ASSIGNED_WORDS):
        patterns.append(_ASSIGNED)
    for pattern in patterns:
        for m in pattern.finditer(text):
            g = 1 if m.group(1) else m.re.groups
            if looks_random(m.group(g)):
                yield Span(m.start(g), m.end(g), "SECRET")


def _private_keys(text: str) -> Iterator[tuple[int, int]]:
    if "PRIVATE KEY" not in text:
        return
    for m in _PRIVATE_KEY.finditer(text):
        if _KEY_BODY.search(m.group(3)):
            yield m.start(), m.end()


@lru_cache(maxsize=1)
def _plugin_patterns() -> list[re.Pattern]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    classes = {c.__name__: c for c in get_mapping_from_secret_type_to_class().values()}
    missing = [n for n in _PLUGINS if n not in classes]
    if missing:  # a detect-secrets release renamed a plugin: say so rather than silently detect less
        raise RuntimeError(f"detect-secrets has no plugin(s) {missing}; pin the version pyproject.toml names")
    return [p for n in _PLUGINS for p in classes[n].denylist]


def _value_span(m: re.Match) -> tuple[int, int]:
    """The secret itself: the last captured group when it holds the value (a keyword pattern's password),
    the whole match when the groups are only a prefix (GitHub's `(ghp|gho|...)_...`)."""
    for g in range(m.re.groups, 0, -1):
        if m.group(g) and len(m.group(g)) >= 8:
            return m.start(g), m.end(g)
    return m.start(), m.end()


def entropy(s: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def looks_random(value: str) -> bool:
    """A key-like value is a secret when it is not a placeholder and looks generated: at least 16 characters
    from at least two of lower case, upper case and digits, and at least 3.5 bits of entropy per character
    (an English word or a repeated pattern has less)."""
    if len(value) < 16 or _PLACEHOLDER.search(value):
        return False
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"\d"))
    return classes >= 2 and entropy(value) >= 3.5
