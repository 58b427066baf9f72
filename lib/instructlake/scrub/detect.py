"""PII and secrets in a text: where each one is, of which kind, and the text with typed placeholders.

Kinds: EMAIL, PHONE, IP_ADDRESS, CREDIT_CARD, SECRET. Each detector is one function from a text to spans;
`find` runs the enabled ones and resolves overlaps (the earliest, then the longest span wins), `scrub`
replaces each span by `<KIND>`.

Precision matters as much as recall (code answers are full of things that look like these), so each
detector leaves out what cannot belong to anyone or is not what it looks like: reserved example domains
and SSH remotes for e-mail; private, loopback, documentation and public-resolver addresses and version
numbers for IP; numbers that libphonenumber does not call valid, bare digit runs and sums for phones;
numbers failing the Luhn check, without a card network's prefix or grouped unlike a card; and key-like
values that are placeholders or too regular to be random. Secret formats come from detect-secrets (its
format plugins, not its entropy or keyword ones) plus the key formats it lacks (secrets.py).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator

from instructlake.config_quality import SCRUB_KINDS
from instructlake.scrub.secrets import secret_spans
from instructlake.scrub.span import Span

# Bump when a rule changes: `pii` rows of an older version are checked again.
VERSION = "1"
KINDS = SCRUB_KINDS


# ---------------------------------------------------------------- e-mail

_EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
                    r"((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})(?![\w-])")
# RFC 2606 / 6761 names that cannot belong to anyone
_RESERVED_TLDS = {"example", "test", "invalid", "localhost", "local"}
_RESERVED_DOMAINS = {"example.com", "example.org", "example.net", "example.edu"}
# a file name with a density suffix (icon@2x.png), not an address
_IMAGE_SUFFIX = re.compile(r"^\d(?:\.\d)?x\.")
_URL_USER = re.compile(r"://[^\s/@]*:$")
# a tutorial's stand-in: yourname@yourdomain.com, my_gmail_address@gmail.com
_PLACEHOLDER_PART = re.compile(
    r"(?i)^(?:your|my[_.-]?(?:name|e?mail|gmail|address|user|account|domain|company))")


def emails(text: str, keep_domains: frozenset[str] = frozenset()) -> Iterator[Span]:
    for m in _EMAIL.finditer(text):
        domain = m.group(1).lower()
        if _reserved_domain(domain, keep_domains) or _IMAGE_SUFFIX.match(domain):
            continue
        if _PLACEHOLDER_PART.match(m.group()) or _PLACEHOLDER_PART.match(domain):
            continue
        if text.startswith(":", m.end()) and re.match(r":[\w~.-]+/", text[m.end():]):
            continue  # git@github.com:owner/repo.git is an SSH remote, not a mailbox
        if _URL_USER.search(text, max(0, m.start() - 200), m.start()):
            continue  # ftp://user:password@host: a URL's credentials, for the secret detector
        yield Span(m.start(), m.end(), "EMAIL")


def _reserved_domain(domain: str, keep: frozenset[str]) -> bool:
    labels = domain.split(".")
    if labels[-1] in _RESERVED_TLDS:
        return True
    tail = ".".join(labels[-2:])
    return tail in _RESERVED_DOMAINS or tail in keep or domain in keep


# ---------------------------------------------------------------- IP addresses

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:){2,7}(?::|(?::[0-9A-Fa-f]{1,4}){1,6}|[0-9A-Fa-f]{1,4})"
                   r"(?![\w:])")
_VERSION_BEFORE = re.compile(r"(?i)\b(?:version|ver\.?|v|release|build|chrome|firefox|safari)\s*[:(]?\s*$")
# public DNS resolvers: in every networking answer, and nobody's address
_RESOLVERS = frozenset({"8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "9.9.9.9", "149.112.112.112",
                        "208.67.222.222", "208.67.220.220"})
_GLOBAL_V6 = ipaddress.ip_network("2000::/3")
_DOCS_V6 = ipaddress.ip_network("2001:db8::/32")


def ip_addresses(text: str, keep: frozenset[str] = _RESOLVERS) -> Iterator[Span]:
    for m in _IPV4.finditer(text):
        ip = ipaddress.IPv4Address(m.group())
        if ip.is_global and m.group() not in keep and not _VERSION_BEFORE.search(text[max(0, m.start() - 12):
                                                                                        m.start()]):
            yield Span(m.start(), m.end(), "IP_ADDRESS")
    for m in _IPV6.finditer(text):
        try:
            ip6 = ipaddress.IPv6Address(m.group())
        except ValueError:
            continue
        if ip6 in _GLOBAL_V6 and ip6 not in _DOCS_V6:
            yield Span(m.start(), m.end(), "IP_ADDRESS")


# ---------------------------------------------------------------- credit cards

_CARD = re.compile(r"(?<![\w.+-])\d{4}(?:[ -]?\d{2,6}){2,4}(?![\w]|[.-]\d)")
# the card networks' number prefixes (IIN ranges) and lengths
_NETWORKS = [
    (re.compile(r"4"), {13, 16, 19}),  # Visa
    (re.compile(r"5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)"), {16}),  # Mastercard
    (re.compile(r"3[47]"), {15}),  # American Express
    (re.compile(r"6(?:011|5|4[4-9])"), {16, 17, 18, 19}),  # Discover
    (re.compile(r"35(?:2[89]|[3-8]\d)"), {16, 17, 18, 19}),  # JCB
    (re.compile(r"3(?:0[0-5]|[689])"), {14, 15, 16, 17, 18, 19}),  # Diners Club
    (re.compile(r"62"), {16, 17, 18, 19}),  # UnionPay
]
# how cards are written: unbroken, or in the groups printed on them
_CARD_GROUPS = {(4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4), (4, 4, 4, 1), (4, 4, 4, 2), (4, 4, 4, 3)}


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def credit_cards(text: str) -> Iterator[Span]:
    for m in _CARD.finditer(text):
        raw = m.group()
        digits = re.sub(r"\D", "", raw)
        if _card_shaped(raw) and _card_network(digits) and luhn_ok(digits):
            yield Span(m.start(), m.end(), "CREDIT_CARD")


def _card_shaped(raw: str) -> bool:
    seps = set(re.findall(r"[ -]", raw))
    if not seps:
        return True
    groups = tuple(len(g) for g in re.split(r"[ -]", raw))
    return len(seps) == 1 and groups in _CARD_GROUPS


def _card_network(digits: str) -> bool:
    return any(p.match(digits) and len(digits) in lengths for p, lengths in _NETWORKS)


# ---------------------------------------------------------------- phone numbers

_PHONE_HINT = re.compile(r"(?:\+|\(?\d)[\d ().-]{6,}\d")
_OPERATORS = set("+-*/=×÷^")


def phones(text: str, regions: tuple[str, ...] = ("US",)) -> Iterator[Span]:
    if not _PHONE_HINT.search(text):  # most texts have no run of 8 digits and separators: skip the parser
        return
    from phonenumbers import Leniency, PhoneNumberMatcher

    seen = set()
    for region in regions:
        for m in PhoneNumberMatcher(text, region, leniency=Leniency.VALID, max_tries=100_000):
            if (m.start, m.end) not in seen and _phone_shaped(text, m.start, m.end):
                seen.add((m.start, m.end))
                yield Span(m.start, m.end, "PHONE")


def _phone_shaped(text: str, start: int, end: int) -> bool:
    """Written as a phone number is, not as a number in a sum, a version or an id: it starts with + or
    has separators, and no operator, digit or dot stands right beside it."""
    raw = text[start:end]
    if re.search(r"\s\s", raw):
        return False  # digits in the columns of a table
    if not raw.startswith("+") and not re.search(r"\d[ ().-]+\d", raw):
        return False  # a bare run of digits: an id, a timestamp, a sum's term
    if "." in raw and not re.fullmatch(r"\(?\d{3}\)?\.\d{3}\.\d{4}", raw):
        return False  # dotted: 415.555.2671 only, not 86.0.4240.111
    if start and (text[start - 1].isalnum() or text[start - 1] in "._"):
        return False
    before, after = text[:start].rstrip(" "), text[end:].lstrip(" ")
    if re.match(r"\.?\d", text[end:]):
        return False  # part of a longer number
    if (before and before[-1] in _OPERATORS) or re.match(r"[+*/=×÷^]|-\s*\d", after):
        return False  # a term of a sum
    return True


# ---------------------------------------------------------------- all together

def find(text: str, kinds: tuple[str, ...] = KINDS, phone_regions: tuple[str, ...] = ("US",),
         keep_email_domains: frozenset[str] = frozenset()) -> list[Span]:
    """The spans to replace, in order, none overlapping: of overlapping spans the one that starts first
    (then the longest; a secret before anything else at the same place) wins."""
    if not text:
        return []
    detectors: dict[str, Callable[[str], Iterator[Span]]] = {
        "EMAIL": lambda t: emails(t, keep_email_domains), "PHONE": lambda t: phones(t, phone_regions),
        "IP_ADDRESS": ip_addresses, "CREDIT_CARD": credit_cards, "SECRET": secret_spans}
    found = [s for kind in kinds for s in detectors[kind](text)]
    found.sort(key=lambda s: (s.start, -(s.end - s.start), s.kind != "SECRET"))
    out: list[Span] = []
    for s in found:
        if not out or s.start >= out[-1].end:
            out.append(s)
    return out


def scrub(text: str, spans: list[Span]) -> str:
    """`text` with each span replaced by its kind's placeholder (<EMAIL>, <SECRET>, ...)."""
    parts, at = [], 0
    for s in spans:
        parts.append(text[at:s.start])
        parts.append(f"<{s.kind}>")
        at = s.end
    parts.append(text[at:])
    return "".join(parts)
