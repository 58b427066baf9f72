"""The filter stage's signals, each on texts made to have it and texts made not to, and over any text."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from instructlake.quality import langid, signals
from tests.conftest import SAMPLES

PROSE = ("The water cycle moves water between the oceans, the air and the land. Heat from the sun "
         "evaporates water from seas and lakes; the vapour rises, cools and condenses into clouds. When "
         "the droplets grow heavy they fall as rain or snow, which runs off into rivers or soaks into the "
         "ground, and in time the water reaches the sea again, where the cycle starts over.")


def test_a_looping_answer_repeats_and_prose_does_not():
    loop = "\n".join(["I will now list the steps again for you."] * 12)
    r = signals.repetition(loop)
    assert r["dup_line"] > 0.9 and r["dup_line_chars"] > 0.9
    assert r["dup_5gram"] > 0.9 and r["top_2gram"] > 0.15
    clean = signals.repetition(PROSE)
    assert all(v < 0.1 for v in clean.values()), clean


def test_repetition_is_not_judged_on_short_answers():
    assert set(signals.repetition("yes yes yes yes").values()) == {0.0}


def test_duplicate_ngrams_count_each_word_once():
    ws = ["a"] * 20  # every 5-gram repeats: every character is covered, once
    assert signals.duplicate_ngram_share(ws, 5) == 1.0
    assert signals.duplicate_ngram_share("one two three four five six".split(), 5) == 0.0


def test_refusals_and_disclaimers_with_either_apostrophe():
    assert signals.refusal("As an AI language model, I do not have opinions.") == "as an ai language model"
    said = "I\u2019m sorry, but I can\u2019t help with that request."
    assert signals.refusal(said) == "i'm sorry, but i can't"
    assert signals.refusal(PROSE) is None
    assert signals.refusal("The language model was trained on books.") is None


def test_truncated_answers():
    code = "Here is the code:\n```python\ndef f(x):\n    return x"
    assert signals.truncated(code) == "unbalanced code fence"
    cut = PROSE[:-60].rstrip(" ,.")
    assert signals.truncated(cut) == "ends mid-sentence"
    assert signals.truncated(PROSE) is None
    assert signals.truncated("```python\nprint(1)\n```") is None
    assert signals.truncated("Paris") is None  # short answers may end bare
    assert signals.truncated(PROSE + "\n- the first step\n- the last step") is None  # a list
    assert signals.truncated(PROSE + "\nTotal: 42") is None


def test_mojibake():
    assert signals.mojibake("The caf\u00c3\u00a9 serves cr\u00c3\u00a8me br\u00c3\u00bbl\u00c3\u00a9e.")
    assert not signals.mojibake("The caf\u00e9 serves cr\u00e8me br\u00fbl\u00e9e.")
    assert not signals.mojibake("")


def test_language_of_prose_not_of_code():
    assert langid.detect(PROSE)[0] == "en"
    assert langid.detect("Legen Sie die F\u00fc\u00dfe nicht auf die Instrumententafel.")[0] == "de"
    assert langid.detect("La pel\u00edcula me parece muy divertida y el final es perfecto.")[0] == "es"
    assert langid.detect("Bonjour, comment allez-vous aujourd'hui ? Il fait beau.")[0] == "fr"
    assert langid.detect("```python\nprint(1)\n```") == ("und", 0.0)
    lang, conf = langid.detect("Explain this:\n```python\nfor i in range(10):\n    print(i)\n```\nin plain "
                               "words, please, for a beginner who has never seen a loop.")
    assert lang == "en" and conf > 0.8


def test_the_sample_pool_is_mostly_clean():
    """Real answers from data/samples: few are flagged by any signal (the thresholds are Gopher's)."""
    rows = json.loads((SAMPLES / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    answers = [r["output"] for r in rows]
    looping = sum(signals.repetition(a)["dup_line"] > 0.3 for a in answers)
    refusing = sum(signals.refusal(a) is not None for a in answers)
    english = sum(langid.detect(r["instruction"])[0] == "en" for r in rows)
    assert looping < 0.02 * len(answers) and refusing < 0.02 * len(answers) and english > 0.95 * len(rows)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=2000))
def test_any_text_gives_bounded_signals(text):
    assert all(0.0 <= v <= 1.0 for v in signals.repetition(text).values())
    assert signals.truncated(text) in (None, "unbalanced code fence", "ends mid-sentence")
    assert isinstance(signals.mojibake(text), bool)
    lang, conf = langid.detect(text)
    assert lang and 0.0 <= conf <= 1.0 and (lang != "und" or conf == 0.0)


def test_the_filter_config_names_a_bad_setting():
    import pytest

    from instructlake.config import load_config
    from instructlake.errors import ConfigError

    cfg = load_config("local", ["filter.repetition={dup_line: 0.5}"]).filter
    assert cfg.repetition["dup_line"] == 0.5 and cfg.repetition["dup_5gram"] == 0.5  # merged with defaults
    with pytest.raises(ConfigError, match="unknown measure.*dup_lines"):
        load_config("local", ["filter.repetition={dup_lines: 0.5}"])
    with pytest.raises(ConfigError, match="thresholds must be in"):
        load_config("local", ["filter.repetition={dup_line: 1.5}"])
    with pytest.raises(ConfigError, match="max_response_chars"):
        load_config("local", ["filter.min_response_chars=100", "filter.max_response_chars=10"])


def test_an_unsure_language_is_kept():
    from instructlake.config_quality import FilterConfig
    from instructlake.quality.judge import judge

    cfg = FilterConfig(keep_languages=["en"])
    code = [{"role": "user", "content": "```\nx = 1\n```"},
            {"role": "assistant", "content": "```\ny = 2\n```"}]
    j = judge(code, cfg)
    assert j["lang"] == "und" and j["passed"], j
    french = [{"role": "user", "content": "Bonjour, comment allez-vous aujourd'hui ? Il fait beau."},
              {"role": "assistant", "content": "Tr\u00e8s bien, merci. Et vous, que faites-vous ce soir ?"}]
    assert judge(french, cfg)["reasons"][0].startswith("language: fr")
    assert judge(french, FilterConfig())["passed"]  # no keep list: every language is kept
