"""The curation stages' config sections in conf/defaults.yaml: `filter:` (which signals remove a sample) and
`scrub:` (which kinds of PII and secrets export replaces by placeholders)."""

from __future__ import annotations

from dataclasses import dataclass, field

from instructlake.errors import ConfigError
from instructlake.quality.signals import GOPHER


def _answers() -> dict[str, float]:
    """The defaults for chat answers: Gopher's cuts flag 6.9% of the demo's pool (songs with a chorus,
    worked sums that restate an expression, outlines); an answer stuck in a loop repeats most of itself."""
    return {k: 0.5 if k.startswith("dup_") else 0.3 for k in GOPHER}


@dataclass(frozen=True)
class FilterConfig:
    # Languages to keep (ISO 639-1 codes, as fastText's lid.176 gives them); empty: keep every language
    # and only report them. A sample is judged by its whole conversation's language; one whose language
    # is undetermined (too few letters: code, numbers) or below min_lang_confidence is kept.
    keep_languages: list[str] = field(default_factory=list)
    min_lang_confidence: float = 0.65
    # Bounds on the characters of the assistant turns together (0: no bound).
    min_response_chars: int = 1
    max_response_chars: int = 0
    # Gopher's repetition measures of the assistant turns' prose (code blocks left out; answers of at least
    # 50 words; signals.repetition): a measure above its threshold removes the sample; 1.0 turns one off.
    # The defaults are looser than Gopher's web-document cuts (signals.GOPHER), which suit chat answers
    # badly.
    repetition: dict[str, float] = field(default_factory=_answers)
    # Remove answers with a refusal or AI-disclaimer phrase (signals.REFUSALS), cut-off answers (an open code
    # fence, a prose paragraph stopping on a bare word) and mojibake.
    refusals: bool = True
    truncated: bool = True
    mojibake: bool = True
    # Filter the samples dedup kept only (the others are gone anyway).
    only_kept: bool = True
    # false: the pipeline does not run the filter and export does not require its verdicts (the manifest
    # says so); verdicts it gave earlier still remove their samples (drop the `quality` table to forget them).
    enabled: bool = True

    def __post_init__(self) -> None:
        # YAML maps may arrive with string values ("0.3"): thresholds are numbers
        try:
            object.__setattr__(self, "repetition", {k: float(v) for k, v in self.repetition.items()})
        except (TypeError, ValueError) as e:
            raise ConfigError(f"filter.repetition: thresholds must be numbers ({e})") from None
        if not 0.0 <= self.min_lang_confidence <= 1.0:
            raise ConfigError(f"filter.min_lang_confidence must be in [0, 1], not {self.min_lang_confidence}")
        if self.min_response_chars < 0 or self.max_response_chars < 0:
            raise ConfigError("filter.min_response_chars and filter.max_response_chars must be >= 0")
        if self.max_response_chars and self.max_response_chars < self.min_response_chars:
            raise ConfigError("filter.max_response_chars must be 0 (no bound) or at least "
                              "filter.min_response_chars")
        unknown = sorted(set(self.repetition) - set(GOPHER))
        if unknown:
            raise ConfigError(f"filter.repetition: unknown measure(s) {unknown} (known: {sorted(GOPHER)})")
        bad = [k for k, v in self.repetition.items() if not 0.0 < v <= 1.0]
        if bad:
            raise ConfigError(f"filter.repetition: thresholds must be in (0, 1]: {bad}")


SCRUB_KINDS = ("EMAIL", "PHONE", "IP_ADDRESS", "CREDIT_CARD", "SECRET")


@dataclass(frozen=True)
class ScrubConfig:
    # The kinds to find and replace by <KIND> placeholders in every turn and system prompt of an exported
    # sample (scrub/detect.py says what counts as each).
    kinds: list[str] = field(default_factory=lambda: list(SCRUB_KINDS))
    # Regions (ISO 3166 codes) whose national phone formats count without a +country prefix; numbers written
    # with + are found whatever this says.
    phone_regions: list[str] = field(default_factory=lambda: ["US"])
    # E-mail domains left alone besides the reserved example ones (example.com, *.test, ...): your own
    # support address, say.
    keep_email_domains: list[str] = field(default_factory=list)
    # false: the pipeline does not run scrub and export ships the text as it is (the manifest says so).
    enabled: bool = True

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in SCRUB_KINDS]
        if bad:
            raise ConfigError(f"scrub.kinds: unknown kind(s) {bad} (known: {list(SCRUB_KINDS)})")
        import phonenumbers

        regions = phonenumbers.SUPPORTED_REGIONS
        unknown = [r for r in self.phone_regions if r not in regions]
        if unknown:
            raise ConfigError(f"scrub.phone_regions: {unknown} are not region codes libphonenumber knows "
                              "(two upper-case letters, as US, GB, DE, IN)")
