"""One sample's quality judgement: its signals and the reasons it fails the filter config, in pure Python
(the filter stage calls `judge` in its Python workers). One small function per criterion."""

from __future__ import annotations

from typing import Any

from instructlake.config_quality import FilterConfig
from instructlake.quality import langid, signals


def answers_of(conversation: list[dict[str, Any]]) -> str:
    return "\n\n".join(t.get("content") or "" for t in conversation if t.get("role") == "assistant")


Measured = tuple[str, float, list[str], dict[str, float], dict[str, str]]


def measure(conversation: list[dict[str, Any]]) -> Measured:
    """(language, its confidence, each turn's language, numeric signals, textual findings) of a
    conversation."""
    answers = answers_of(conversation)
    texts = [t.get("content") or "" for t in conversation]
    lang, conf = langid.detect("\n".join(texts))
    turn_langs = [langid.detect(t)[0] for t in texts]
    found = {"refusal": signals.refusal(answers), "truncated": signals.truncated(answers)}
    sig = {"response_chars": float(len(answers)), "turns": float(len(conversation)),
           **signals.repetition(answers),
           "refusal": float(found["refusal"] is not None), "truncated": float(found["truncated"] is not None),
           "mojibake": float(any(signals.mojibake(t) for t in texts))}
    return lang, conf, turn_langs, sig, {k: v for k, v in found.items() if v}


def language_reasons(lang: str, conf: float, cfg: FilterConfig) -> list[str]:
    # an undetermined or unsure language is kept: the detector is not sure enough to remove anything
    if not cfg.keep_languages or lang == langid.UNDETERMINED or conf < cfg.min_lang_confidence:
        return []
    if lang in cfg.keep_languages:
        return []
    return [f"language: {lang} ({conf:.2f}) is not in filter.keep_languages"]


def length_reasons(sig: dict[str, float], cfg: FilterConfig) -> list[str]:
    n = int(sig["response_chars"])
    if cfg.min_response_chars and n < cfg.min_response_chars:
        return ["length: empty answer" if n == 0 else
                f"length: answer of {n} chars, under filter.min_response_chars {cfg.min_response_chars}"]
    if cfg.max_response_chars and n > cfg.max_response_chars:
        return [f"length: answer of {n} chars, over filter.max_response_chars {cfg.max_response_chars}"]
    return []


def repetition_reasons(sig: dict[str, float], cfg: FilterConfig) -> list[str]:
    over = [(k, limit) for k, limit in cfg.repetition.items() if sig[k] > limit]
    return [f"repetition: {k} {sig[k]:.2f} > {limit}" for k, limit in over]


def refusal_reasons(found: dict[str, str], cfg: FilterConfig) -> list[str]:
    return [f"refusal: '{found['refusal']}'"] if cfg.refusals and "refusal" in found else []


def truncation_reasons(found: dict[str, str], cfg: FilterConfig) -> list[str]:
    return [f"truncated: {found['truncated']}"] if cfg.truncated and "truncated" in found else []


def mojibake_reasons(sig: dict[str, float], cfg: FilterConfig) -> list[str]:
    return ["mojibake: garbled text (wrong codec)"] if cfg.mojibake and sig["mojibake"] else []


def judge(conversation: list[dict[str, Any]], cfg: FilterConfig) -> dict[str, Any]:
    """A quality row's fields for one conversation (without sample_id, config_hash and time)."""
    lang, conf, turn_langs, sig, found = measure(conversation)
    reasons = [*language_reasons(lang, conf, cfg), *length_reasons(sig, cfg),
               *repetition_reasons(sig, cfg), *refusal_reasons(found, cfg), *truncation_reasons(found, cfg),
               *mojibake_reasons(sig, cfg)]
    return {"lang": lang, "lang_confidence": conf, "turn_langs": turn_langs, "signals": sig,
            "passed": not reasons, "reasons": reasons}


def reason_kind(reason: str) -> str:
    """The criterion a reason names ('repetition', 'language', ...): what the counts group by."""
    return reason.split(":", 1)[0]
